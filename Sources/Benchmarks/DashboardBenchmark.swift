import Foundation
import Hummingbird
import Logging
#if canImport(Glibc)
import Glibc
#endif
public import StreamRuntime
import Contract
import Dashboard
import DataGenerator
import KPIModel
import KPIStore
import PostgresClient
import RedisClient
import RedisWire
import WarehouseSink

/// `warehouse bench dashboard`: `/api/kpis` under `connections` concurrent keep-alive clients
/// for `seconds`, against a dashboard serving a loaded warehouse; and, for comparison, the same
/// KPIs computed by SQL over the star schema (`report summary`).
///
/// The warehouse is the generated benchmark set (`orderLines` lines, about 3.2 events each),
/// replayed into a namespace and schema of its own, loaded by the warehouse group and aggregated
/// by the kpi group once; later runs reuse it. The clients are plain blocking sockets, one thread
/// each (off Swift's cooperative pool, which the in-process server uses).
public struct DashboardBenchmark: Sendable {
    public struct Latency: Codable, Sendable {
        public var p50: Double
        public var p90: Double
        public var p99: Double
        public var max: Double
    }

    public struct Result: Codable, Sendable {
        public var endpoint: String
        public var connections: Int
        public var seconds: Double
        public var requests: Int
        public var errors: Int
        public var requestsPerSecond: Double
        public var latencyMilliseconds: Latency
        public var events: Int
        public var sqlSummaryMilliseconds: Latency
        public var sqlRuns: Int
        /// The open-loop run: requests sent on a fixed schedule, each latency from the moment the
        /// schedule meant it to be sent (so a slow response also delays the ones behind it).
        public var openLoop: OpenLoop?
        enum CodingKeys: String, CodingKey {
            case endpoint, connections, seconds, requests, errors, events
            case openLoop = "open_loop"
            case requestsPerSecond = "requests_per_s"
            case latencyMilliseconds = "latency_ms"
            case sqlSummaryMilliseconds = "sql_summary_ms"
            case sqlRuns = "sql_runs"
        }
    }

    public struct OpenLoop: Codable, Sendable {
        public var rate: Int
        public var connections: Int
        public var seconds: Double
        public var requests: Int
        public var errors: Int
        public var achievedPerSecond: Double
        public var latencyMilliseconds: Latency
        enum CodingKeys: String, CodingKey {
            case rate, connections, seconds, requests, errors
            case achievedPerSecond = "achieved_per_s"
            case latencyMilliseconds = "latency_ms"
        }
    }

    public var servers: ServerConfiguration
    /// Requests/s of the open-loop run (0: none).
    public var openLoopRate = 10_000
    public var orderLines = 100_000
    public var connections = 50
    public var seconds = 10.0
    public var sqlRuns = 5

    public init(servers: ServerConfiguration) { self.servers = servers }

