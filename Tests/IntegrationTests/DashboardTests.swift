import Dashboard
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import RedisClient
import Testing
#if canImport(Glibc)
import Glibc
#endif
import Contract
import KPIModel
import StreamRuntime
import WarehouseSink
import KPIStore
import DataGenerator
import RedisWire
import PostgresClient

/// The dashboard's routes on a loaded warehouse: every endpoint's shape and errors (in process,
/// through the router), and server-sent events on a real socket.
@Suite struct DashboardTests {
    /// The sample replayed, loaded into a warehouse schema of its own and aggregated.
    static func loaded() async throws -> (DashboardConfiguration, WarehouseFixture, RedisConnection) {
        MetricsExporter.bootstrap()
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swd"))
        _ = try await TestServers.replay(SampleExpectations.dataFolder, into: layout, redis: redis)
        let warehouse = try await WarehouseFixture.make()
        try await warehouse.load(layout, redis: redis, batch: 100)
        try await KPITests.aggregate(layout)
        var configuration = DashboardConfiguration()
        configuration.port = 0
        configuration.layout = layout
        configuration.servers = ServerConfiguration(redisURL: try TestServers.redisURL(), databaseURL: warehouse.url)
        configuration.healthEvery = .milliseconds(300)
        return (configuration, warehouse, redis)
    }

