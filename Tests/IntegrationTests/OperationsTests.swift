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

/// `produce`, the trimmer and back-pressure against the real Redis.
@Suite struct OperationsTests {
    static let header = "order_id,line_number,customer_id,product_id,quantity,unit_price,discount,status,order_ts,updated_at"

    @Test func produceReportsEachBadLineAndPublishesTheGoodOnes() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swp"))
        let csv = [
            Self.header,
            "A1,1,C001,P001,2,10.00,0,placed,2024-12-08T10:00:00Z,2024-12-08T10:00:00Z",
            "A1,2,C001,P002,lots,10.00,0,placed,2024-12-08T10:00:00Z,2024-12-08T10:00:00Z",
            "A2,1,C002,P003,1,5.00,0,placed,2024-12-08T11:00:00Z,2024-12-08T11:00:00Z",
            "A2,2,C002,P003,1,5.00,0,sold,2024-12-08T11:00:00Z,2024-12-08T11:00:00Z",
            "A3,1,C002,P003,1,5.00,0,placed,not a time,2024-12-08T11:00:00Z",
        ].joined(separator: "\n") + "\n"
        let run = try await TestServers.runWarehouse(
            ["produce", "--stdin", "--entity", "orders", "--format", "csv", "--namespace", layout.namespace], stdin: csv)
        #expect(run.status == 1, "some lines were rejected: \(run.stderr)")
        #expect(run.stderr.contains("stdin:3 [quantity]") && run.stderr.contains("stdin:5 [status]") && run.stderr.contains("stdin:6 [order_ts]"), "\(run.stderr)")
        let entries = try await redis.xrange(layout.streamKey(.orders, partition: 0))
        #expect(entries.map { $0["order_id"] } == ["A1", "A2"])
        #expect(entries.map { $0["source"] } == ["stdin:2", "stdin:4"])
        #expect(run.stdout.split(separator: "\n").filter { $0.hasPrefix("published") }.count == 2)

        // JSON lines: a malformed line and an unknown column are reported by number too.
        let jsonl = """
            {"order_id":"B1","line_number":1,"customer_id":"C1","product_id":"P1","quantity":1,"unit_price":"3.50","status":"placed","order_ts":"2024-12-08T12:00:00Z","updated_at":"2024-12-08T12:00:00Z"}
            {not json
            {"order_id":"B2","colour":"red"}
            """
        let lines = try await TestServers.runWarehouse(
            ["produce", "--entity", "orders", "--format", "jsonl", "--json", "--namespace", layout.namespace], stdin: jsonl)
        #expect(lines.status == 1)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(lines.stdout.utf8)) as? [String: Any])
        #expect((report["published"] as? [[String: Any]])?.count == 1)
        #expect((report["rejected"] as? [[String: Any]])?.compactMap { $0["line"] as? Int } == [2, 3])

