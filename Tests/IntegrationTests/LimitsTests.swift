import Dashboard
import Foundation
import RedisClient
import Testing
import Contract
import KPIModel
import StreamRuntime
import WarehouseSink
import KPIStore
import DataGenerator
import RedisWire
import PostgresClient

/// Every buffer bounded, every limit a clear error: each test crosses one limit.
@Suite struct LimitsTests {
    /// A copy of the sample in a folder of its own, with `extra` appended to `file`.
    static func sampleCopy(appending extra: String = "", to file: String = "orders.csv") throws -> String {
        let folder = "/tmp/" + TestServers.unique("sw-limits")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for entity in Entity.allCases {
            try FileManager.default.copyItem(atPath: SampleExpectations.dataFolder + "/" + entity.fileName, toPath: folder + "/" + entity.fileName)
        }
        if !extra.isEmpty {
            let handle = try #require(FileHandle(forWritingAtPath: folder + "/" + file))
            handle.seekToEndOfFile()
            handle.write(Data(extra.utf8))
            try handle.close()
        }
        return folder
    }

    /// Newlines in `file` (bytes: a CRLF is one grapheme to String, so splitting text would miss it).
    static func lines(of file: String) throws -> Int {
        try Data(contentsOf: URL(fileURLWithPath: file)).reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
    }

