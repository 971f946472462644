import Foundation
import Synchronization
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif
public import StreamRuntime
import Contract
import DataGenerator
import KPIStore
import RedisClient
import RedisWire

/// `warehouse bench kpi`: the aggregator's events/s over a pre-filled stream of generated events;
/// the restart rebuild time over the state that leaves; freshness (XADD to KPI readable, under a
/// steady producer); `kpis` read latency.
public struct KPIBenchmark: Sendable {
    public struct Freshness: Sendable, Codable {
        public var rate: Int
        public var events: Int
        public var p50Milliseconds: Double
        public var p99Milliseconds: Double
        public var maxMilliseconds: Double
        enum CodingKeys: String, CodingKey {
            case rate = "events_per_s", events
            case p50Milliseconds = "p50_ms", p99Milliseconds = "p99_ms", maxMilliseconds = "max_ms"
        }
    }

    public struct Reads: Sendable, Codable {
        public var reads: Int
        public var p50Milliseconds: Double
        public var p99Milliseconds: Double
        enum CodingKeys: String, CodingKey {
            case reads
            case p50Milliseconds = "p50_ms", p99Milliseconds = "p99_ms"
        }
    }

    public struct Result: Sendable, Codable {
        public var events: Int
        public var batch: Int
        public var eventsPerSecond: Double
        public var rebuildSeconds: Double
        public var freshness: Freshness
        public var kpisRead: Reads
        public var redisAppendOnly: Bool
        public var peakRSSMegabytes: Double
        enum CodingKeys: String, CodingKey {
            case events, batch, freshness
            case eventsPerSecond = "events_per_s"
            case rebuildSeconds = "rebuild_s"
            case kpisRead = "kpis_read"
            case redisAppendOnly = "redis_aof"
            case peakRSSMegabytes = "peak_rss_mb"
        }
    }

    public var configuration: ServerConfiguration
    public var orderLines: Int
    public var batch: Int
    public var rate: Int
    public var freshnessSeconds: Double
    public var reads: Int

    public init(configuration: ServerConfiguration, orderLines: Int = 330_000, batch: Int = 2000, rate: Int = 5000,
                freshnessSeconds: Double = 10, reads: Int = 10_000) {
        self.configuration = configuration
        self.orderLines = orderLines
        self.batch = batch
        self.rate = rate
        self.freshnessSeconds = freshnessSeconds
        self.reads = reads
    }

    public func run(progress: @escaping @Sendable (String) -> Void = { _ in }) async throws -> Result {
        let folder = try DataGenerator.benchmarkDataSet(orderLines: orderLines, name: "sw-bench-load-\(orderLines)", progress: progress)
        let redis = try await RedisConnection(url: configuration.redisURL)
        let aof = (try await redis.command("CONFIG", "GET", "appendonly").array?.last?.string) == "yes"
        let layout = StreamLayout(namespace: "swbenchkpi\(getpid())")
        do {
            let result = try await measure(layout: layout, folder: folder, redis: redis, aof: aof, progress: progress)
            try? await Self.cleanUp(layout, url: configuration.redisURL)
            return result
        } catch {
            try? await Self.cleanUp(layout, url: configuration.redisURL)
            throw error
        }
    }