        // All good: exit 0. Unusable input: exit 2.
        let good = try await TestServers.runWarehouse(
            ["produce", "--stdin", "--entity", "orders", "--namespace", layout.namespace],
            stdin: Self.header + "\nA9,1,C1,P1,1,1.00,0,placed,2024-12-08T10:00:00Z,2024-12-08T10:00:00Z\n")
        #expect(good.status == 0, "\(good.stderr)")
        let noHeader = try await TestServers.runWarehouse(["produce", "--stdin", "--entity", "orders", "--namespace", layout.namespace], stdin: "")
        #expect(noHeader.status == 2)
        let missingColumn = try await TestServers.runWarehouse(
            ["produce", "--stdin", "--entity", "orders", "--namespace", layout.namespace], stdin: "order_id,line_number\nA1,1\n")
        #expect(missingColumn.status == 2, "a required column absent from the header: \(missingColumn.stderr)")
        let unknownEntity = try await TestServers.runWarehouse(["produce", "--stdin", "--entity", "widgets", "--namespace", layout.namespace], stdin: "a\n")
        #expect(unknownEntity.status == 2)
    }

    @Test func produceOrderAndItsStatusChanges() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swp"))
        let order = try await TestServers.runWarehouse(
            ["produce", "order", "--customer", "C9", "--line", "P1:2:10.00", "--line", "P2:1:4.50:0.10", "--order-id", "Z1",
             "--namespace", layout.namespace])
        #expect(order.status == 0, "\(order.stderr)")
        let lines = try await redis.xrange(layout.streamKey(.orders, partition: 0))
        #expect(lines.map { $0["line_number"] } == ["1", "2"] && lines.allSatisfy { $0["order_id"] == "Z1" && $0["status"] == "placed" })
        #expect(lines.last?["discount"] == "0.1", "canonical, as replay writes it")
        // The warehouse loads it; a status change then publishes new versions of both lines.
        let warehouse = try await WarehouseFixture.make()
        try await warehouse.load(layout, redis: redis)
        let shipped = try await TestServers.runWarehouse(
            ["produce", "status", "--order", "Z1", "--status", "shipped", "--namespace", layout.namespace], environment: ["DATABASE_URL": warehouse.url])
        #expect(shipped.status == 0, "\(shipped.stderr)")
        let all = try await redis.xrange(layout.streamKey(.orders, partition: 0))
        #expect(all.suffix(2).allSatisfy { $0["status"] == "shipped" } && all.count == 4)
        #expect(all.suffix(2).map { $0["unit_price"] } == lines.map { $0["unit_price"] }, "the rest of each line is as the warehouse holds it")
        try await warehouse.load(layout, redis: redis)
        let statuses = try await warehouse.postgres.query("SELECT status FROM fact_sales WHERE order_id = 'Z1' ORDER BY line_number")
        #expect(statuses.rows.map { $0[0] } == ["shipped", "shipped"])
        let unknown = try await TestServers.runWarehouse(
            ["produce", "status", "--order", "NOPE", "--status", "shipped", "--namespace", layout.namespace], environment: ["DATABASE_URL": warehouse.url])
        #expect(unknown.status == 2)
        let bad = try await TestServers.runWarehouse(["produce", "order", "--customer", "C9", "--line", "P1", "--namespace", layout.namespace])
        #expect(bad.status == 2 && bad.stderr.contains("PRODUCT:QTY"))
    }

    /// `produce order` says when its customer or a product is not in the warehouse (the loader
    /// then makes an inferred member), and still publishes the order.
    @Test func produceOrderWarnsOfAnInferredMember() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swp"))
        _ = try await TestServers.replay(SampleExpectations.dataFolder, into: layout, redis: redis)
        let warehouse = try await WarehouseFixture.make()
        try await warehouse.load(layout, redis: redis)
        func order(_ customer: String, _ lines: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
            try await TestServers.runWarehouse(["produce", "order", "--customer", customer, "--namespace", layout.namespace]
                                               + lines.flatMap { ["--line", $0] }, environment: ["DATABASE_URL": warehouse.url])
        }
        let known = try await order("C002", ["P001:1:19.99", "P002:1"])
        #expect(known.status == 0 && !known.stderr.contains("warning"), "\(known.stderr)")
        let strange = try await order("C-NEW", ["P001:1", "P-NEW:2:5.00"])
        #expect(strange.status == 0, "\(strange.stderr)")
        #expect(strange.stderr.contains("warning: customer C-NEW is not in the warehouse") && strange.stderr.contains("inferred member"), "\(strange.stderr)")
        #expect(strange.stderr.contains("warning: product P-NEW is not in the warehouse") && !strange.stderr.contains("product P001"), "\(strange.stderr)")
        let published = try await redis.xrange(layout.streamKey(.orders, partition: 0))
        #expect(published.filter { $0["customer_id"] == "C-NEW" }.count == 2, "the order is published all the same")
    }

    /// The trimmer removes what every group has consumed, never an entry still pending or not yet
    /// delivered to a group, and nothing until every required group exists.
    @Test func trimmingNeverRemovesWhatAGroupStillNeeds() async throws {
        let redis = try await TestServers.redis()
        let key = TestServers.unique("sw:test:{trim}")
        var batch = RedisCommandBuffer()
        for index in 0..<10 { batch.xadd(key, fields: ["n", String(index)]) }
        _ = try await redis.send(batch)
        let ids = try await redis.xrange(key).map(\.id)
        let trimmer = StreamTrimmer(requiredGroups: ["a", "b"])
        _ = try await redis.xgroupCreate(key, group: "a", id: "0")
        let early = try await trimmer.trim(key, on: redis, nowMilliseconds: Timestamp.now.milliseconds)
        #expect(early.removed == 0 && early.skipped?.contains("group b") == true)
        _ = try await redis.xgroupCreate(key, group: "b", id: "0")

        // a: read 6, acked the first 4 (5 and 6 pending). b: read 8, acked all.
        let readA = try await redis.xreadgroup(group: "a", consumer: "x", streams: [(key, ">")], count: 6)[0].entries
        _ = try await redis.xack(key, group: "a", ids: Array(readA.prefix(4).map(\.id)))
        let readB = try await redis.xreadgroup(group: "b", consumer: "y", streams: [(key, ">")], count: 8)[0].entries
        _ = try await redis.xack(key, group: "b", ids: readB.map(\.id))
        var result = try await trimmer.trim(key, on: redis, nowMilliseconds: Timestamp.now.milliseconds)
        #expect(result.removed == 4 && result.keptFrom == ids[4].description)
        #expect(try await redis.xrange(key).map(\.id) == Array(ids[4...]), "a's pending entries stay")

        // a acknowledges everything it read: now b's undelivered entries (9, 10) and a's (7..10) bound it.
        _ = try await redis.xack(key, group: "a", ids: readA.map(\.id))
        result = try await trimmer.trim(key, on: redis, nowMilliseconds: Timestamp.now.milliseconds)
        #expect(result.removed == 2)
        #expect(try await redis.xrange(key).map(\.id) == Array(ids[6...]), "entries not yet delivered to a stay")
        let pendingA = try await redis.xreadgroup(group: "a", consumer: "x", streams: [(key, ">")], count: 10)[0].entries
        #expect(pendingA.map(\.id) == Array(ids[6...]), "a still reads every entry it had not seen")

        // Retention on top keeps consumed entries younger than it.
        _ = try await redis.xack(key, group: "a", ids: pendingA.map(\.id))
        let kept = try await StreamTrimmer(requiredGroups: ["a", "b"], retention: .seconds(3600))
            .trim(key, on: redis, nowMilliseconds: Timestamp.now.milliseconds)
        #expect(kept.removed == 0)
    }

    /// A replay paused by back-pressure for a group nobody consumes stops on SIGTERM (between
    /// batches, its checkpoint written), and `--resume` then publishes the rest exactly once.
    /// Before the fix the pause ignored the shutdown: the process waited for the group forever.
    @Test func aReplayPausedByBackPressureStopsOnSIGTERM() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swbp"))
        // Large enough that the first lag check (after 500 ms) finds it publishing.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.unique("sw-bp")).path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try DataGenerator(options: DataGenerator.Options(orders: 30_000, seed: 5)).write(to: folder)
        for stream in layout.allStreams { _ = try await redis.command("XGROUP", "CREATE", stream, "warehouse", "0", "MKSTREAM") }
        func published() async throws -> Int {
            var total = 0
            for stream in layout.allStreams { total += try await redis.command("XLEN", stream).int ?? 0 }
            return total
        }
        let replay = try TestServers.startWarehouse(["replay", "--data", folder, "--namespace", layout.namespace, "--max-lag", "1000"])
        // Paused: nothing more published for a second.
        var last = -1
        for _ in 0..<100 {
            try await Task.sleep(for: .milliseconds(500))
            let now = try await published()
            if now > 0 && now == last { break }
            last = now
        }
        #expect(replay.isRunning && last > 1000, "the replay is paused after \(last) entries")
        kill(replay.processIdentifier, SIGTERM)
        let exited = Task { await TestServers.waitForExit(replay); return true }
        let deadline = ContinuousClock.now + .seconds(10)
        while replay.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!replay.isRunning, "a paused replay must stop on SIGTERM")
        if replay.isRunning { kill(replay.processIdentifier, SIGKILL) }
        _ = await exited.value
        let resumed = try await TestServers.runWarehouse(["replay", "--data", folder, "--namespace", layout.namespace, "--resume", "--json"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let total = try await published()
        #expect(total > last, "the resume published the rest")
        let fresh = StreamLayout(namespace: TestServers.unique("swbp"))
        #expect(try await TestServers.replay(folder, into: fresh, redis: redis) == total, "every event published exactly once")
    }

    @Test func backPressureWaitsForTheSlowestGroup() async throws {
        let redis = try await TestServers.redis()
        let key = TestServers.unique("sw:test:{bp}")
        var batch = RedisCommandBuffer()
        for index in 0..<100 { batch.xadd(key, fields: ["n", String(index)]) }
        _ = try await redis.send(batch)
        _ = try await redis.xgroupCreate(key, group: "fast", id: "$")
        _ = try await redis.xgroupCreate(key, group: "slow", id: "0")
        let slowest = try #require(try await BackPressure.slowestLag([key], on: redis))
        #expect(slowest.group == "slow" && slowest.lag == 100)
        var pressure = BackPressure(limit: 50, streams: [key])
        pressure.resumeBelow = 40
        let consumer = try await TestServers.redis()
        let reports = LockedCounter()
        // The slow group catches up only once the publisher is seen waiting (so a loaded machine
        // cannot let it catch up before the first reading).
        let draining = Task {
            while reports.value == 0 { try await Task.sleep(for: .milliseconds(10)) }
            try await Task.sleep(for: .milliseconds(300))
            let read = try await consumer.xreadgroup(group: "slow", consumer: "c", streams: [(key, ">")], count: 70)
            _ = try await consumer.xack(key, group: "slow", ids: read[0].entries.map(\.id))
        }
        let waited = try await pressure.wait(on: redis) { _, _ in reports.increment() }
        try await draining.value
        #expect(waited >= 0.25 && reports.value >= 1, "it waited for the slow group (\(waited) s)")
        #expect(try await pressure.wait(on: redis) { _, _ in } == 0, "under the limit it does not wait")
    }
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}