    public func run(progress: @escaping @Sendable (String) -> Void = { _ in }) async throws -> Result {
        let (layout, databaseURL, events) = try await prepare(progress: progress)
        var configuration = DashboardConfiguration()
        configuration.port = 0
        configuration.layout = layout
        configuration.servers = ServerConfiguration(redisURL: servers.redisURL, databaseURL: databaseURL)
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let (portStream, portContinuation) = AsyncStream<Int>.makeStream()
        let app = try await buildApplication(configuration, logger: logger) { port in portContinuation.yield(port) }
        let server = Task { try await app.run() }
        defer { server.cancel() }
        var ports = portStream.makeAsyncIterator()
        guard let port = await ports.next() else { throw CancellationError() }
        progress("dashboard on 127.0.0.1:\(port); \(connections) connections on /api/kpis for \(seconds) s")

        _ = await HTTPLoad.run(port: port, path: "/api/kpis", connections: connections, seconds: 1)  // warm-up
        let load = await HTTPLoad.run(port: port, path: "/api/kpis", connections: connections, seconds: seconds)
        let latency = Self.latency(load.latencies)
        progress(String(format: "/api/kpis: %.0f requests/s, p50 %.2f ms, p99 %.2f ms, %d errors",
                        Double(load.latencies.count) / load.seconds, latency.p50, latency.p99, load.errors))

        var openLoop: OpenLoop?
        if openLoopRate > 0 {
            let run = await HTTPLoad.openLoop(port: port, path: "/api/kpis", rate: openLoopRate, connections: connections, seconds: seconds)
            let latency = Self.latency(run.latencies)
            openLoop = OpenLoop(rate: openLoopRate, connections: connections, seconds: run.seconds, requests: run.latencies.count,
                                errors: run.errors, achievedPerSecond: Double(run.latencies.count) / run.seconds, latencyMilliseconds: latency)
            progress(String(format: "/api/kpis open loop at %d requests/s: p50 %.2f ms, p99 %.2f ms, max %.2f ms, %d errors",
                            openLoopRate, latency.p50, latency.p99, latency.max, run.errors))
        }

        let db = try await PostgresConnection(databaseURL)
        var sql: [Double] = []
        for _ in 0..<sqlRuns {
            let started = ContinuousClock.now
            _ = try await Summary.fromWarehouse(db)
            sql.append((ContinuousClock.now - started).seconds * 1000)
        }
        let sqlLatency = Self.latency(sql)
        progress(String(format: "the same KPIs by SQL (report summary): p50 %.1f ms over %d runs", sqlLatency.p50, sqlRuns))
        return Result(
            endpoint: "/api/kpis", connections: connections, seconds: load.seconds, requests: load.latencies.count, errors: load.errors,
            requestsPerSecond: Double(load.latencies.count) / load.seconds, latencyMilliseconds: latency, events: events,
            sqlSummaryMilliseconds: sqlLatency, sqlRuns: sqlRuns, openLoop: openLoop)
    }

    /// The benchmark warehouse: reused when a previous run completed it.
    private func prepare(progress: @escaping @Sendable (String) -> Void) async throws -> (StreamLayout, String, Int) {
        let layout = StreamLayout(namespace: "swbenchdash\(orderLines)")
        let schema = "sw_bench_dash_\(orderLines)"
        let url = BenchmarkSchema.url(servers.databaseURL, schema: schema)
        let redis = try await RedisConnection(url: servers.redisURL)
        let marker = "\(layout.namespace):{bench}:complete"
        if let events = try await redis.command("GET", marker).string.flatMap(Int.init) {
            progress("reusing the loaded benchmark warehouse (\(events) events; namespace \(layout.namespace), schema \(schema))")
            return (layout, url, events)
        }
        let folder = try DataGenerator.benchmarkDataSet(orderLines: orderLines, name: "sw-bench-load-\(orderLines)", progress: progress)
        let (_, db) = try await BenchmarkSchema.create(schema, databaseURL: servers.databaseURL)
        var replay = Replayer.Options(dataDirectory: folder)
        replay.layout = layout
        let events = try await Replayer(options: replay).run(redis: redis).events
        progress("replayed \(events) events; loading the warehouse and the KPIs")
        let streams = layout.allStreams
        var options = ConsumerGroupRunner.Options(group: "warehouse", consumer: "bench", streams: streams)
        options.batchSize = 2000
        options.block = .milliseconds(100)
        options.untilDrained = true
        _ = try await WarehouseLoader().consume(options, layout: layout, redis: redis, postgres: db)
        options.group = "kpi"
        options.consumer = "aggregator"
        _ = try await KPIAggregator.consume(options, layout: layout, url: servers.redisURL)
        _ = try await redis.command("SET", marker, String(events))
        return (layout, url, events)
    }

    static func latency(_ values: [Double]) -> Latency {
        let sorted = values.sorted()
        func at(_ p: Double) -> Double { KPIBenchmark.percentile(sorted, p) }
        return Latency(p50: at(50), p90: at(90), p99: at(99), max: sorted.last ?? 0)
    }
}

/// Keep-alive HTTP/1.1 GETs from `connections` threads, each with a blocking socket of its own.
enum HTTPLoad {
    struct Outcome {
        var latencies: [Double]
        var errors: Int
        var seconds: Double
    }

    final class Box: @unchecked Sendable {
        let lock = NSLock()
        var latencies: [Double] = []
        var errors = 0
    }

    static func run(port: Int, path: String, connections: Int, seconds: Double) async -> Outcome {
        let started = Date()
        let deadline = started.addingTimeInterval(seconds)
        let (latencies, errors) = await clients(port: port, path: path, connections: connections) { _, send in
            while Date() < deadline {
                let began = DispatchTime.now().uptimeNanoseconds
                send(began)
            }
        }
        return Outcome(latencies: latencies, errors: errors, seconds: Date().timeIntervalSince(started))
    }

