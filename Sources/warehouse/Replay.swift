import ArgumentParser
import Foundation
import ServiceLifecycle
import Synchronization
import Contract
import RedisClient
import StreamRuntime

extension Warehouse {
    /// `warehouse replay`: historical CSV data as events, in event-time order, at any speed.
    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replay the six contract CSV files as events on Redis Streams, ordered by event time.",
            discussion: """
                Bad rows go to the dead-letter stream with file:line and the reason; exact duplicate rows are skipped \
                and counted. Exits non-zero only for unusable input (a missing file, no header, an unreadable folder).
                Flags override the values of --scenario.
                """
        )

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var streams: StreamOptions
        @OptionGroup var metrics: MetricsOptions

        @Option(help: "The folder with the six CSV files (default: data).")
        var data: String?

        @Option(help: "Event seconds per wall second (3600 = an hour per second), or max.")
        var speed: String?

        @Option(help: "Only events at or after this ISO-8601 time.")
        var from: String?

        @Option(help: "Only events before this ISO-8601 time.")
        var to: String?

        @Option(help: "Stream partitions per entity.")
        var partitions: Int?

        @Flag(help: "Validate and report only; write nothing to Redis.")
        var dryRun = false

        @Option(help: "A scenario file, or the name of one in replay/ (history, live-day, chaos).")
        var scenario: String?

        @Flag(help: "Continue an interrupted replay from its checkpoint.")
        var resume = false

        @Option(help: "XADDs per pipelined batch.")
        var batch = 1000

        @Option(help: "Memory for sorting before it spills to disk, in MiB.")
        var memoryMb = 256

        @Option(help: "The sort may spill at most this much to disk, in MiB (it also always leaves 1 GiB free).")
        var maxSpillMb = 20 * 1024

        @Option(help: "The longest CSV record, in bytes: a longer one, or a quote left open, is rejected and reading goes on at the next line.")
        var maxRecordBytes = CSVReader.defaultMaxRecordBytes

        @Option(help: "Back-pressure: pause while the slowest consumer group lags more than this many entries (0: never).")
        var maxLag = 0

        @Flag(help: "Print the summary as JSON.")
        var json = false

        func validate() throws {
            if let speed, Pacer.parseSpeed(speed) == nil { throw ValidationError("--speed must be max or a positive number") }
            if let from, Timestamp(iso8601: from) == nil { throw ValidationError("--from must be ISO-8601 with an offset, like 2024-03-01T00:00:00Z") }
            if let to, Timestamp(iso8601: to) == nil { throw ValidationError("--to must be ISO-8601 with an offset, like 2024-03-02T00:00:00Z") }
            if let partitions, partitions < 1 { throw ValidationError("--partitions must be at least 1") }
            guard batch >= 1, memoryMb >= 1, maxSpillMb >= 0, maxRecordBytes >= 64 else {
                throw ValidationError("--batch and --memory-mb must be positive, --max-spill-mb not negative, --max-record-bytes at least 64")
            }
        }

        func run() async throws {
            let scenario = try scenario.map { try ReplayScenario.load($0, searchFolder: locateFolder("replay")) }
            var options = Replayer.Options(dataDirectory: data ?? scenario?.data ?? locateFolder("data"))
            let requestedPartitions = partitions ?? scenario?.partitions
            options.layout = streams.layout(partitions: requestedPartitions ?? 1)
            options.speed = (speed ?? scenario?.speed).flatMap { Pacer.parseSpeed($0) ?? nil }
            options.from = (from ?? scenario?.from).flatMap { Timestamp(iso8601: $0) }
            options.to = (to ?? scenario?.to).flatMap { Timestamp(iso8601: $0) }
            options.dryRun = dryRun
            options.resume = resume
            options.batchSize = batch
            options.memoryBudget = memoryMb << 20
            options.maxSpillBytes = maxSpillMb << 20
            options.maxRecordBytes = maxRecordBytes
            if maxLag > 0 { options.maxLag = maxLag }
            options.duplicateRate = scenario?.duplicateRate ?? 0
            options.shuffleWindow = scenario?.shuffleWindow ?? 0
            options.seed = scenario?.seed ?? 1

            let redis: RedisConnection?
            if dryRun {
                redis = nil
            } else {
                let url = connection.servers.redisURL
                do {
                    redis = try await RedisConnection(url: url)
                } catch {
                    throw CLIError("cannot connect to Redis at \(connection.servers.redactedRedisURL): \(error)")
                }
                do {
                    options.layout = try await streams.layout(partitions: requestedPartitions, record: true, command: "replay", on: redis!)
                } catch let error as LayoutError {
                    throw CLIError(error.description)
                }
            }
            let renderer = ProgressRenderer(enabled: !json)
            let replayer = Replayer(options: options)
            let outcome = Mutex<Replayer.Report?>(nil)
            // The replay and the metrics endpoint in one service group: SIGINT/SIGTERM stop the replay
            // between batches, with its checkpoint written (`--resume` continues).
            do {
                try await runServices(try metrics.services() + [ClosureService {
                    let report = try await replayer.run(redis: redis) { renderer.show($0) }
                    outcome.withLock { $0 = report }
                }])
            } catch let error as ContractError {
                renderer.finish()
                throw CLIError(error.description)
            } catch where !dryRun && FailureClass.of(error) == .transient {
                // Redis went away mid-replay: what was published is in the checkpoint (written with
                // the entries it covers, so it never claims more than Redis kept).
                renderer.finish()
                throw CLIError("\(error)\nthe replay stopped; once Redis is back, `warehouse replay --resume` (same options) continues from its checkpoint")
            }
            renderer.finish()
            guard let report = outcome.withLock({ $0 }) else { return }
            if report.interrupted {
                FileHandle.standardError.write(Data("interrupted after \(report.events) events: `warehouse replay --resume` continues from the checkpoint\n".utf8))
            }
            for warning in report.warnings { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
            if json {
                try printEncodedJSON(report)
            } else {
                print(Self.table(report, dryRun: dryRun))
            }
        }

        static func table(_ report: Replayer.Report, dryRun: Bool) -> String {
            var lines = ["file                         read  published  duplicates  rejected"]
            var totals = Replayer.FileStats()
            for entity in Entity.allCases {
                let stats = report.files[entity.fileName] ?? .init()
                lines.append(row(entity.fileName, stats))
                totals.read += stats.read; totals.published += stats.published
                totals.duplicates += stats.duplicates; totals.rejected += stats.rejected
            }
            lines.append(row("total", totals))
            var summary = "\(report.events) events \(dryRun ? "validated (dry run, nothing published)" : "published") in \(String(format: "%.2f", report.seconds)) s"
            if report.publishSeconds > 0 { summary += String(format: " (%.0f events/s while publishing)", Double(report.events) / report.publishSeconds) }
            if report.resumedFrom > 0 { summary += "; resumed after \(report.resumedFrom) events already published" }
            if report.outsideWindow > 0 { summary += "; \(report.outsideWindow) outside --from/--to" }
            if report.spilledRuns > 0 { summary += "; sort spilled \(report.spilledRuns) run(s) to disk" }
            lines.append(summary)
            return lines.joined(separator: "\n")
        }

        private static func row(_ name: String, _ stats: Replayer.FileStats) -> String {
            func pad(_ value: Int, _ width: Int) -> String {
                let text = String(value)
                return String(repeating: " ", count: max(0, width - text.count)) + text
            }
            return name.padding(toLength: 25, withPad: " ", startingAt: 0) + pad(stats.read, 7) + pad(stats.published, 11)
                + pad(stats.duplicates, 12) + pad(stats.rejected, 10)
        }
    }
}

/// A folder of the checkout (`data`, `replay`): in the working directory, else beside the executable's checkout.
func locateFolder(_ name: String) -> String {
    if FileManager.default.fileExists(atPath: name) { return name }
    let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var folder = (executable as NSString).deletingLastPathComponent
    while folder.count > 1 {
        let candidate = (folder as NSString).appendingPathComponent(name)
        if FileManager.default.fileExists(atPath: candidate) { return candidate }
        folder = (folder as NSString).deletingLastPathComponent
    }
    return name
}