    private func measure(
        layout: StreamLayout, folder: String, redis: RedisConnection, aof: Bool, progress: @escaping @Sendable (String) -> Void
    ) async throws -> Result {
        var replay = Replayer.Options(dataDirectory: folder)
        replay.layout = layout
        let published = try await Replayer(options: replay).run(redis: redis)
        progress("pre-filled the streams with \(published.events) events")

        // 1. Throughput from the pre-filled streams.
        let streams = layout.allStreams
        var options = ConsumerGroupRunner.Options(group: "kpi", consumer: "bench-aggregator", streams: streams)
        options.batchSize = batch
        options.block = .milliseconds(100)
        options.untilDrained = true
        let clock = ContinuousClock()
        var start = clock.now
        let stats = try await KPIAggregator.consume(options, layout: layout, url: configuration.redisURL)
        let throughput = Double(stats.entries) / (clock.now - start).seconds
        progress("aggregated \(stats.entries) events: \(Int(throughput)) events/s")

        // 2. What a restart costs: rebuilding the state from the persisted records.
        let writer = try await RedisConnection(url: configuration.redisURL)
        let lease = KPILease(keys: KPIKeys(layout: layout), partition: 0, owner: "bench", ttl: .seconds(60))
        let epoch = try await lease.acquire(on: writer, log: { _ in }) ?? 0
        let probe = KPIAggregator(layout: layout, partition: 0, redis: writer, epoch: epoch)
        try await probe.takeOver(consumer: "bench")
        start = clock.now
        try await probe.rebuild()
        let rebuild = (clock.now - start).seconds
        try await lease.release(on: writer)
        progress("rebuild after a restart: \(String(format: "%.2f", rebuild)) s")

        // 3. Freshness under a steady producer, the aggregator running.
        let freshness = try await Self.measureFreshness(
            url: configuration.redisURL, layout: layout, batch: batch, rate: rate, seconds: freshnessSeconds, progress: progress)

        // 4. `kpis` reads.
        var latencies: [Double] = []
        latencies.reserveCapacity(reads)
        let keys = KPIKeys(layout: layout)
        for _ in 0..<reads {
            let began = clock.now
            _ = try await KPISnapshot.read(keys, on: redis)
            latencies.append((clock.now - began).seconds * 1000)
        }
        latencies.sort()
        let readFigures = Reads(reads: reads, p50Milliseconds: Self.percentile(latencies, 50), p99Milliseconds: Self.percentile(latencies, 99))
        progress("kpis read: p50 \(String(format: "%.3f", readFigures.p50Milliseconds)) ms, p99 \(String(format: "%.3f", readFigures.p99Milliseconds)) ms")

        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Result(
            events: stats.entries, batch: batch, eventsPerSecond: throughput, rebuildSeconds: rebuild, freshness: freshness,
            kpisRead: readFigures, redisAppendOnly: aof, peakRSSMegabytes: Double(usage.ru_maxrss) / 1024)
    }