/// The subcommands the Airflow DAGs run (`dags/`), each as its task calls it.
@Suite struct ScheduledJobCommandsTests {
    static func json(_ text: String) throws -> [String: Any] {
        let line = text.split(separator: "\n").last.map(String.init) ?? ""
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not one JSON object: \(text)")
    }

    @Test func dlqStatsCountsAWindowAndFailsAboveALimit() async throws {
        let namespace = TestServers.unique("swjobs")
        let environment = ["WAREHOUSE_NAMESPACE": namespace]
        let replay = try await TestServers.runWarehouse(["replay", "--data", "data"], environment: environment)
        #expect(replay.status == 0, "\(replay.stderr)")
        let all = try Self.json(try await TestServers.runWarehouse(["dlq", "stats", "--json"], environment: environment).stdout)
        let total = try #require(all["total"] as? Int)
        #expect(total > 0 && all["since"] == nil)
        // Dead-lettered in the last hour: all of them; before an hour ago, or from a minute ahead: none.
        let hour = try Self.json(try await TestServers.runWarehouse(["dlq", "stats", "--since", "1h", "--json"], environment: environment).stdout)
        #expect(hour["total"] as? Int == total && (hour["by_reason"] as? [String: Int]) == (all["by_reason"] as? [String: Int]))
        #expect((hour["since"] as? String)?.hasSuffix("Z") == true)
        let before = try Self.json(try await TestServers.runWarehouse(["dlq", "stats", "--until", "1h", "--json"], environment: environment).stdout)
        #expect(before["total"] as? Int == 0)
        let ahead = Timestamp(microseconds: Timestamp.now.microseconds + 60_000_000).description
        let future = try Self.json(try await TestServers.runWarehouse(["dlq", "stats", "--since", ahead, "--json"], environment: environment).stdout)
        #expect(future["total"] as? Int == 0)
        // Consecutive windows [a, b) and [b, c) count every entry once.
        let now = Timestamp.now
        let middle = try await TestServers.redis().xrange(StreamLayout(namespace: namespace).deadLetterKey, count: total).map(\.id)[total / 2]
        let split = Timestamp(microseconds: Int64(middle.milliseconds) * 1000).description
        let first = try Self.json(try await TestServers.runWarehouse(["dlq", "stats", "--since", "1h", "--until", split, "--json"], environment: environment).stdout)
        let second = try Self.json(try await TestServers.runWarehouse(["dlq", "stats", "--since", split, "--until", now.description, "--json"], environment: environment).stdout)
        #expect((first["total"] as? Int ?? -1) + (second["total"] as? Int ?? -1) == total)
        let limited = try await TestServers.runWarehouse(["dlq", "stats", "--since", "1h", "--fail-above", String(total - 1), "--json"], environment: environment)
        #expect(limited.status == 1 && limited.stderr.contains("more than --fail-above"), "\(limited.stderr)")
        #expect(try await TestServers.runWarehouse(["dlq", "stats", "--fail-above", String(total)], environment: environment).status == 0)
        let bad = try await TestServers.runWarehouse(["dlq", "stats", "--since", "yesterday"], environment: environment)
        #expect(bad.status != 0 && bad.stderr.contains("--since"))
    }

