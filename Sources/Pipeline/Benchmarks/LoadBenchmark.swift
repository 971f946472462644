import Foundation
import PostgresClient
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// `warehouse bench load`: loader events/s from a pre-filled stream of generated events into an
/// empty warehouse, then again over the same events when every row already exists; peak RSS.
public struct LoadBenchmark: Sendable {
    public struct Result: Sendable, Codable {
        public var events: Int
        public var workers: Int
        public var batch: Int
        public var emptyWarehouseEventsPerSecond: Double
        public var existingRowsEventsPerSecond: Double
        public var peakRSSMegabytes: Double

        enum CodingKeys: String, CodingKey {
            case events, workers, batch
            case emptyWarehouseEventsPerSecond = "empty_warehouse_events_per_s"
            case existingRowsEventsPerSecond = "existing_rows_events_per_s"
            case peakRSSMegabytes = "peak_rss_mb"
        }
    }

    public var configuration: ServerConfiguration
    public var orderLines: Int
    public var workers: Int
    public var batch: Int

    public init(configuration: ServerConfiguration, orderLines: Int = 330_000, workers: Int = 2, batch: Int = 2000) {
        self.configuration = configuration
        self.orderLines = orderLines
        self.workers = workers
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

        let schema = "sw_bench_load_\(tag)"
        let (url, _) = try await BenchmarkSchema.create(schema, databaseURL: configuration.databaseURL)

        let streams = Entity.allCases.flatMap { layout.streamKeys($0) }
        let empty = try await load(streams: streams, layout: layout, url: url)
        progress("empty warehouse: \(Int(empty)) events/s")
        // The same events again: every row exists, every upsert finds its guard false.
        for stream in streams { _ = try await redis.command("XGROUP", "SETID", stream, "warehouse", "0") }
        let existing = try await load(streams: streams, layout: layout, url: url)
        progress("rows already there: \(Int(existing)) events/s")

        try await PostgresConnection(configuration.databaseURL).executeScript("DROP SCHEMA \(schema) CASCADE")
        for stream in streams { _ = try await redis.command("DEL", stream) }
        _ = try await redis.command("DEL", layout.deadLetterKey, layout.deadLetterSeenKey, layout.replayCheckpointKey)
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Result(
            events: published.events, workers: workers, batch: batch, emptyWarehouseEventsPerSecond: empty,
            existingRowsEventsPerSecond: existing, peakRSSMegabytes: Double(usage.ru_maxrss) / 1024)
    }

    private func load(streams: [String], layout: StreamLayout, url: String) async throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        let configuration = self.configuration
        let batch = self.batch
        let entries = try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<workers {
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
