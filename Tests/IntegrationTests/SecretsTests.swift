import Foundation
import PostgresClient
import RedisClient
import Testing
import Contract
import KPIModel
import StreamRuntime
import WarehouseSink
import KPIStore
import DataGenerator
import RedisWire
import Dashboard

/// No credential is ever printed: a whole run of the pipeline, and its error paths, with a known
/// password in both URLs (Redis's user info; PostgreSQL's user info and `?password=`), and every
/// line of every command's output searched for it.
@Suite(.serialized) struct SecretsTests {
    @Test(.timeLimit(.minutes(5)))
    func noCommandPrintsAPassword() async throws {
        let password = "Pw-" + UUID().uuidString.prefix(12)
        let redis = try await PrivateRedis.start()
        defer { Task { await redis.destroy() } }
        let admin = try await redis.connect()
        _ = try await admin.command("CONFIG", "SET", "requirepass", password)

        let base = try TestServers.databaseURL()   // postgresql://warehouse@127.0.0.1:PORT/warehouse
        let schema = TestServers.unique("whsec")
        let setup = try await TestServers.postgres()
        try await setup.executeScript("CREATE SCHEMA \(schema)")
        let withUserInfo = base.replacingOccurrences(of: "://warehouse@", with: "://warehouse:\(password)@")
            + "?options=-csearch_path%3D\(schema)"
        let withQuery = base + "?password=\(password)&options=-csearch_path%3D\(schema)"
        let redisURL = "redis://:\(password)@127.0.0.1:\(redis.port)/0"
        let namespace = TestServers.unique("swsec")
        var transcript: [(command: String, output: String)] = []

        func run(_ arguments: [String], database: String = withQuery, redisURL: String = redisURL, stdin: String? = nil) async throws -> Int32 {
            let result = try await TestServers.runWarehouse(
                arguments, environment: ["REDIS_URL": redisURL, "DATABASE_URL": database, "WAREHOUSE_NAMESPACE": namespace], stdin: stdin)
            transcript.append((arguments.joined(separator: " "), result.stdout + result.stderr))
            return result.status
        }

        // The pipeline, end to end.
        #expect(try await run(["migrate"], database: withUserInfo) == 0)
        #expect(try await run(["ping"]) == 0)
        #expect(try await run(["replay", "--data", SampleExpectations.dataFolder]) == 0)
        #expect(try await run(["consume", "--until-drained", "--block-ms", "100"], database: withUserInfo) == 0)
        #expect(try await run(["consume", "--group", "kpi", "--until-drained", "--block-ms", "100"]) == 0)
        for command in [["kpis"], ["kpis", "--json"], ["lag"], ["lag", "--json"], ["report", "summary"], ["check"], ["reconcile"],
                        ["streams"], ["dlq", "list"], ["dlq", "stats"]] {
            _ = try await run(command)
        }
        #expect(try await run(["produce", "--stdin", "--entity", "orders", "--format", "jsonl"], stdin: "{\"order_id\": 1}\n") != 0)

        // Error paths: a wrong password, servers that are not there, a malformed URL.
        let wrongRedis = "redis://:not-\(password)@127.0.0.1:\(redis.port)/0"
        #expect(try await run(["ping"], redisURL: wrongRedis) != 0)
        #expect(try await run(["lag"], redisURL: "redis://:\(password)@127.0.0.1:1/0") != 0)
        #expect(try await run(["migrate"], database: "postgresql://warehouse:\(password)@127.0.0.1:1/warehouse?connect_timeout=2") != 0)
        #expect(try await run(["migrate"], database: "postgresql://127.0.0.1:1/warehouse?password=\(password)&connect_timeout=2") != 0)
        #expect(try await run(["kpis"], redisURL: "redis://:\(password)@127.0.0.1:notaport/0") != 0)
        #expect(try await run(["report", "summary"], database: "postgresql://warehouse:\(password)@[bad/warehouse") != 0)

        let leaks = transcript.filter { $0.output.contains(password) }
        #expect(leaks.isEmpty, "printed the password: \(leaks.map { "\($0.command): \($0.output.prefix(400))" })")
        #expect(transcript.count >= 20)
        // The error paths did say what was wrong, with the password hidden.
        let failures = transcript.suffix(6).map(\.output).joined(separator: "\n")
        #expect(failures.contains("***"), "\(failures)")
    }
}