    @Test func calendarCacheAndArchivedSummary() async throws {
        let warehouse = try await WarehouseFixture.make()
        let namespace = TestServers.unique("swjobs")
        let environment = ["DATABASE_URL": warehouse.url, "WAREHOUSE_NAMESPACE": namespace]
        for arguments in [["replay", "--data", "data"], ["consume", "--group", "warehouse", "--until-drained"]] {
            let run = try await TestServers.runWarehouse(arguments, environment: environment)
            #expect(run.status == 0, "\(arguments): \(run.stderr)")
        }
        // The calendar: extended to today + 30, then left as it is.
        let extended = try Self.json(try await TestServers.runWarehouse(["calendar", "extend", "--days-ahead", "30", "--json"], environment: environment).stdout)
        let today = Timestamp.now.microseconds / 86_400_000_000
        #expect(extended["last"] as? String == CivilDate.format(days: today + 30))
        #expect((extended["added"] as? Int ?? 0) > 0)
        let again = try Self.json(try await TestServers.runWarehouse(["calendar", "extend", "--days-ahead", "30", "--json"], environment: environment).stdout)
        #expect(again["added"] as? Int == 0 && again["days"] as? Int == extended["days"] as? Int)
        // The cache: computed, then already there.
        let warmed = try Self.json(try await TestServers.runWarehouse(["cache", "warm", "--json"], environment: environment).stdout)
        let reports = try #require(warmed["warmed"] as? [[String: Any]])
        #expect(reports.count == 5 && reports.allSatisfy { $0["hit"] as? Bool == false })
        #expect(reports.first { $0["report"] as? String == "monthly-revenue" }?["rows"] as? Int ?? 0 > 0)
        let rewarmed = try Self.json(try await TestServers.runWarehouse(["cache", "warm", "top-products", "--json"], environment: environment).stdout)
        #expect((rewarmed["warmed"] as? [[String: Any]])?.map { $0["hit"] as? Bool } == [true])
        // The summary, archived: the same JSON as printed, written whole.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(namespace)
        let path = folder.appendingPathComponent("summary/2026-12-01.json").path
        let archived = try Self.json(try await TestServers.runWarehouse(["report", "summary", "--json", "--output", path], environment: environment).stdout)
        #expect(archived["output"] as? String == path)
        let printed = try await TestServers.runWarehouse(["report", "summary", "--json"], environment: environment).stdout
        #expect(try String(contentsOfFile: path, encoding: .utf8) == printed)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("summary").path) == ["2026-12-01.json"], "no temporary file left")
        try? FileManager.default.removeItem(at: folder)
        #expect(try await TestServers.runWarehouse(["report", "summary", "--output", path], environment: environment).status != 0, "--output needs --json")
    }
}
