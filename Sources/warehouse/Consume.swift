import ArgumentParser
import Dispatch
import Foundation
import Pipeline
import PostgresClient
import RedisClient

extension Warehouse {
    /// `warehouse consume --group warehouse|kpi`: loads the star schema, or keeps the KPIs in Redis.
    struct Consume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a consumer group: `warehouse` loads the PostgreSQL star schema, `kpi` keeps the KPIs in Redis.",
            discussion: """
                warehouse: each batch is one PostgreSQL transaction, committed before its entries are acknowledged; every \
                statement is idempotent, so a crash, a redelivery or a replay never loses or double-counts anything.
                kpi: each batch's state changes and the XACK of its entries are one MULTI/EXEC per stream; the KPIs are \
                absolute values derived from that state (rebuilt from it at start). One aggregator runs per namespace \
                (a lease makes a second one wait).
                SIGINT/SIGTERM finish the batch in flight, acknowledge it and exit.
                """
        )

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var streams: StreamOptions
        @OptionGroup var metrics: MetricsOptions

        @Option(help: "The consumer group: warehouse or kpi.")
        var group = "warehouse"

        @Option(help: "This consumer's name (default: host-pid; `aggregator` for kpi, so a restart takes back what it left pending).")
        var consumer: String?

        @Option(help: "kpi: the lease's time to live in ms (a crashed aggregator's successor waits at most this long).")
        var leaseMs = 10_000

        @Option(help: "Entries per XREADGROUP, per stream.")
        var batch = 1000

        @Option(help: "XREADGROUP BLOCK, in milliseconds.")
        var blockMs = 2000

        @Option(help: "Consumers in this process, each with its own connections.")
        var workers = 1

        @Option(help: "Stream partitions per entity.")
        var partitions = 1

        @Option(help: "Reclaim entries pending this long (ms) from consumers presumed dead.")
        var minIdleMs = 60_000

        @Option(help: "Deliveries after which an entry is dead-lettered as poison.")
        var deliveryLimit = 5

        @Flag(help: "Exit 0 once the group has no lag and nothing pending.")
        var untilDrained = false

        @Option(help: "Retention: trim the streams this often (ms) to the oldest entry a group still needs (0: never).")
        var trimEveryMs = 10_000

        @Option(help: "Trim a stream only once all of these groups exist on it (comma-separated).")
        var trimFor = "warehouse,kpi"

        @Option(help: "Keep consumed entries this many seconds on top of what the groups need.")
        var retentionS: Double = 0

        @Option(help: ArgumentHelp(
            "kpi: retire order lines, payments and movements quiet this long (event time, per stream) into counters, so the state stays bounded (e.g. 35d, 12h, 180s; default: keep everything).",
            discussion: "Later changes to a retired record are dead-lettered with the reason (see ARCHITECTURE.md, KPI state retention)."))
        var stateRetention: String?

        @Option(help: "kpi: how often (ms, wall clock) a retirement pass runs with --state-retention.")
        var retireEveryMs = 5000

        /// `--state-retention` as a duration (nil: off).
        var stateRetentionDuration: Duration? {
            get throws {
                guard let text = stateRetention else { return nil }
                guard let duration = parseDurationText(text), duration > .zero else {
                    throw ValidationError("--state-retention: '\(text)' is not a positive duration such as 35d, 12h, 30m or 180s")
                }
                return duration
            }
        }

        func validate() throws {
            _ = try stateRetentionDuration
            guard stateRetention == nil || group == "kpi" else { throw ValidationError("--state-retention applies to the kpi group") }
            guard group == "warehouse" || group == "kpi" else {
                throw ValidationError("unknown group \(group): `warehouse` loads PostgreSQL, `kpi` keeps the KPIs in Redis")
            }
            guard group != "kpi" || workers == 1 else {
                throw ValidationError("the kpi group runs one aggregator (its state is in memory): --workers must be 1")
            }
            guard retireEveryMs >= 0 else { throw ValidationError("--retire-every-ms must not be negative") }
            guard leaseMs >= 100 else { throw ValidationError("--lease-ms must be at least 100") }
            guard trimEveryMs >= 0, retentionS >= 0 else { throw ValidationError("--trim-every-ms and --retention-s must not be negative") }
            guard batch > 0, blockMs >= 0, workers >= 1, partitions >= 1, minIdleMs > 0, deliveryLimit >= 1 else {
                throw ValidationError("--batch, --workers, --partitions, --min-idle-ms and --delivery-limit must be positive")
            }
        }

        func run() async throws {
            let servers = connection.servers
            let layout = streams.layout(partitions: partitions)
            let stop = StopFlag()
            let signals = installStopSignals(stop)
            defer { _ = signals }
            let name = consumer ?? (group == "kpi" ? "aggregator" : "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)")
            let leaseTTL = Duration.milliseconds(leaseMs)
            let stateRetention = try stateRetentionDuration
            let streamKeys = Entity.allCases.flatMap { layout.streamKeys($0) }
            let exporter = metrics.start(lagOf: streamKeys, redisURL: servers.redisURL)
            defer { exporter?.cancel() }
            let options = (batch: batch, block: Duration.milliseconds(blockMs), untilDrained: untilDrained,
                           minIdle: Duration.milliseconds(minIdleMs), deliveryLimit: deliveryLimit, group: group)
            let started = ContinuousClock.now
            let trimmer = trimEveryMs > 0 ? Task { [trimEveryMs, trimFor, retentionS] in
                let trimmer = StreamTrimmer(
                    requiredGroups: trimFor.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty },
                    retention: .milliseconds(Int(retentionS * 1000)))
                var redis: RedisConnection?
                while !Task.isCancelled && !stop.isStopped {
                    try? await Task.sleep(for: .milliseconds(trimEveryMs))
                    do {
                        if redis == nil { redis = try await RedisConnection(url: servers.redisURL) }
                        let results = try await trimmer.trim(streamKeys, on: redis!)
                        let removed = results.reduce(0) { $0 + $1.removed }
                        if removed > 0 { logLine("trimmed \(removed) entries every group has consumed") }
                    } catch {
                        redis = nil
                        logLine("trimming failed (\(error)); retrying later")
                    }
                }
            } : nil
            defer { trimmer?.cancel() }
            let stats = try await withThrowingTaskGroup(of: ConsumerGroupRunner.Stats.self) { tasks in
                for worker in 0..<workers {
                    tasks.addTask {
                        var runnerOptions = ConsumerGroupRunner.Options(
                            group: options.group, consumer: workers == 1 ? name : "\(name)-\(worker)", streams: streamKeys)
                        runnerOptions.batchSize = options.batch
                        runnerOptions.block = options.block
                        runnerOptions.untilDrained = options.untilDrained
                        runnerOptions.minIdle = options.minIdle
                        runnerOptions.deliveryLimit = options.deliveryLimit
                        if options.group == "kpi" {
                            return try await KPIAggregator.consume(
                                runnerOptions, layout: layout, url: servers.redisURL, leaseTTL: leaseTTL, stateRetention: stateRetention,
                                retireEvery: .milliseconds(retireEveryMs), stop: stop, log: logLine)
                        }
                        let redis = try await RedisConnection(url: servers.redisURL)
                        let postgres = try await PostgresConnection(servers.databaseURL)
                        return try await WarehouseLoader(group: options.group).consume(
                            runnerOptions, layout: layout, redis: redis, postgres: postgres, stop: stop, log: logLine)
                    }
                }
                var total = ConsumerGroupRunner.Stats()
                for try await stats in tasks {
                    total.batches += stats.batches
                    total.entries += stats.entries
                    total.deadLettered += stats.deadLettered
                    total.retries += stats.retries
                    total.reclaimed += stats.reclaimed
                }
                return total
            }
            let seconds = (ContinuousClock.now - started).seconds
            logLine("\(group): \(stats.entries) entries in \(stats.batches) batches, \(stats.deadLettered) dead-lettered, "
                    + "\(stats.retries) retries, \(stats.reclaimed) reclaimed, \(String(format: "%.2f", seconds)) s")
        }
    }
}

/// One line on stderr with a UTC timestamp.
@Sendable func logLine(_ message: String) {
    FileHandle.standardError.write(Data("\(Timestamp.now) \(message)\n".utf8))
}

/// SIGINT and SIGTERM set `stop` instead of killing the process, so consumers drain.
func installStopSignals(_ stop: StopFlag, quiet: Bool = false) -> [any DispatchSourceSignal] {
    [SIGINT, SIGTERM].map { number in
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler {
            if !quiet { logLine("signal \(number): finishing the batch in flight, then stopping") }
            stop.stop()
        }
        source.resume()
        return source
    }
}
