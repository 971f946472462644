import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PostgresClient
import RedisClient
import Testing
import Contract
import Dashboard
import StreamRuntime

/// What Prometheus and Grafana are given: every metric the alerting rules
/// (deploy/prometheus/alerts.yml) and the Grafana board (deploy/grafana/streamwarehouse.json)
/// query is served by some kind of warehouse process; and listeners that leave loopback demand
/// the token.
@Suite(.serialized) struct MonitoringTests {
    static let token = "monitoring-test-token-0123456789"

    /// Metric names the rules and the board query: every `warehouse_…` identifier in the rules'
    /// `expr` (comments and annotations left out) and in the board's targets' `expr`.
    static func queriedMetrics() throws -> Set<String> {
        let root = TestServers.packageRoot
        let rules = try String(contentsOf: root.appendingPathComponent("deploy/prometheus/alerts.yml"), encoding: .utf8)
        var queries = rules.split(separator: "\n").filter { line in
            let text = line.trimmingCharacters(in: .whitespaces)
            return !text.hasPrefix("#") && !text.hasPrefix("summary:") && !text.hasPrefix("description:")
        }.map(String.init)
        let board = try JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent("deploy/grafana/streamwarehouse.json"))) as? [String: Any]
        for panel in board?["panels"] as? [[String: Any]] ?? [] {
            for target in panel["targets"] as? [[String: Any]] ?? [] { queries.append(target["expr"] as? String ?? "") }
        }
        var names = Set<String>()
        let pattern = try Regex(#"warehouse_[a-z_]*[a-z]"#)
        for query in queries {
            for match in query.matches(of: pattern) { names.insert(String(query[match.range])) }
        }
        return names
    }

    /// The names of the samples in an exposition text.
    static func servedNames(_ text: String) -> Set<String> {
        Set(text.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }.map { line in
            String(line.prefix { $0 != "{" && $0 != " " })
        })
    }

    /// A TCP port on 127.0.0.1 nothing listens on now.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw TestFailure("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    struct TestFailure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// GET `path` on 127.0.0.1:`port` (nil when nothing answers). A response that is still
    /// streaming after 3 s (the server-sent events, when served) counts as a 200.
    static func get(_ port: Int, _ path: String, authorization: String? = nil) async -> TestClient.Response? {
        let client = TestClient(host: "127.0.0.1", port: port)
        client.connect()
        var fields = HTTPFields()
        if let authorization { fields[.authorization] = authorization }
        let headers = fields
        let response = await withTaskGroup(of: TestClient.Response??.self) { group in
            group.addTask { try? await client.get(path, headers: headers) }
            group.addTask {
                try? await Task.sleep(for: .seconds(3))
                return .some(TestClient.Response(head: HTTPResponse(status: .ok), body: nil))
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            try? await client.shutdown()
            return first ?? nil
        }
        return response
    }

    static func body(_ response: TestClient.Response?) -> String {
        response?.body.map { String(buffer: $0) } ?? ""
    }

    static func stop(_ processes: [Process]) async {
        for process in processes where process.isRunning { process.interrupt() }
        for process in processes { await TestServers.waitForExit(process) }
    }

    @Test(.timeLimit(.minutes(3)))
    func everyMetricTheRulesAndTheBoardQueryIsServed() async throws {
        let queried = try Self.queriedMetrics()
        #expect(queried.count >= 15, "the rules and the board query \(queried.sorted())")
        let warehouse = try await WarehouseFixture.make()
        let namespace = TestServers.unique("swmon")
        let environment = ["DATABASE_URL": warehouse.url, "WAREHOUSE_NAMESPACE": namespace]
        let ports = (replay: try Self.freePort(), loader: try Self.freePort(), kpi: try Self.freePort(), dashboard: try Self.freePort(), produce: try Self.freePort())
        let log = "/tmp/\(namespace)"
        // data/ spans about two years: at 40 days a second the replay runs for about 20 s, long enough to be scraped.
        var processes = [try TestServers.startWarehouse(
            ["replay", "--data", "data", "--speed", "3456000", "--metrics-port", String(ports.replay)], environment: environment, stderrPath: log + "-replay.log")]
        processes.append(try TestServers.startWarehouse(
            ["consume", "--group", "warehouse", "--block-ms", "100", "--metrics-port", String(ports.loader)], environment: environment, stderrPath: log + "-loader.log"))
        processes.append(try TestServers.startWarehouse(
            ["consume", "--group", "kpi", "--block-ms", "100", "--lease-ms", "2000", "--metrics-port", String(ports.kpi)], environment: environment, stderrPath: log + "-kpi.log"))
        processes.append(try TestServers.startWarehouse(
            ["dashboard", "--port", String(ports.dashboard), "--reconcile-every-s", "2"], environment: environment, stderrPath: log + "-dashboard.log"))
        processes.append(try TestServers.startWarehouse(
            ["produce", "synthetic", "--rate", "20", "--duration", "120s", "--metrics-port", String(ports.produce)], environment: environment, stderrPath: log + "-produce.log"))
        // What each kind is there for.
        let consumerMetrics: Set<String> = ["warehouse_events_applied_total", "warehouse_circuit_breaker_state", "warehouse_batch_duration_seconds_bucket", "warehouse_group_status", "warehouse_lag_entries"]
        let expected: [String: Set<String>] = [
            "replay": ["warehouse_events_published_total"],
            "produce synthetic": ["warehouse_events_published_total"],
            "warehouse consumer": consumerMetrics,
            "kpi consumer": consumerMetrics,
            "dashboard": ["warehouse_reconcile_drift_kpis", "warehouse_reconcile_last_settled_timestamp_seconds", "warehouse_redis_up", "warehouse_postgres_up",
                          "warehouse_dead_letter_entries", "warehouse_group_status", "warehouse_http_requests_total", "warehouse_cache_hits_total"],
        ]
        let kinds = [("replay", ports.replay), ("warehouse consumer", ports.loader), ("kpi consumer", ports.kpi), ("dashboard", ports.dashboard), ("produce synthetic", ports.produce)]
        var served: [String: Set<String>] = [:]
        let deadline = ContinuousClock.now + .seconds(90)
        while ContinuousClock.now < deadline {
            for (kind, port) in kinds {
                if let response = await Self.get(port, "/metrics"), response.head.status == .ok {
                    served[kind, default: []].formUnion(Self.servedNames(Self.body(response)))
                }
            }
            let all = served.values.reduce(into: Set<String>()) { $0.formUnion($1) }
            if queried.isSubset(of: all) && expected.allSatisfy({ $0.value.isSubset(of: served[$0.key] ?? []) }) { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        await Self.stop(processes)
        let all = served.values.reduce(into: Set<String>()) { $0.formUnion($1) }
        #expect(queried.subtracting(all).isEmpty, "queried but served by no process: \(queried.subtracting(all).sorted()); logs in \(log)-*.log")
        for (kind, names) in expected.sorted(by: { $0.key < $1.key }) {
            #expect(names.subtracting(served[kind] ?? []).isEmpty, "\(kind) does not serve \(names.subtracting(served[kind] ?? []).sorted())")
        }
    }

    /// The value of the sample `name` (exactly as written, labels included) in an exposition text.
    static func sample(_ text: String, _ name: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.split(separator: " ").last ?? "")
        }
        return nil
    }

    @Test(.timeLimit(.minutes(3)))
    func aDriftPlantedInPostgresShowsInTheDashboardsDriftGauge() async throws {
        let warehouse = try await WarehouseFixture.make()
        let namespace = TestServers.unique("swdrift")
        let environment = ["DATABASE_URL": warehouse.url, "WAREHOUSE_NAMESPACE": namespace]
        for arguments in [["replay", "--data", "data"], ["consume", "--group", "warehouse", "--until-drained"], ["consume", "--group", "kpi", "--until-drained"]] {
            let run = try await TestServers.runWarehouse(arguments, environment: environment)
            #expect(run.status == 0, "\(arguments): \(run.stderr)")
        }
        let port = try Self.freePort()
        let dashboard = try TestServers.startWarehouse(
            ["dashboard", "--port", String(port), "--reconcile-every-s", "1"], environment: environment, stderrPath: "/tmp/\(namespace)-dashboard.log")
        defer { if dashboard.isRunning { dashboard.interrupt() } }
        func waitFor(_ what: String, _ condition: (String) -> Bool) async throws -> String {
            let deadline = ContinuousClock.now + .seconds(60)
            var text = ""
            while ContinuousClock.now < deadline {
                text = Self.body(await Self.get(port, "/metrics"))
                if condition(text) { return text }
                try await Task.sleep(for: .milliseconds(300))
            }
            Issue.record("\(what) within 60 s; /metrics:\n\(text.split(separator: "\n").filter { $0.contains("reconcile") }.joined(separator: "\n"))")
            return text
        }
        let clean = try await waitFor("a clean reconcile") { (Self.sample($0, #"warehouse_reconcile_runs_total{result="clean"}"#) ?? 0) >= 1 }
        #expect(Self.sample(clean, "warehouse_reconcile_drift_kpis") == 0)
        #expect(Self.sample(clean, "warehouse_reconcile_compared_kpis") ?? 0 > 100)
        // One payment changed behind the pipeline's back: both payments-by-method and by-status amounts drift.
        _ = try await warehouse.postgres.execute("UPDATE fact_payments SET amount = amount + 1 WHERE payment_id = (SELECT min(payment_id) FROM fact_payments)")
        let drifted = try await waitFor("a drifting reconcile") { (Self.sample($0, "warehouse_reconcile_drift_kpis") ?? 0) > 0 }
        #expect(Self.sample(drifted, "warehouse_reconcile_drift_kpis") == 2)
        #expect((Self.sample(drifted, #"warehouse_reconcile_runs_total{result="drift"}"#) ?? 0) >= 1)
        await Self.stop([dashboard])
        let log = (try? String(contentsOfFile: "/tmp/\(namespace)-dashboard.log", encoding: .utf8)) ?? ""
        #expect(log.contains("DRIFT in 2 of") && log.contains("payments.by_method"), "the dashboard logs which KPIs drift: \(log)")
    }

    /// Ctrl-C (or a container's SIGTERM) stops the dashboard at once, also while its periodic
    /// reconcile waits for its next run (it had waited out its 300 s interval).
    @Test(.timeLimit(.minutes(2)))
    func theDashboardStopsPromptlyWhileItsReconcileWaits() async throws {
        let port = try Self.freePort()
        let environment = ["WAREHOUSE_NAMESPACE": TestServers.unique("swstop")]
        for signal in [SIGINT, SIGTERM] {
            let dashboard = try TestServers.startWarehouse(["dashboard", "--port", String(port)], environment: environment)
            let up = ContinuousClock.now + .seconds(30)
            while await Self.get(port, "/health") == nil && ContinuousClock.now < up { try await Task.sleep(for: .milliseconds(200)) }
            try await Task.sleep(for: .seconds(6))   // past the first reconcile, into the 300 s wait
            let sent = ContinuousClock.now
            kill(dashboard.processIdentifier, signal)
            let exited = await withTaskGroup(of: Bool.self) { group in
                group.addTask { await TestServers.waitForExit(dashboard); return true }
                group.addTask { try? await Task.sleep(for: .seconds(10)); return false }
                let first = await group.next() ?? false
                if !first { kill(dashboard.processIdentifier, SIGKILL) }
                group.cancelAll()
                return first
            }
            #expect(exited, "signal \(signal): the dashboard was still running 10 s later")
            print("signal \(signal): the dashboard exited after \(ContinuousClock.now - sent)")
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func listenersOffLoopbackDemandTheToken() async throws {
        let namespace = TestServers.unique("swauth")
        // Without a token, neither a dashboard nor a metrics endpoint binds a non-loopback address.
        let bare = ["WAREHOUSE_NAMESPACE": namespace, "WAREHOUSE_AUTH_TOKEN": ""]
        let dashboard = try await TestServers.runWarehouse(["dashboard", "--host", "0.0.0.0", "--port", String(try Self.freePort())], environment: bare)
        #expect(dashboard.status != 0 && dashboard.stderr.contains("WAREHOUSE_AUTH_TOKEN"), "\(dashboard.stderr)")
        let consumer = try await TestServers.runWarehouse(
            ["consume", "--group", "kpi", "--until-drained", "--metrics-host", "0.0.0.0", "--metrics-port", String(try Self.freePort())], environment: bare)
        #expect(consumer.status != 0 && consumer.stderr.contains("WAREHOUSE_AUTH_TOKEN"), "\(consumer.stderr)")
        let short = try await TestServers.runWarehouse(
            ["dashboard", "--host", "0.0.0.0", "--port", String(try Self.freePort())], environment: ["WAREHOUSE_AUTH_TOKEN": "short"])
        #expect(short.status != 0 && short.stderr.contains("at least 16"), "\(short.stderr)")

        let environment = ["WAREHOUSE_NAMESPACE": namespace, "WAREHOUSE_AUTH_TOKEN": Self.token]
        let dashboardPort = try Self.freePort(), metricsPort = try Self.freePort()
        let processes = [
            try TestServers.startWarehouse(["dashboard", "--host", "0.0.0.0", "--port", String(dashboardPort), "--reconcile-every-s", "0"], environment: environment),
            try TestServers.startWarehouse(
                ["consume", "--group", "kpi", "--metrics-host", "0.0.0.0", "--metrics-port", String(metricsPort)], environment: environment),
        ]
        defer { for process in processes where process.isRunning { process.interrupt() } }
        for port in [dashboardPort, metricsPort] {
            let deadline = ContinuousClock.now + .seconds(30)
            while await Self.get(port, "/health") == nil && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
        }
        let bearer = "Bearer \(Self.token)"
        let basic = "Basic " + Data("anyone:\(Self.token)".utf8).base64EncodedString()
        // Probes stay open.
        #expect(await Self.get(dashboardPort, "/health")?.head.status == .ok)
        #expect(await Self.get(dashboardPort, "/ready")?.head.status == .ok)
        #expect(await Self.get(metricsPort, "/health")?.head.status == .ok)
        // Everything else: 401 without the token (or with a wrong one), with a challenge a browser prompts for.
        for path in ["/", "/app.js", "/api/kpis", "/api/health", "/events", "/metrics", "/api/analytics/top-products"] {
            let none = await Self.get(dashboardPort, path)
            #expect(none?.head.status == .unauthorized, "\(path) without the token: \(String(describing: none?.head.status))")
            #expect(none?.head.headerFields[values: .wwwAuthenticate].contains { $0.hasPrefix("Basic") } == true)
            #expect(await Self.get(dashboardPort, path, authorization: "Bearer \(Self.token)x")?.head.status == .unauthorized, "\(path), a wrong token")
            #expect(await Self.get(dashboardPort, path, authorization: "Basic " + Data("anyone:nope".utf8).base64EncodedString())?.head.status == .unauthorized)
        }
        #expect(await Self.get(metricsPort, "/metrics")?.head.status == .unauthorized)
        #expect(await Self.get(metricsPort, "/metrics", authorization: "Bearer nope-nope-nope-nope")?.head.status == .unauthorized)
        // With it: served.
        for path in ["/", "/api/kpis", "/metrics"] {
            #expect(await Self.get(dashboardPort, path, authorization: bearer)?.head.status == .ok, "\(path) with the bearer token")
            #expect(await Self.get(dashboardPort, path, authorization: basic)?.head.status == .ok, "\(path) with basic auth")
        }
        let metrics = await Self.get(metricsPort, "/metrics", authorization: bearer)
        #expect(metrics?.head.status == .ok && Self.body(metrics).contains("warehouse_circuit_breaker_state"))
        await Self.stop(processes)
    }
}

/// The token check itself (pure logic).
@Suite struct AccessControlTests {
    @Test func loopbackIsTellsLocalFromEverythingElse() {
        for host in ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"] { #expect(AccessControl.isLoopback(host), "\(host)") }
        for host in ["0.0.0.0", "::", "10.0.0.5", "192.168.1.1", "example.com", "127.0.0", "127.0.0.256", "1127.0.0.1", ""] {
            #expect(!AccessControl.isLoopback(host), "\(host)")
        }
    }

    @Test func aListenerOffLoopbackNeedsALongEnoughToken() throws {
        #expect(throws: AccessControl.Refusal.self) { try AccessControl.forListener(host: "0.0.0.0", environment: [:]) }
        #expect(throws: AccessControl.Refusal.self) { try AccessControl.forListener(host: "0.0.0.0", environment: ["WAREHOUSE_AUTH_TOKEN": ""]) }
        #expect(throws: AccessControl.Refusal.self) { try AccessControl.forListener(host: "127.0.0.1", environment: ["WAREHOUSE_AUTH_TOKEN": "fifteen-chars.."]) }
        #expect(try !AccessControl.forListener(host: "127.0.0.1", environment: [:]).required)
        #expect(try AccessControl.forListener(host: "0.0.0.0", environment: ["WAREHOUSE_AUTH_TOKEN": "sixteen-chars..."]).required)
        // A token that is set is required on loopback too.
        #expect(try AccessControl.forListener(host: "127.0.0.1", environment: ["WAREHOUSE_AUTH_TOKEN": "sixteen-chars..."]).required)
    }

    @Test func onlyTheExactTokenIsAdmitted() {
        let access = AccessControl(token: "s3cret-token-0123456789")
        func basic(_ text: String) -> String { "Basic " + Data(text.utf8).base64EncodedString() }
        #expect(access.admits("Bearer s3cret-token-0123456789"))
        #expect(access.admits("bearer s3cret-token-0123456789"))
        #expect(access.admits(basic("anyone:s3cret-token-0123456789")))
        #expect(access.admits(basic(":s3cret-token-0123456789")))
        for wrong in [nil, "", "Bearer", "Bearer ", "Bearer s3cret-token-012345678", "Bearer s3cret-token-01234567890", "Bearer S3cret-token-0123456789",
                      "Token s3cret-token-0123456789", "s3cret-token-0123456789", basic("s3cret-token-0123456789"), basic("user:wrong"),
                      "Basic not-base64!", basic("user:s3cret-token-0123456789\u{0}")] {
            #expect(!access.admits(wrong), "\(String(describing: wrong))")
        }
        #expect(AccessControl(token: nil).admits(nil))
    }
}