    static func object(_ buffer: ByteBuffer) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any])
    }

    @Test func productNamesForTheIDsAPageShows() async throws {
        let (configuration, _, _) = try await Self.loaded()
        let app = try await buildApplication(configuration)
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/products?ids=P001,P011,NOPE", method: .get) { response in
                #expect(response.status == .ok)
                let products = try #require(try Self.object(response.body)["products"] as? [String: [String: Any]])
                #expect(Set(products.keys) == ["P001", "P011"], "an unknown id is left out: \(products)")
                #expect(products["P011"]?["name"] as? String == "Écouteurs \"Pro\", sans fil")
                #expect(products["P001"]?["inferred"] as? Bool == false && products["P001"]?["category"] as? String != nil)
            }
            try await client.execute(uri: "/api/products", method: .get) { response in
                let object = try Self.object(response.body)
                #expect(response.status == .ok && (object["products"] as? [String: Any])?.isEmpty == true)
            }
            let tooMany = (1...101).map { "P\($0)" }.joined(separator: ",")
            try await client.execute(uri: "/api/products?ids=\(tooMany)", method: .get) { response in
                #expect(response.status == .badRequest && String(buffer: response.body).contains("at most 100"))
            }
        }
    }

    @Test func everyEndpointHasItsShape() async throws {
        let (configuration, _, redis) = try await Self.loaded()
        let app = try await buildApplication(configuration)
        try await app.test(.router) { client in
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.status == .ok && response.headers[.contentType]?.hasPrefix("text/html") == true)
                let page = String(buffer: response.body)
                #expect(page.contains("<title>StreamWarehouse</title>") && page.contains("/app.js"))
                #expect(!page.contains("http://") || page.contains("http://www.w3.org"), "no external asset")
            }
            for asset in ["/app.js", "/app.css", "/favicon.ico"] {
                try await client.execute(uri: asset, method: .get) { #expect($0.status == .ok, "\(asset)") }
            }
            try await client.execute(uri: "/health", method: .get) { response in
                let object = try Self.object(response.body)
                #expect(response.status == .ok && object["status"] as? String == "ok")
            }
            try await client.execute(uri: "/ready", method: .get) { response in
                let object = try Self.object(response.body) as? [String: String]
                #expect(response.status == .ok)
                #expect(object == ["redis": "ok", "postgres": "ok", "status": "ready"])
            }

            // /api/kpis is the `kpis --json` shape: the sample's expected answers and the extras.
            try await client.execute(uri: "/api/kpis", method: .get) { response in
                #expect(response.status == .ok && response.headers[.contentType] == "application/json")
                let summary = try JSONDecoder().decode(Summary.self, from: Data(response.body.readableBytesView))
                #expect(summary == (try KPITests.expectedSummary))
                let object = try Self.object(response.body)
                for key in ["windows", "buckets", "aov", "orders_with_revenue", "payment_rates", "low_stock", "watermark"] {
                    #expect(object[key] != nil, "/api/kpis has \(key)")
                }
            }
            // The live feed's snapshot (what /api/kpis serves while the change stream confirms
            // it) equals a fresh read with the same options.
            try await Task.sleep(for: .milliseconds(1500))
            let cached = try await client.execute(uri: "/api/kpis", method: .get) { try Self.object($0.body) as NSDictionary }
            let fresh = try await client.execute(uri: "/api/kpis?top=20&low_stock=10", method: .get) { response in
                #expect(response.headers[HTTPField.Name("X-KPI-Source")!] == "redis")
                return try Self.object(response.body) as NSDictionary
            }
            #expect(cached == fresh)
            // With no change for a while, every request is still served from the snapshot, confirmed
            // within the last second or so (it once aged past its limit once a second, and requests
            // fell back to Redis in bursts).
            var sources: [String] = []
            var ages: [Int] = []
            for _ in 0..<25 {
                try await client.execute(uri: "/api/kpis", method: .get) { response in
                    sources.append(response.headers[HTTPField.Name("X-KPI-Source")!] ?? "?")
                    ages.append(Int(response.headers[HTTPField.Name("X-KPI-Age-Ms")!] ?? "") ?? -1)
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(sources.allSatisfy { $0 == "snapshot" }, "\(sources)")
            #expect(ages.allSatisfy { (0...1500).contains($0) }, "snapshot ages in ms: \(ages)")
            try await client.execute(uri: "/api/kpis?top=3", method: .get) { response in
                let object = try Self.object(response.body)
                #expect((object["top_products"] as? [Any])?.count == 3)
            }
            try await client.execute(uri: "/api/kpis?top=many", method: .get) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("top: 'many' is not an integer"))
            }

            // /api/lag is the `lag --json` shape; /api/health sums it up per group.
            try await client.execute(uri: "/api/lag", method: .get) { response in
                #expect(response.status == .ok)
                let object = try Self.object(response.body)
                #expect(object["status"] as? String != nil && object["generated_at"] as? String != nil)
                let rows = try #require(object["rows"] as? [[String: Any]])
                #expect(Set(rows.compactMap { $0["group"] as? String }) == ["warehouse", "kpi"])
                #expect(rows.allSatisfy { $0["lag"] as? Int == 0 && $0["time_lag_s"] != nil && $0["consumers"] != nil })
            }
            try await client.execute(uri: "/api/health", method: .get) { response in
                #expect(response.status == .ok)
                let health = try Self.object(response.body)
                #expect((health["redis"] as? [String: Any])?["reachable"] as? Bool == true)
                #expect((health["postgres"] as? [String: Any])?["reachable"] as? Bool == true)
                #expect((health["groups"] as? [[String: Any]])?.compactMap { $0["group"] as? String }.sorted() == ["kpi", "warehouse"])
                #expect(health["dead_letters"] as? Int == (try await redis.xlen(configuration.layout.deadLetterKey)))
                #expect(health["inferred_members_unresolved"] as? Int != nil)
                for key in ["events_in_per_s", "events_out_per_s", "cache", "status", "generated_at"] { #expect(health[key] != nil, "\(key)") }
            }

            // Analytics: a miss, then a hit, then a miss again once the loader commits.
            let cache = CacheKeys(layout: configuration.layout)
            for name in AnalyticsCache.reports.keys.sorted() {
                try await client.execute(uri: "/api/analytics/\(name)", method: .get) { response in
                    #expect(response.status == .ok, "\(name): \(String(buffer: response.body))")
                    #expect(response.headers[HTTPField.Name("X-Cache")!] == "miss")
                    let object = try Self.object(response.body)
                    #expect(object["report"] as? String == name && ((object["rows"] as? [Any])?.isEmpty == false), "\(name)")
                }
            }
            try await client.execute(uri: "/api/analytics/monthly-revenue", method: .get) { response in
                #expect(response.headers[HTTPField.Name("X-Cache")!] == "hit")
                let rows = try #require(try Self.object(response.body)["rows"] as? [[String: Any]])
                #expect(rows.first?["month"] != nil && rows.first?["revenue"] != nil)
            }
            _ = try await redis.command("INCR", cache.generation)
            try await client.execute(uri: "/api/analytics/monthly-revenue", method: .get) { response in
                #expect(response.headers[HTTPField.Name("X-Cache")!] == "miss", "a loader commit invalidates the cached answer")
            }
            let stats = try await AnalyticsCache.stats(configuration.layout, redis: redis)
            #expect(stats.hits == 1 && stats.misses == 6)
            try await client.execute(uri: "/api/analytics/nope", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(String(buffer: response.body).contains("monthly-revenue"))
            }

            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                let text = String(buffer: response.body)
                for name in ["warehouse_events_read_total{group=\"kpi\"}", "warehouse_events_acked_total", "warehouse_batch_duration_seconds_bucket",
                             "warehouse_cache_hits_total", "warehouse_cache_misses_total", "warehouse_lag_entries", "warehouse_events_published_total",
                             "warehouse_http_requests_total{route=\"/api/kpis\",status=\"200\"}", "warehouse_http_request_duration_seconds_bucket",
                             "warehouse_circuit_breaker_state{group=\"kpi\"} 0"] {
                    #expect(text.contains(name), "/metrics has \(name)")
                }
            }
            try await client.execute(uri: "/nowhere", method: .get) { #expect($0.status == .notFound) }
        }
    }

    @Test func notReadyWithoutPostgres() async throws {
        var configuration = DashboardConfiguration()
        configuration.port = 0
        configuration.layout = StreamLayout(namespace: TestServers.unique("swd"))
        configuration.servers = ServerConfiguration(redisURL: try TestServers.redisURL(), databaseURL: "postgresql://nobody@127.0.0.1:1/none")
        let app = try await buildApplication(configuration)
        try await app.test(.router) { client in
            try await client.execute(uri: "/ready", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let object = try Self.object(response.body)
                #expect(object["postgres"] as? String == "unreachable")
            }
            try await client.execute(uri: "/health", method: .get) { #expect($0.status == .ok, "alive though not ready") }
            try await client.execute(uri: "/api/analytics/payments", method: .get) { response in
                #expect(response.status == .serviceUnavailable && String(buffer: response.body).contains("PostgreSQL"))
            }
        }
    }

    /// A page subscribed to /events receives the new KPIs within a second of an order reaching
    /// the aggregator.
    @Test(.timeLimit(.minutes(2)))
    func serverSentEventsArriveWithinASecondOfAChange() async throws {
        let (configuration, _, redis) = try await Self.loaded()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.unique("sse-consumer") + ".log").path
        let consumer = try TestServers.startWarehouse(
            ["consume", "--group", "kpi", "--namespace", configuration.layout.namespace, "--block-ms", "500"], stderrPath: log)
        defer { if consumer.isRunning { kill(consumer.processIdentifier, SIGKILL) } }
        let app = try await buildApplication(configuration)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let events = try SSEClient(port: port, path: "/events")
            defer { events.close() }
            let first = try #require(await events.next(named: "kpis", timeout: .seconds(10)))
            let initial = try #require(try JSONSerialization.jsonObject(with: Data(first.data.utf8)) as? [String: Any])
            #expect((initial["counts"] as? [String: Any])?["order_lines"] as? Int == 80)
            let health = try #require(await events.next(named: "health", timeout: .seconds(10)))
            #expect(health.data.contains("\"groups\""))
            // Let the aggregator come up (its rebuild and the merge stage's start), then send an order.
            for _ in 0..<300 {
                let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                if text.contains("state rebuilt") && text.contains("merge stage started") { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            let sent = ContinuousClock.now
            _ = try await redis.xadd(configuration.layout.streamKey(.orders, partition: 0), fields: KPITests.orderFields("SSE-1", eventID: "sse1"))
            var received: ContinuousClock.Instant?
            while let event = await events.next(named: "kpis", timeout: .seconds(15)) {
                let object = try JSONSerialization.jsonObject(with: Data(event.data.utf8)) as? [String: Any]
                if (object?["counts"] as? [String: Any])?["order_lines"] as? Int == 81 {
                    received = event.at
                    break
                }
            }
            let at = try #require(received, "the new order's KPIs were pushed")
            #expect(at - sent < .seconds(1), "pushed \(at - sent) after the order was sent")
        }
        kill(consumer.processIdentifier, SIGTERM)
        await TestServers.waitForExit(consumer)
    }
}