    /// An unclosed quote and a record over the limit each cost their own line: both are
    /// dead-lettered with their line and a reason, and the rows after them are published.
    @Test func anUnclosedQuoteAndAnOverlongRecordCostTheirLineOnly() async throws {
        let folder = try Self.sampleCopy()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let first = try Self.lines(of: folder + "/orders.csv") + 1
        let long = String(repeating: "x", count: 10_000)
        let extra = """
            LQ1,1,C001,P001,1,10.00,0,"placed,2024-05-01T10:00:00Z,2024-05-01T10:00:00Z
            LQ2,1,C001,P001,1,10.00,0,placed,2024-05-01T10:00:00Z,2024-05-01T10:00:00Z
            LQ3,1,C001,P001,1,10.00,0,placed,2024-05-01T10:00:00Z,\(long)
            LQ4,1,C001,P001,1,10.00,0,placed,2024-05-01T10:00:00Z,2024-05-01T10:00:00Z

            """
        try (try String(contentsOfFile: folder + "/orders.csv", encoding: .utf8) + extra).write(toFile: folder + "/orders.csv", atomically: true, encoding: .utf8)
        let namespace = TestServers.unique("swlq")
        let run = try await TestServers.runWarehouse(["replay", "--data", folder, "--namespace", namespace, "--max-record-bytes", "4096", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: namespace)
        let dead = try await redis.xrange(layout.deadLetterKey, count: 1000).filter { $0["file"] == "orders.csv" }
        let quote = dead.first { $0["line"] == String(first) }
        #expect(quote?["code"] == "unclosed_quote" && quote?["reason"]?.contains("not closed") == true, "\(dead.map(\.pairs))")
        let overlong = dead.first { $0["line"] == String(first + 2) }
        #expect(overlong?["code"] == "record_too_long" && overlong?["reason"]?.contains("--max-record-bytes") == true)
        let published = try await redis.xrange(layout.streamKey(.orders, partition: 0), count: 10_000).compactMap { $0["order_id"] }
        #expect(published.contains("LQ2") && published.contains("LQ4"), "the rows after the bad ones are published")
        #expect(!published.contains("LQ1") && !published.contains("LQ3"))
    }

    /// The sort's spill to disk stops at its limit with an error that names the flag, before
    /// anything is published.
    @Test func theSortSpillStopsAtItsLimit() async throws {
        let folder = "/tmp/" + TestServers.unique("sw-spill")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try DataGenerator(options: DataGenerator.Options(orders: 20_000, seed: 3)).write(to: folder)
        let namespace = TestServers.unique("swsp")
        let run = try await TestServers.runWarehouse(["replay", "--data", folder, "--namespace", namespace, "--memory-mb", "1", "--max-spill-mb", "1"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("--max-spill-mb"), "\(run.stderr)")
        let redis = try await TestServers.redis()
        #expect(try await redis.command("EXISTS", StreamLayout(namespace: namespace).streamKey(.orders, partition: 0)).int == 0)
        // Within the limit the same replay goes through, spilling.
        let fits = try await TestServers.runWarehouse(["replay", "--data", folder, "--namespace", namespace, "--memory-mb", "1", "--max-spill-mb", "200"])
        #expect(fits.status == 0, "\(fits.stderr)")
        #expect(fits.stdout.contains("sort spilled"), "\(fits.stdout)")
    }

    /// At its cap the dead-letter stream drops its oldest entries (and their fingerprints), says
    /// so on stderr, and keeps the newest.
    @Test func theDeadLetterStreamIsCapped() async throws {
        let namespace = TestServers.unique("swcap")
        let run = try await TestServers.runWarehouse(
            ["replay", "--data", SampleExpectations.dataFolder, "--namespace", namespace, "--dead-letter-cap", "3"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("at its cap of 3 entries"), "\(run.stderr)")
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: namespace)
        #expect(try await redis.xlen(layout.deadLetterKey) == 3)
        #expect(try await redis.command("SCARD", layout.deadLetterSeenKey).int == 3, "the dropped entries' fingerprints went with them")
        let rejected = try SampleExpectations.rejected.count
        #expect(rejected > 3)
    }

    /// A masked column's value never reaches the dead-letter stream, and a masked row cannot be
    /// redriven until the value is given again.
    @Test func maskedColumnsNeverReachTheDeadLetterStream() async throws {
        let secret = "very.private@example.com"
        let folder = try Self.sampleCopy(
            appending: "C990,Mia,Secret,\(secret),Austin,TX,US,Premium,not-a-date,2024-02-01T03:00:00Z\n", to: "customers.csv")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let namespace = TestServers.unique("swmask")
        let run = try await TestServers.runWarehouse(["replay", "--data", folder, "--namespace", namespace, "--dead-letter-mask", "email"])
        #expect(run.status == 0, "\(run.stderr)")
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: namespace)
        let dead = try await redis.xrange(layout.deadLetterKey, count: 1000)
        let row = try #require(dead.first { $0["raw"]?.hasPrefix("C990,") == true })
        #expect(row["raw"] == "C990,Mia,Secret,***,Austin,TX,US,Premium,not-a-date,2024-02-01T03:00:00Z")
        #expect(!dead.contains { entry in entry.pairs.contains { $0.value.contains(secret) } }, "the address is nowhere in the stream")
        let redrive = try await TestServers.runWarehouse(
            ["dlq", "redrive", row.id.description, "--set", "signup_date=2023-01-01", "--namespace", namespace])
        #expect(redrive.status == 1)
        #expect(redrive.stdout.contains("email is masked"), "\(redrive.stdout)")
        let fixed = try await TestServers.runWarehouse(
            ["dlq", "redrive", row.id.description, "--set", "signup_date=2023-01-01", "--set", "email=\(secret)", "--namespace", namespace])
        #expect(fixed.status == 0, "\(fixed.stdout) \(fixed.stderr)")
    }

    /// `produce --stdin` publishes each record as it comes (the pipe still open), and a line over
    /// the limit costs that line only.
    @Test(.timeLimit(.minutes(2)))
    func produceStdinPublishesAsInputComes() async throws {
        let namespace = TestServers.unique("swpin")
        let layout = StreamLayout(namespace: namespace)
        let process = Process()
        process.executableURL = try TestServers.warehouseExecutable()
        process.arguments = ["produce", "--stdin", "--entity", "orders", "--format", "jsonl", "--namespace", namespace, "--max-record-bytes", "65536"]
        let input = Pipe()
        let errors = "/tmp/" + TestServers.unique("sw-pin") + ".log"
        _ = FileManager.default.createFile(atPath: errors, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errors) }
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: errors)
        try process.run()
        func line(_ order: String) -> String {
            #"{"order_id":"\#(order)","line_number":1,"customer_id":"C001","product_id":"P001","quantity":1,"unit_price":"10.00","discount":"0","status":"placed","order_ts":"2024-05-01T10:00:00Z","updated_at":"2024-05-01T10:00:00Z"}"# + "\n"
        }
        input.fileHandleForWriting.write(Data(line("LIVE1").utf8))
        let redis = try await TestServers.redis()
        var seen = 0
        for _ in 0..<100 where seen == 0 {
            seen = try await redis.command("EXISTS", layout.streamKey(.orders, partition: 0)).int == 1
                ? try await redis.xlen(layout.streamKey(.orders, partition: 0)) : 0
            if seen == 0 { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(seen == 1, "the first record was published while stdin was still open")
        input.fileHandleForWriting.write(Data((String(repeating: "y", count: 200_000) + "\n").utf8))
        input.fileHandleForWriting.write(Data(line("LIVE3").utf8))
        try input.fileHandleForWriting.close()
        await TestServers.waitForExit(process)
        #expect(process.terminationStatus == 1, "a rejected line makes the exit status 1")
        let log = try String(contentsOfFile: errors, encoding: .utf8)
        #expect(log.contains("stdin:2") && log.contains("--max-record-bytes"), "\(log)")
        let orders = try await redis.xrange(layout.streamKey(.orders, partition: 0)).compactMap { $0["order_id"] }
        #expect(orders == ["LIVE1", "LIVE3"])
    }

    /// Live pages are capped; `/ready` checks reach the servers once per interval however many
    /// probes arrive, on one kept PostgreSQL connection.
    @Test func liveClientsAndReadinessProbesAreBounded() async throws {
        var configuration = DashboardConfiguration()
        configuration.servers = ServerConfiguration(redisURL: try TestServers.redisURL(), databaseURL: try TestServers.databaseURL())
        configuration.maxLiveClients = 2
        configuration.readyCacheFor = .milliseconds(500)
        let pool = try await RedisPool(url: configuration.servers.redisURL, size: 2)
        let feed = LiveFeed(configuration: configuration, pool: pool)
        let first = await feed.subscribe()
        let second = await feed.subscribe()
        #expect(first != nil && second != nil)
        #expect(await feed.subscribe() == nil, "a third live page is refused")

        let readiness = Readiness(databaseURL: configuration.servers.databaseURL, pool: pool, cacheFor: configuration.readyCacheFor)
        let answers = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<200 { group.addTask { let (r, p) = await readiness.check(); return r && p } }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(answers.allSatisfy { $0 } && answers.count == 200)
        #expect(await readiness.checks == 1, "200 probes, one check")
        try await Task.sleep(for: .milliseconds(600))
        _ = await readiness.check()
        #expect(await readiness.checks == 2)
    }
}
