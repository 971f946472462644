import ArgumentParser
import Foundation
import Contract
import KPIStore
import StreamRuntime
import WarehouseSink
import RedisWire
import RedisClient

extension Warehouse {
    /// `warehouse consume --group warehouse|kpi`: loads the star schema, or keeps the KPIs in Redis.
    struct Consume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a consumer group: `warehouse` loads the PostgreSQL star schema, `kpi` keeps the KPIs in Redis.",
            discussion: """
                warehouse: each batch is one PostgreSQL transaction, committed before its entries are acknowledged; every \
                statement is idempotent and each batch locks the natural keys it touches, so any number of consumers, a \
                crash, a redelivery or a replay never loses or double-counts anything.
                kpi: the partitions are shared out among the running kpi processes (add one and partitions move to it; stop \
                one and they move back; a crashed one's are taken over when its lease expires). For each partition it owns, \
                a process commits each batch's state changes, the XACK of its entries and the partition's contribution to \
                the figures in one atomic script call, fenced by the partition lease's epoch; one process at a time (under a \
                lease of its own) merges the contributions into the global KPI view.
                SIGINT/SIGTERM finish the batch in flight, acknowledge it and exit 0.
                Failures are classed: bad data is dead-lettered and acknowledged; a server that is down, failing over, \
                out of memory or busy is waited out (never dead-lettered, never acknowledged); a wrong deployment (a missing \
                table, a permission, credentials, a schema older than the code, a Redis that may evict keys) stops the \
                consumer with a message saying what to do, acknowledging nothing, and exit status 1.
                """
        )

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var streams: StreamOptions
        @OptionGroup var metrics: MetricsOptions

        @Option(help: "The consumer group: warehouse or kpi.")
        var group = "warehouse"

        @Option(help: "This consumer's name, unique per process (default: host-pid). A kpi process that takes a partition over claims what its previous owner left pending.")
        var consumer: String?

        @Option(help: "kpi: the time to live in ms of the partition leases, the merge stage's lease and the membership heartbeat (a crashed aggregator's partitions are taken over after at most about this long).")
        var leaseMs = 10_000

        @Option(help: "Entries per XREADGROUP, per stream: at most what one batch takes (default: warehouse 2000, kpi 1000).")
        var batch: Int?

        /// The warehouse group's transactions amortise their dozen statements over more rows (the
        /// 2.6M-event set loaded in 61.7 s at 2000 against 65.8 s at 1000); the kpi group's commit
        /// is one script that holds Redis while it runs, so its batches stay smaller.
        var batchSize: Int { batch ?? (group == "warehouse" ? 2000 : 1000) }

        @Option(help: "XREADGROUP BLOCK, in milliseconds.")
        var blockMs = 2000

        @Option(help: "Consumers in this process, each with its own connections.")
        var workers = 1

        @Option(help: "Stream partitions per entity, recorded for the namespace by the first command that writes or consumes (default: the record, else 1; given, it must match the record).")
        var partitions: Int?

        @Option(help: "Reclaim entries pending this long (ms) from consumers presumed dead.")
        var minIdleMs = 60_000

        @Option(help: "Deliveries after which an entry is dead-lettered as poison.")
        var deliveryLimit = 5

        @Flag(help: #"At exit, print {"group", "consumer", "entries", "batches", "dead_lettered", "retries", "reclaimed", "seconds"} on stdout (the log stays on stderr)."#)
        var json = false

        @Flag(help: "Exit 0 once the group has no lag and nothing pending.")
        var untilDrained = false

        @Option(help: "Retention: trim the streams this often (ms) to the oldest entry a group still needs (0: never).")
        var trimEveryMs = 10_000

        @Option(help: "Trim a stream only once all of these groups exist on it (comma-separated).")
        var trimFor = "warehouse,kpi"

        @Option(help: "Keep consumed entries this many seconds on top of what the groups need.")
        var retentionS: Double = 0

        @Option(help: ArgumentHelp(
            "kpi: move order lines, payments and movements quiet this long (event time, per stream) out of memory into the archive in Redis, so the state stays bounded (e.g. 35d, 12h, 180s, or off to hold everything; default: 35d).",
            discussion: "A later change to an archived record, however late, revives it first: exact for any lateness (see ARCHITECTURE.md, KPI state retention)."))
        var stateRetention: String?

        @Option(help: "kpi: how often (ms, wall clock) a retirement pass runs.")
        var retireEveryMs = 5000

        /// The state retention when `--state-retention` is not given.
        static let defaultStateRetention = "35d"

        /// `--state-retention` as a duration (nil: off).
        var stateRetentionDuration: Duration? {
            get throws {
                let text = stateRetention ?? Self.defaultStateRetention
                if text == "off" { return nil }
                guard let duration = parseDurationText(text), duration > .zero else {
                    throw ValidationError("--state-retention: '\(text)' is not a positive duration such as 35d, 12h, 30m or 180s, nor off")
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
                throw ValidationError("a kpi process runs one aggregator per partition it owns: --workers must be 1 (run more processes to share the partitions)")
            }
            guard retireEveryMs >= 0 else { throw ValidationError("--retire-every-ms must not be negative") }
            guard leaseMs >= 100 else { throw ValidationError("--lease-ms must be at least 100") }
            guard trimEveryMs >= 0, retentionS >= 0 else { throw ValidationError("--trim-every-ms and --retention-s must not be negative") }
            guard batchSize > 0, blockMs >= 0, workers >= 1, (partitions ?? 1) >= 1, minIdleMs > 0, deliveryLimit >= 1 else {
                throw ValidationError("--batch, --workers, --partitions, --min-idle-ms and --delivery-limit must be positive")
            }
        }

        func run() async throws {
            let servers = connection.servers
            let streams = self.streams, partitions = self.partitions
            let layout = try await ConsumerGroupRunner.retryingTransient("reading the namespace's layout", log: logLine) {
                try await streams.layout(partitions: partitions, record: true, command: "consume", on: try await RedisConnection(url: servers.redisURL))
            }
            let name = consumer ?? "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
            let streamKeys = layout.allStreams
            var options = ConsumerGroupRunner.Options(group: group, consumer: name, streams: streamKeys)
            options.batchSize = batchSize
            options.block = .milliseconds(blockMs)
            options.untilDrained = untilDrained
            options.minIdle = .milliseconds(minIdleMs)
            options.deliveryLimit = deliveryLimit

            var services = try metrics.services(lagOf: streamKeys, redisURL: servers.redisURL)
            if trimEveryMs > 0 {
                let trimmer = StreamTrimmer(
                    requiredGroups: trimFor.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty },
                    retention: .milliseconds(Int(retentionS * 1000)))
                services.append(StreamTrimmerService(
                    trimmer: trimmer, streams: streamKeys, every: .milliseconds(trimEveryMs), url: servers.redisURL, log: logLine))
            }
            let started = ContinuousClock.now
            let result: () -> ConsumerGroupRunner.Stats
            if group == "kpi" {
                let aggregator = KPIAggregatorService(
                    options: options, layout: layout, url: servers.redisURL, leaseTTL: .milliseconds(leaseMs),
                    stateRetention: try stateRetentionDuration, retireEvery: .milliseconds(retireEveryMs), log: logLine)
                services.append(aggregator)
                result = { aggregator.stats }
            } else {
                let loader = WarehouseLoaderService(options: options, workers: workers, layout: layout, servers: servers, log: logLine)
                services.append(loader)
                result = { loader.stats }
            }
            try await runServices(services)
            let stats = result()
            let seconds = (ContinuousClock.now - started).seconds
            logLine("\(group): \(stats.entries) entries in \(stats.batches) batches, \(stats.deadLettered) dead-lettered, "
                    + "\(stats.retries) retries, \(stats.reclaimed) reclaimed, \(String(format: "%.2f", seconds)) s")
            if json {
                printJSON([
                    "group": group, "consumer": name, "entries": stats.entries, "batches": stats.batches, "dead_lettered": stats.deadLettered,
                    "retries": stats.retries, "reclaimed": stats.reclaimed, "seconds": (seconds * 1000).rounded() / 1000,
                ] as [String: Any])
            }
        }
    }
}

/// One line on stderr with a UTC timestamp.
@Sendable func logLine(_ message: String) {
    FileHandle.standardError.write(Data("\(Timestamp.now) \(message)\n".utf8))
}