/// A minimal server-sent-events reader on a blocking socket of its own thread: the HTTP/1.1
/// response's chunked body, split into events.
final class SSEClient: @unchecked Sendable {
    struct Event: Sendable {
        var name: String
        var data: String
        var at: ContinuousClock.Instant
    }

    private let socket: Int32
    private let stream: AsyncStream<Event>
    private var iterator: AsyncStream<Event>.AsyncIterator
    private let lock = NSLock()

    init(port: Int, path: String) throws {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        socket = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        let (stream, continuation) = AsyncStream<Event>.makeStream()
        self.stream = stream
        self.iterator = stream.makeAsyncIterator()
        let socket = self.socket
        Thread.detachNewThread {
            var raw: [UInt8] = []
            var body: [UInt8] = []
            var headerDone = false
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = recv(socket, &buffer, buffer.count, 0)
                if count <= 0 { break }
                raw += buffer[0..<count]
                if !headerDone {
                    guard let end = Self.find([13, 10, 13, 10], in: raw) else { continue }
                    raw.removeSubrange(0..<(end + 4))
                    headerDone = true
                }
                // Chunked transfer encoding: size line, data, CRLF.
                while let lineEnd = Self.find([13, 10], in: raw),
                      let size = Int(String(decoding: raw[0..<lineEnd], as: UTF8.self), radix: 16),
                      raw.count >= lineEnd + 2 + size + 2 {
                    body += raw[(lineEnd + 2)..<(lineEnd + 2 + size)]
                    raw.removeSubrange(0..<(lineEnd + 2 + size + 2))
                }
                while let end = Self.find([10, 10], in: body) {
                    let text = String(decoding: body[0..<end], as: UTF8.self)
                    body.removeSubrange(0..<(end + 2))
                    var name = "message", data = ""
                    for line in text.split(separator: "\n") {
                        if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
                        if line.hasPrefix("data: ") { data += line.dropFirst(6) }
                    }
                    if !data.isEmpty { continuation.yield(Event(name: name, data: data, at: .now)) }
                }
            }
            continuation.finish()
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for index in 0...(haystack.count - needle.count) where haystack[index] == needle[0] {
            if Array(haystack[index..<(index + needle.count)]) == needle { return index }
        }
        return nil
    }