    /// `rate` requests/s in all, spread over `connections` threads, each sending on a fixed
    /// schedule (its requests `connections / rate` seconds apart, the threads' schedules offset);
    /// a latency runs from the scheduled moment to the end of the response, so a response that
    /// comes late also counts against the requests queued behind it (no coordinated omission).
    static func openLoop(port: Int, path: String, rate: Int, connections: Int, seconds: Double) async -> Outcome {
        let interval = UInt64(Double(connections) / Double(rate) * 1e9)
        let start = DispatchTime.now().uptimeNanoseconds + 50_000_000
        let end = start + UInt64(seconds * 1e9)
        let (latencies, errors) = await clients(port: port, path: path, connections: connections) { index, send in
            var scheduled = start + interval * UInt64(index) / UInt64(connections)
            while scheduled < end {
                let now = DispatchTime.now().uptimeNanoseconds
                if now < scheduled { usleep(useconds_t((scheduled - now) / 1000)) }
                while DispatchTime.now().uptimeNanoseconds < scheduled {}
                send(scheduled)
                scheduled += interval
            }
        }
        return Outcome(latencies: latencies, errors: errors, seconds: Double(end - start) / 1e9)
    }

    /// Runs `schedule` on `connections` threads, each with a keep-alive connection of its own;
    /// `schedule` calls `send(since)` for each GET, which records the time from `since` (uptime
    /// nanoseconds) to the end of the response, or an error (and connects again).
    private static func clients(
        port: Int, path: String, connections: Int,
        _ schedule: @escaping @Sendable (_ index: Int, _ send: (_ since: UInt64) -> Void) -> Void
    ) async -> (latencies: [Double], errors: Int) {
        let box = Box()
        let group = DispatchGroup()
        for index in 0..<connections {
            group.enter()
            Thread.detachNewThread {
                var mine: [Double] = []
                mine.reserveCapacity(100_000)
                var errors = 0
                var client = Client(port: port)
                let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n".utf8)
                schedule(index) { since in
                    if client.get(request) == 200 {
                        mine.append(Double(DispatchTime.now().uptimeNanoseconds - since) / 1_000_000)
                    } else {
                        errors += 1
                        client.close()
                        client = Client(port: port)
                    }
                }
                client.close()
                box.lock.lock()
                box.latencies += mine
                box.errors += errors
                box.lock.unlock()
                group.leave()
            }
        }
        // Waited for without blocking a thread of Swift's cooperative pool (the server in this
        // process needs them).
        await withCheckedContinuation { continuation in group.notify(queue: .global()) { continuation.resume() } }
        return (box.latencies, box.errors)
    }

    /// One connection: send a GET, read the status line, the headers and a Content-Length body.
    struct Client {
        var fd: Int32 = -1
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        let port: Int

        init(port: Int) {
            self.port = port
            connect()
        }

        mutating func connect() {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let fd = self.fd
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if result != 0 { close() }
        }

        mutating func close() {
            if fd >= 0 { Glibc.close(fd) }
            fd = -1
            buffer.removeAll()
        }

        /// The status code, or 0 when the connection failed.
        mutating func get(_ request: [UInt8]) -> Int {
            guard fd >= 0 else { return 0 }
            let sent = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent == request.count else { return 0 }
            var headerEnd: Int?
            var length = 0
            var status = 0
            while true {
                if headerEnd == nil, let end = find(buffer) {
                    headerEnd = end
                    let head = String(decoding: buffer[0..<end], as: UTF8.self)
                    let lines = head.split(separator: "\r\n")
                    status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
                    for line in lines.dropFirst() where line.lowercased().hasPrefix("content-length:") {
                        length = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
                    }
                }
                if let end = headerEnd, buffer.count >= end + 4 + length {
                    buffer.removeSubrange(0..<(end + 4 + length))
                    return status
                }
                let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard count > 0 else { return 0 }
                buffer += chunk[0..<count]
            }
        }

        private func find(_ bytes: [UInt8]) -> Int? {
            guard bytes.count >= 4 else { return nil }
            for index in 0...(bytes.count - 4) where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
                return index
            }
            return nil
        }
    }
}
