import Foundation
#if canImport(Glibc)
import Glibc
#endif
import ServiceLifecycle
import StreamRuntime
import Contract
import DataGenerator
import KPIStore
import PostgresClient
import RedisClient
import WarehouseSink
import RedisWire

/// `warehouse bench cluster`: the same generated history replayed, loaded (two loader consumers)
/// and aggregated (two aggregators sharing the partitions) on a single Redis and on a Redis
/// Cluster, events/s of each stage side by side, and the freshness (XADD to the KPI view) on the
/// cluster with two aggregators running. Each stage is checked, not only timed: the loader's and
/// the aggregators' entry counts must equal what the replay published.
///
/// On one machine the cluster cannot be faster: its three primaries share the same cores as the
/// client, and every pipeline is split three ways. What the figures show is what the cluster costs
/// here, and that the same code runs on both.
public struct ClusterBenchmark: Sendable {
    public struct Target: Sendable, Codable {
        public var name: String
        public var primaries: Int
        public var events: Int
        public var replayEventsPerSecond: Double
        public var loaderEventsPerSecond: Double
        public var aggregatorsEventsPerSecond: Double
        public var freshness: KPIBenchmark.Freshness?
        enum CodingKeys: String, CodingKey {
            case name, primaries, events, freshness
            case replayEventsPerSecond = "replay_events_per_s"
            case loaderEventsPerSecond = "loader_events_per_s"
            case aggregatorsEventsPerSecond = "aggregators_events_per_s"
        }
    }

    public struct Result: Sendable, Codable {
        public var partitions: Int
        public var targets: [Target]
    }

    public var single: String
    public var cluster: String
    public var databaseURL: String
    public var orderLines: Int
    public var partitions: Int
    public var rate: Int
    public var seconds: Double

    public init(single: String, cluster: String, databaseURL: String, orderLines: Int = 60_000, partitions: Int = 4,
                rate: Int = 5000, seconds: Double = 10) {
        self.single = single
        self.cluster = cluster
        self.databaseURL = databaseURL
        self.orderLines = orderLines
        self.partitions = partitions
        self.rate = rate
        self.seconds = seconds
    }

    public func run(progress: @escaping @Sendable (String) -> Void = { _ in }) async throws -> Result {
        let folder = try DataGenerator.benchmarkDataSet(orderLines: orderLines, name: "sw-bench-load-\(orderLines)", progress: progress)
        var targets: [Target] = []
        for (name, url) in [("single", single), ("cluster", cluster)] {
            targets.append(try await measure(name: name, url: url, folder: folder, progress: progress))
        }
        return Result(partitions: partitions, targets: targets)
    }

    private func measure(name: String, url: String, folder: String, progress: @escaping @Sendable (String) -> Void) async throws -> Target {
        let redis = try await RedisConnection(url: url)
        let primaries = try await redis.primaryAddresses().count
        let tag = "\(getpid())\(name)"
        let layout = StreamLayout(namespace: "swbenchcluster\(tag)", partitions: partitions)
        let schema = "sw_bench_cluster_\(tag)"
        do {
            let target = try await stages(name: name, url: url, primaries: primaries, layout: layout, schema: schema, folder: folder, progress: progress)
            try await cleanUp(layout: layout, url: url, schema: schema)
            return target
        } catch {
            try? await cleanUp(layout: layout, url: url, schema: schema)
            throw error
        }
    }

    private func cleanUp(layout: StreamLayout, url: String, schema: String) async throws {
        try await KPIBenchmark.cleanUp(layout, url: url)
        try await PostgresConnection(databaseURL).executeScript("DROP SCHEMA IF EXISTS \(schema) CASCADE")
    }

    private func stages(
        name: String, url: String, primaries: Int, layout: StreamLayout, schema: String, folder: String,
        progress: @escaping @Sendable (String) -> Void
    ) async throws -> Target {
        let redis = try await RedisConnection(url: url)

        var replay = Replayer.Options(dataDirectory: folder)
        replay.layout = layout
        let report = try await Replayer(options: replay).run(redis: redis)
        let replayRate = Double(report.events) / report.publishSeconds
        progress("\(name) (\(primaries) primar\(primaries == 1 ? "y" : "ies")): replay \(report.events) events, \(Int(replayRate)) events/s")

        // Two loader consumers into an empty schema.
        let (schemaURL, _) = try await BenchmarkSchema.create(schema, databaseURL: databaseURL)
        let clock = ContinuousClock()
        var start = clock.now
        let loaded = try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<2 {
                group.addTask {
                    var options = ConsumerGroupRunner.Options(group: "warehouse", consumer: "bench-\(worker)", streams: layout.allStreams)
                    options.batchSize = 2000
                    options.block = .milliseconds(100)
                    options.untilDrained = true
                    let redis = try await RedisConnection(url: url)
                    let postgres = try await PostgresConnection(schemaURL)
                    return try await WarehouseLoader().consume(options, layout: layout, redis: redis, postgres: postgres).entries
                }
            }
            return try await group.reduce(0, +)
        }
        let loaderRate = Double(loaded) / (clock.now - start).seconds
        guard loaded >= report.events else {
            throw RedisError(.unexpectedReply, "the loaders read \(loaded) entries of the \(report.events) published")
        }
        progress("\(name): loader, 2 consumers: \(Int(loaderRate)) events/s")

        // Two aggregators sharing the partitions, until drained.
        start = clock.now
        let aggregated = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<2 {
                group.addTask {
                    var options = ConsumerGroupRunner.Options(group: "kpi", consumer: "bench-aggregator-\(index)", streams: layout.allStreams)
                    options.batchSize = 2000
                    options.block = .milliseconds(100)
                    options.untilDrained = true
                    return try await KPIAggregator.consume(options, layout: layout, url: url, leaseTTL: .seconds(3), log: { line in
                        if ProcessInfo.processInfo.environment["SW_BENCH_LOG"] != nil { FileHandle.standardError.write(Data("aggregator \(index): \(line)\n".utf8)) }
                    }).entries
                }
            }
            return try await group.reduce(0, +)
        }
        let aggregatorRate = Double(aggregated) / (clock.now - start).seconds
        guard aggregated >= report.events else {
            throw RedisError(.unexpectedReply, "the aggregators read \(aggregated) entries of the \(report.events) published")
        }
        progress("\(name): aggregators, 2 processes' worth: \(Int(aggregatorRate)) events/s")

        var freshness: KPIBenchmark.Freshness?
        if name == "cluster" {
            freshness = try await KPIBenchmark.measureFreshness(
                url: url, layout: layout, batch: 2000, rate: rate, seconds: seconds, aggregators: 2, progress: progress)
        }
        return Target(name: name, primaries: primaries, events: report.events, replayEventsPerSecond: replayRate,
                      loaderEventsPerSecond: loaderRate, aggregatorsEventsPerSecond: aggregatorRate, freshness: freshness)
    }
}
