import Foundation
#if canImport(Glibc)
import Glibc
#endif
public import StreamRuntime
public import DataGenerator
import Contract
import RedisClient
import RedisWire

/// `warehouse bench replay`: parse+validate rows/s on one core, replay events/s (CSV → XADD at
/// `--speed max`) and peak RSS, on a generated data set.
public struct ReplayBenchmark: Sendable {
    public struct Result: Sendable, Codable {
        public var orderLines: Int
        public var inputRows: Int
        public var parseValidateRowsPerSecond: Double
        public var replayEventsPerSecond: Double
        public var replayPublishEventsPerSecond: Double
        public var replaySeconds: Double
        public var events: Int
        public var spilledRuns: Int
        public var peakRSSMegabytes: Double
        /// Whether the Redis it ran against writes an append-only file (it costs Redis CPU per XADD).
        public var redisAppendOnly: Bool

        enum CodingKeys: String, CodingKey {
            case orderLines = "order_lines"
            case inputRows = "input_rows"
            case parseValidateRowsPerSecond = "parse_validate_rows_per_s"
            case replayEventsPerSecond = "replay_events_per_s"
            case replayPublishEventsPerSecond = "replay_publish_events_per_s"
            case replaySeconds = "replay_seconds"
            case events
            case spilledRuns = "spilled_runs"
            case peakRSSMegabytes = "peak_rss_mb"
            case redisAppendOnly = "redis_appendonly"
        }
    }

    public var configuration: ServerConfiguration
    public var orderLines: Int
    public var memoryBudget: Int
    public var folder: String?

    public init(configuration: ServerConfiguration, orderLines: Int = 1_000_000, memoryBudget: Int = 256 << 20, folder: String? = nil) {
        self.configuration = configuration
        self.orderLines = orderLines
        self.memoryBudget = memoryBudget
        self.folder = folder
    }

    /// Reads and validates every file on this thread; returns the rows and the seconds taken.
    static func parseAndValidate(_ paths: [Entity: String]) throws -> (Int, Double) {
        let clock = ContinuousClock()
        let start = clock.now
        var rows = 0
        var checksum: UInt64 = 0
        for entity in Entity.allCases {
            var reader = try CSVReader(path: paths[entity]!, file: entity.fileName)
            let validator = try RowValidator(entity: entity, header: try reader.next()?.fields ?? [])
            var scratch: [UInt8] = []
            while true {
                do {
                    let more = try reader.nextRaw { line, fields -> Bool in
                        rows += 1
                        if case .valid(_, let id, _) = validator.validateRaw(fields, line: line, packInto: &scratch) { checksum &+= id.low }
                        return true
                    }
                    if more == nil { break }
                } catch {
                    rows += 1
                }
            }
            reader.close()
        }
        precondition(checksum != 42, "keeps the work from being optimised away")
        return (rows, (clock.now - start).seconds)
    }

    public func run(progress: @Sendable (String) -> Void = { _ in }) async throws -> Result {
        let folder = try DataGenerator.benchmarkDataSet(
            orderLines: orderLines, name: "sw-bench-replay-\(orderLines)", folder: self.folder, progress: progress)

        // Parse and validate only, one core.
        let paths = try Replayer.contractFiles(in: folder)
        // Three rounds; the median is reported (this machine's timing is noisy).
        var rounds: [Double] = []
        var rows = 0
        for _ in 0..<3 {
            let (count, seconds) = try Self.parseAndValidate(paths)
            rows = count
            rounds.append(Double(count) / seconds)
            progress("parse+validate: \(count) rows in \(String(format: "%.2f", seconds)) s")
        }

        // Replay into a namespace of its own, then remove it.
        let redis = try await RedisConnection(url: configuration.redisURL)
        let layout = StreamLayout(namespace: "swbench\(getpid())")
        var options = Replayer.Options(dataDirectory: folder)
        options.layout = layout
        options.memoryBudget = memoryBudget
        let report = try await Replayer(options: options).run(redis: redis)
        progress("replay: \(report.events) events in \(String(format: "%.2f", report.seconds)) s")
        for entity in Entity.allCases { _ = try await redis.command("DEL", layout.streamKey(entity, partition: 0)) }
        _ = try await redis.command("DEL", layout.deadLetterKey, layout.deadLetterSeenKey)
        for partition in 0..<layout.partitions { _ = try await redis.command("DEL", layout.replayCheckpointKey(partition: partition)) }

        let appendOnly = try await redis.command("CONFIG", "GET", "appendonly").array?.last?.string == "yes"
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Result(
            orderLines: orderLines, inputRows: rows,
            parseValidateRowsPerSecond: median(rounds),
            replayEventsPerSecond: Double(report.events) / report.seconds,
            replayPublishEventsPerSecond: report.publishSeconds > 0 ? Double(report.events) / report.publishSeconds : 0,
            replaySeconds: report.seconds, events: report.events, spilledRuns: report.spilledRuns,
            peakRSSMegabytes: Double(usage.ru_maxrss) / 1024, redisAppendOnly: appendOnly)
    }
}

extension DataGenerator {
    /// A generated data set of `orderLines` order lines (seed 42) for the benchmarks: generated into
    /// `folder` (default: `name` in the temporary folder) once, marked complete, then reused.
    public static func benchmarkDataSet(orderLines: Int, name: String, folder: String? = nil, progress: (String) -> Void) throws -> String {
        let folder = folder ?? (NSTemporaryDirectory() as NSString).appendingPathComponent(name)
        let marker = (folder as NSString).appendingPathComponent(".complete-\(orderLines)")
        if !FileManager.default.fileExists(atPath: marker) {
            progress("generating \(orderLines) order lines in \(folder)")
            try DataGenerator(options: DataGenerator.Options(orders: orderLines, seed: 42)).write(to: folder)
            _ = FileManager.default.createFile(atPath: marker, contents: nil)
        }
        return folder
    }
}