    /// A producer XADDs order lines at `rate`/s, stamping each with the instant before it sent it;
    /// an observer blocks on the change stream; an event is readable once a change record's
    /// `through` covers its entry id. Latency = when the observer read that record − when the
    /// producer sent the event.
    /// With `aggregators` aggregator processes' worth of services running in process (the
    /// partitions shared among them), order lines XADDed to partition 0 at `rate`/s for `seconds`.
    static func measureFreshness(
        url: String, layout: StreamLayout, batch: Int, rate: Int, seconds freshnessSeconds: Double, aggregators count: Int = 1,
        progress: @Sendable (String) -> Void
    ) async throws -> Freshness {
        let (readiness, ready) = AsyncStream<Void>.makeStream()
        var groups: [ServiceGroup] = []
        let readyCount = ReadyCount(count)
        for index in 0..<count {
            var options = ConsumerGroupRunner.Options(group: "kpi", consumer: "bench-aggregator-\(index)", streams: layout.allStreams)
            options.batchSize = batch
            options.block = .seconds(1)
            groups.append(KPIAggregator.serviceGroup(options, layout: layout, url: url, leaseTTL: .seconds(3), log: { line in
                if ProcessInfo.processInfo.environment["SW_BENCH_LOG"] != nil { FileHandle.standardError.write(Data("aggregator \(index): \(line)\n".utf8)) }
            }, ready: {
                if readyCount.decrement() { ready.yield(); ready.finish() }
            }).group)
        }
        let running = groups
        let aggregator = Task {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for group in running { tasks.addTask { try await group.run() } }
                try await tasks.waitForAll()
            }
        }
        let changes = KPIKeys(layout: layout).changes
        let orders = layout.streamKey(.orders, partition: 0)
        let observerRedis = try await RedisConnection(url: url)
        let startID = try await observerRedis.xrevrange(changes, count: 1).first?.id.description ?? "0"
        let observer = Task { () -> [(StreamID, ContinuousClock.Instant)] in
            var marks: [(StreamID, ContinuousClock.Instant)] = []
            var position = startID
            while !Task.isCancelled {
                let reads = try await observerRedis.xread(streams: [(changes, position)], count: 1000, block: .milliseconds(200))
                let now = ContinuousClock.now
                for entry in reads.flatMap(\.entries) {
                    position = entry.id.description
                    for part in (entry["through"] ?? "").split(separator: " ") where part.hasPrefix(orders + "=") {
                        if let id = StreamID(String(part.dropFirst(orders.count + 1))) { marks.append((id, now)) }
                    }
                }
            }
            return marks
        }
        // Let the aggregators start (leases, rebuilds; with several, the partitions that move once
        // the last one joins) before producing.
        for await _ in readiness {}
        try await Task.sleep(for: count > 1 ? .seconds(3) : .milliseconds(200))
        let producer = try await RedisConnection(url: url)
        let clock = ContinuousClock()
        let total = Int(Double(rate) * freshnessSeconds)
        var sent: [(StreamID, ContinuousClock.Instant)] = []
        sent.reserveCapacity(total)
        let began = clock.now
        let run = "\(getpid())-\(Int(Date().timeIntervalSince1970))"
        while sent.count < total {
            let due = Int((clock.now - began).seconds * Double(rate))
            if sent.count >= due {
                try await Task.sleep(for: .microseconds(100))
                continue
            }
            let now = Timestamp.now.description
            let n = sent.count
            let fields = [
                "order_id", "BENCH-\(run)-\(n)", "line_number", "1", "customer_id", "C\(n % 5000)", "product_id", "P\(n % 300)",
                "quantity", "1", "unit_price", "19.99", "discount", "0", "status", "placed", "order_ts", now, "updated_at", now,
                "type", "order_line", "schema_version", "1", "event_time", now, "event_id", "bench-\(run)-\(n)", "source", "bench:\(n)",
            ]
            let at = clock.now
            let id = try await producer.xadd(orders, fields: fields)
            sent.append((id, at))
        }
        progress("produced \(total) events at \(rate)/s")
        // Wait until the last one is covered, then stop.
        let last = sent.last!.0
        let deadline = clock.now + .seconds(10)
        while clock.now < deadline {
            let marks = try await producer.xrevrange(changes, count: 1)
            if let through = marks.first?["through"], through.split(separator: " ").contains(where: {
                $0.hasPrefix(orders + "=") && (StreamID(String($0.dropFirst(orders.count + 1))).map { $0 >= last } ?? false)
            }) { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: .milliseconds(300))
        observer.cancel()
        for group in groups { await group.triggerGracefulShutdown() }
        let marks = try await observer.value
        try await aggregator.value

        var latencies: [Double] = []
        var index = 0
        for (id, at) in sent {
            while index < marks.count && marks[index].0 < id { index += 1 }
            guard index < marks.count else { break }
            latencies.append((marks[index].1 - at).seconds * 1000)
        }
        guard latencies.count == sent.count else {
            throw RedisError(.unexpectedReply, "only \(latencies.count) of \(sent.count) produced events became readable")
        }
        latencies.sort()
        let figures = Freshness(
            rate: rate, events: sent.count, p50Milliseconds: Self.percentile(latencies, 50),
            p99Milliseconds: Self.percentile(latencies, 99), maxMilliseconds: latencies.last ?? 0)
        progress("freshness: p50 \(String(format: "%.2f", figures.p50Milliseconds)) ms, p99 \(String(format: "%.2f", figures.p99Milliseconds)) ms, max \(String(format: "%.2f", figures.maxMilliseconds)) ms")
        return figures
    }

    public static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }

    /// Deletes every key of the benchmark's namespace.
    static func cleanUp(_ layout: StreamLayout, url: String) async throws {
        let redis = try await RedisConnection(url: url)
        let keys = try await redis.scanKeys(match: "\(layout.namespace):*")
        // One key per command: on a cluster the keys live in many slots.
        var start = 0
        while start < keys.count {
            var batch = RedisCommandBuffer()
            for key in keys[start..<min(start + 1000, keys.count)] { batch.append("UNLINK", key) }
            _ = try await redis.send(batch)
            start += 1000
        }
    }
}

/// Counts down the aggregators that announced they are ready.
final class ReadyCount: Sendable {
    private let left: Mutex<Int>
    init(_ count: Int) { left = Mutex(count) }
    /// True for the call that brings it to zero.
    func decrement() -> Bool { left.withLock { $0 -= 1; return $0 == 0 } }
}
