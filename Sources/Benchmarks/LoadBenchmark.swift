import Foundation
#if canImport(Glibc)
import Glibc
#endif
public import StreamRuntime
import Contract
import DataGenerator
import PostgresClient
import RedisClient
import WarehouseSink
import RedisWire

/// `warehouse bench load`: loader events/s from a pre-filled stream of generated events into an
/// empty warehouse, with 1, 2 and 4 consumers in the group (each with its own Redis and
/// PostgreSQL connections), `runs` rounds interleaved (1, 2, 4, 1, 2, 4, …) so the machine's drift
/// falls on every count alike, the median of each; then once more with every row already there;
/// peak RSS.
public struct LoadBenchmark: Sendable {
    public struct Result: Sendable, Codable {
        public var events: Int
        /// The consumer count of the two headline figures (the largest measured).
        public var workers: Int
        public var batch: Int
        /// Median events/s into an empty warehouse with `workers` consumers.
        public var emptyWarehouseEventsPerSecond: Double
        public var existingRowsEventsPerSecond: Double
        public var peakRSSMegabytes: Double
        public var consumers: [Consumers]

        public struct Consumers: Sendable, Codable {
            public var consumers: Int
            public var runs: [Double]
            public var medianEventsPerSecond: Double
            /// The median over one consumer's median.
            public var versusOne: Double

            enum CodingKeys: String, CodingKey {
                case consumers, runs
                case medianEventsPerSecond = "median_events_per_s"
                case versusOne = "vs_one_consumer"
            }
        }

        enum CodingKeys: String, CodingKey {
            case events, workers, batch, consumers
            case emptyWarehouseEventsPerSecond = "empty_warehouse_events_per_s"
            case existingRowsEventsPerSecond = "existing_rows_events_per_s"
            case peakRSSMegabytes = "peak_rss_mb"
        }
    }

    public var configuration: ServerConfiguration
    public var orderLines: Int
    public var consumerCounts: [Int]
    public var runs: Int
    public var batch: Int

    public init(configuration: ServerConfiguration, orderLines: Int = 330_000, consumers: [Int] = [1, 2, 4], runs: Int = 3, batch: Int = 2000) {
        self.configuration = configuration
        self.orderLines = orderLines
        self.consumerCounts = consumers
        self.runs = runs
        self.batch = batch
    }

    public func run(progress: @escaping @Sendable (String) -> Void = { _ in }) async throws -> Result {
        let folder = try DataGenerator.benchmarkDataSet(orderLines: orderLines, name: "sw-bench-load-\(orderLines)", progress: progress)
        let redis = try await RedisConnection(url: configuration.redisURL)
        let tag = "\(getpid())"
        let layout = StreamLayout(namespace: "swbenchload\(tag)")
        var replay = Replayer.Options(dataDirectory: folder)
        replay.layout = layout
        let published = try await Replayer(options: replay).run(redis: redis)
        progress("pre-filled the streams with \(published.events) events")
        let streams = layout.allStreams
        let schema = "sw_bench_load_\(tag)"

        var measured: [Int: [Double]] = [:]
        for round in 1...runs {
            for consumers in consumerCounts {
                // An empty warehouse and a group that starts from the first entry, every time.
                let (url, _) = try await BenchmarkSchema.create(schema, databaseURL: configuration.databaseURL)
                for stream in streams { _ = try await redis.command("XGROUP", "DESTROY", stream, "warehouse") }
                let rate = try await load(consumers: consumers, streams: streams, layout: layout, url: url)
                measured[consumers, default: []].append(rate)
                progress("round \(round), \(consumers) consumer\(consumers == 1 ? "" : "s"): \(Int(rate)) events/s")
            }
        }
        let top = consumerCounts.max() ?? 1
        // The same events again with every row there: every upsert finds its guard false.
        for stream in streams { _ = try await redis.command("XGROUP", "SETID", stream, "warehouse", "0") }
        let existing = try await load(consumers: top, streams: streams, layout: layout, url: BenchmarkSchema.url(configuration.databaseURL, schema: schema))
        progress("rows already there, \(top) consumers: \(Int(existing)) events/s")

        try await PostgresConnection(configuration.databaseURL).executeScript("DROP SCHEMA \(schema) CASCADE")
        for stream in streams { _ = try await redis.command("DEL", stream) }
        _ = try await redis.command("DEL", layout.deadLetterKey, layout.deadLetterSeenKey)
        for partition in 0..<layout.partitions { _ = try await redis.command("DEL", layout.replayCheckpointKey(partition: partition)) }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let one = measured[1].map(median) ?? measured[consumerCounts[0]].map(median) ?? 1
        let rows = consumerCounts.map { count in
            Result.Consumers(consumers: count, runs: measured[count] ?? [], medianEventsPerSecond: median(measured[count] ?? [0]),
                             versusOne: median(measured[count] ?? [0]) / one)
        }
        return Result(
            events: published.events, workers: top, batch: batch, emptyWarehouseEventsPerSecond: median(measured[top] ?? [0]),
            existingRowsEventsPerSecond: existing, peakRSSMegabytes: Double(usage.ru_maxrss) / 1024, consumers: rows)
    }

    private func load(consumers: Int, streams: [String], layout: StreamLayout, url: String) async throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        let configuration = self.configuration
        let batch = self.batch
        let entries = try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<consumers {
                group.addTask {
                    var options = ConsumerGroupRunner.Options(group: "warehouse", consumer: "bench-\(worker)", streams: streams)
                    options.batchSize = batch
                    options.block = .milliseconds(100)
                    options.untilDrained = true
                    let redis = try await RedisConnection(url: configuration.redisURL)
                    let postgres = try await PostgresConnection(url)
                    return try await WarehouseLoader().consume(options, layout: layout, redis: redis, postgres: postgres).entries
                }
            }
            return try await group.reduce(0, +)
        }
        return Double(entries) / (clock.now - start).seconds
    }
}