    /// The next event called `name` (others are skipped), or nil after `timeout`.
    func next(named name: String, timeout: Duration) async -> Event? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let event: Event?? = await withTaskGroup(of: Event??.self) { group in
                group.addTask { [self] in await self.nextAny() }
                group.addTask {
                    try? await Task.sleep(until: deadline, clock: .continuous)
                    return .some(nil)
                }
                let first = await group.next()!
                group.cancelAll()
                return first
            }
            guard let event else { return nil }
            guard let event else { return nil }
            if event.name == name { return event }
        }
        return nil
    }

    private func nextAny() async -> Event?? {
        var iterator = lock.withLock { self.iterator }
        let event = await iterator.next()
        lock.withLock { self.iterator = iterator }
        return .some(event)
    }

    func close() {
        shutdown(socket, Int32(SHUT_RDWR))
        Glibc.close(socket)
    }
}

/// A real browser (Debian's Chromium, driven by Playwright; scripts/test.sh installs both) loads
/// the page from a running dashboard over a loaded warehouse: no console error, no failed
/// request, every chart holds data. The screenshot goes to $DASHBOARD_SCREENSHOT (or a
/// temporary file) and is kept.
@Suite struct BrowserTests {
    @Test(.timeLimit(.minutes(3)))
    func chromiumLoadsTheDashboardWithoutAnErrorAndEveryChartHoldsData() async throws {
        let (configuration, _, _) = try await DashboardTests.loaded()
        let app = try await buildApplication(configuration)
        let screenshot = ProcessInfo.processInfo.environment["DASHBOARD_SCREENSHOT"]
            ?? FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.unique("dashboard") + ".png").path
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let script = TestServers.packageRoot.appendingPathComponent("scripts/browser_check.py").path
            let run = try await TestServers.run("python3", [script, "http://127.0.0.1:\(port)/", screenshot, "--timeout-s", "60"])
            #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run.stderr)")
            #expect((report["problems"] as? [String]) == [])
            let charts = try #require(report["charts"] as? [String: Int])
            #expect(charts.count == 7 && charts.values.allSatisfy { $0 > 0 }, "\(charts)")
            let tiles = (report["tiles"] as? [String]) ?? []
            #expect(tiles.contains("Revenue all time: 9,582.92") && tiles.contains("Orders: 43"), "the sample's figures: \(tiles)")
            #expect(FileManager.default.fileExists(atPath: screenshot))
        }
    }
}
