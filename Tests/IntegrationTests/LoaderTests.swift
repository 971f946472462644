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

/// A fresh schema with the project's migrations applied, and a loader over it.
struct WarehouseFixture {
    let schema: String
    let url: String
    let postgres: PostgresConnection

    static func make() async throws -> WarehouseFixture {
        let schema = TestServers.unique("wh")
        let admin = try await TestServers.postgres()
        try await admin.executeScript("CREATE SCHEMA \(schema)")
        let url = try TestServers.databaseURL(searchPath: schema)
        let postgres = try await PostgresConnection(url)
        let migrations = try Migration.embedded()
        _ = try await Migrator(migrations: migrations).run(on: postgres)
        return WarehouseFixture(schema: schema, url: url, postgres: postgres)
    }

    /// Runs the `warehouse` group over `layout`'s streams until drained.
    @discardableResult
    func load(_ layout: StreamLayout, redis: RedisConnection, batch: Int = 1000) async throws -> ConsumerGroupRunner.Stats {
        var options = ConsumerGroupRunner.Options(
            group: "warehouse", consumer: "test", streams: layout.allStreams)
        options.batchSize = batch
        options.block = .milliseconds(50)
        options.untilDrained = true
        return try await WarehouseLoader().consume(options, layout: layout, redis: redis, postgres: postgres)
    }

    /// A checksum of every table's rows (creation times of inferred members left out).
    func checksums() async throws -> [String: String] {
        var out: [String: String] = [:]
        for table in ["dim_customers", "dim_products", "dim_suppliers", "dim_dates", "customer_versions", "product_versions",
                      "fact_sales", "fact_payments", "fact_inventory_movements"] {
            let row = try await postgres.query(
                "SELECT count(*) || ':' || coalesce(md5(string_agg(r, '|' ORDER BY r)), '') FROM (SELECT (to_jsonb(t) - 'inferred_at')::text AS r FROM \(table) t) s")
            out[table] = row.first?[0]
        }
        return out
    }
}

@Suite struct LoaderTests {
    @Test func theSampleLoadsToTheExpectedAnswers() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swl"))
        _ = try await TestServers.replay(SampleExpectations.dataFolder, into: layout, redis: redis)
        let warehouse = try await WarehouseFixture.make()
        let stats = try await warehouse.load(layout, redis: redis, batch: 50)
        #expect(stats.entries == 417)
        #expect(stats.deadLettered == 0)

        let summary = try await Summary.fromWarehouse(warehouse.postgres)
        let expectedJSON = try JSONSerialization.data(withJSONObject: try #require(try SampleExpectations.json["summary"]))
        let expected = try JSONDecoder().decode(Summary.self, from: expectedJSON)
        #expect(summary.revenue == expected.revenue)
        #expect(summary.topProducts == expected.topProducts)
        #expect(summary.payments == expected.payments)
        #expect(summary.linesByStatus == expected.linesByStatus)
        #expect(summary.inventory == expected.inventory)
        #expect(summary.counts == expected.counts)
        #expect(summary == expected)

        // SCD2: C003 went Premium -> Standard on 2024-01-15: two periods, the later one current.
        let c003 = try await warehouse.postgres.query(
            "SELECT segment, valid_to = 'infinity' AS current, is_current FROM dim_customers WHERE customer_id = 'C003' ORDER BY valid_from")
        #expect(c003.rows.map { $0[0] } == ["Premium", "Standard"])
        #expect(c003.rows.map { $0[2] } == ["f", "t"])
        // An untracked change (C011's e-mail) updated its period in place: one row.
        let c011 = try await warehouse.postgres.query("SELECT email FROM dim_customers WHERE customer_id = 'C011'")
        #expect(c011.rows.map { $0[0] } == ["new11@example.com"])
        // C025 arrived after their first order: no inferred member is left, and the order points at C025's row.
        let inferred = try await warehouse.postgres.query("SELECT count(*) FROM dim_customers WHERE is_inferred")
        #expect(inferred.first?[0] == "0")
        let c025 = try await warehouse.postgres.query("""
            SELECT d.customer_id, d.segment FROM fact_sales f JOIN dim_customers d ON d.customer_key = f.customer_key
            WHERE f.customer_id = 'C025'
            """)
        #expect(!c025.rows.isEmpty)
        #expect(c025.rows.allSatisfy { $0[0] == "C025" && $0[1] == "Standard" })
        // The calendar covers every fact, a year either side.
        let uncovered = try await warehouse.postgres.query(
            "SELECT count(*) FROM fact_sales f WHERE NOT EXISTS (SELECT 1 FROM dim_dates d WHERE d.date_key = f.date_key)")
        #expect(uncovered.first?[0] == "0")

        // Every hard data-quality check passes.
        let quality = try await QualityChecks().run(on: warehouse.postgres)
        #expect(quality.passed, "\(quality.checks.filter { $0.status == .fail })")

        // Loading the same streams again (a replay) changes nothing.
        let before = try await warehouse.checksums()
        _ = try await TestServers.replay(SampleExpectations.dataFolder, into: layout, redis: redis)
        try await warehouse.load(layout, redis: redis)
        #expect(try await warehouse.checksums() == before)
    }

    /// The same events in reverse order, and every event twice, give identical tables.
    @Test func arrivalOrderAndRepeatsDoNotMatter() async throws {
        let redis = try await TestServers.redis()
        let source = StreamLayout(namespace: TestServers.unique("swo"))
        _ = try await TestServers.replay(SampleExpectations.dataFolder, into: source, redis: redis)
        var events: [(Entity, [String])] = []
        for entity in Entity.allCases {
            for entry in try await redis.xrange(source.streamKey(entity, partition: 0), count: 10_000) {
                events.append((entity, entry.fields))
            }
        }

        func publish(_ list: [(Entity, [String])], into layout: StreamLayout) async throws {
            var batch = RedisCommandBuffer()
            for (entity, fields) in list { batch.xadd(layout.streamKey(entity, partition: 0), fields: fields) }
            _ = try await redis.send(batch)
        }
        let forward = StreamLayout(namespace: TestServers.unique("swf"))
        let reversed = StreamLayout(namespace: TestServers.unique("swv"))
        let twice = StreamLayout(namespace: TestServers.unique("swt"))
        try await publish(events, into: forward)
        try await publish(events.reversed(), into: reversed)
        try await publish(events.flatMap { [$0, $0] }.shuffled(), into: twice)

        var checksums: [[String: String]] = []
        for (layout, batch) in [(forward, 1000), (reversed, 7), (twice, 13)] {
            let warehouse = try await WarehouseFixture.make()
            try await warehouse.load(layout, redis: redis, batch: batch)
            checksums.append(try await warehouse.checksums())
        }
        #expect(checksums[0] == checksums[1], "reverse order")
        #expect(checksums[0] == checksums[2], "every event twice, shuffled")
        #expect(checksums[0]["fact_sales"]?.hasPrefix("80:") == true)
    }

    @Test func lateCustomerVersionsMoveFactsToTheRightPeriod() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("sws"))
        let warehouse = try await WarehouseFixture.make()
        let encoder = EventEncoder(layout: layout)
        let customers = try RowValidator(entity: .customers, header: ["customer_id", "country", "segment", "state", "updated_at"])
        let orders = try RowValidator(entity: .orders, header: ["order_id", "line_number", "customer_id", "product_id", "quantity",
                                                                "unit_price", "status", "order_ts", "updated_at"])
        func publish(_ validator: RowValidator, _ fields: [String]) async throws {
            let row = try validator.validate(fields, line: 2).get()
            _ = try await redis.xadd(encoder.streamKey(for: row), fields: encoder.fields(row, source: "test:2"))
        }
        // A fact before its customer: an inferred member.
        try await publish(orders, ["O1", "1", "CX", "PX", "1", "10.00", "placed", "2024-03-10T10:00:00Z", "2024-03-10T10:00:00Z"])
        try await publish(orders, ["O2", "1", "CX", "PX", "1", "20.00", "placed", "2024-06-10T10:00:00Z", "2024-06-10T10:00:00Z"])
        try await warehouse.load(layout, redis: redis)
        var rows = try await warehouse.postgres.query("SELECT is_inferred, segment FROM dim_customers WHERE customer_id = 'CX'")
        #expect(rows.rows.map { $0[0] } == ["t"])
        rows = try await warehouse.postgres.query("SELECT count(*) FROM dim_products WHERE product_id = 'PX' AND is_inferred")
        #expect(rows.first?[0] == "1")
        var quality = try await QualityChecks().run(on: warehouse.postgres)
        #expect(quality.checks.first { $0.name == "inferred_members_unresolved" }?.value == 2)
        #expect(quality.passed, "young inferred members only warn")
        // The customer arrives (Standard since May): the inferred member is filled in, same key.
        let inferredKey = try await warehouse.postgres.query("SELECT customer_key FROM dim_customers WHERE customer_id = 'CX'").first?[0]
        try await publish(customers, ["CX", "US", "Standard", "TX", "2024-05-01T00:00:00Z"])
        try await warehouse.load(layout, redis: redis)
        rows = try await warehouse.postgres.query("SELECT is_inferred, segment, customer_key::text FROM dim_customers WHERE customer_id = 'CX'")
        #expect(rows.rows.map { $0[0] } == ["f"])
        #expect(rows.first?[2] == inferredKey)
        quality = try await QualityChecks().run(on: warehouse.postgres)
        #expect(quality.checks.first { $0.name == "inferred_members_unresolved" }?.value == 1, "only PX is still inferred")
        // A version that arrives late, slotted before: Premium from January. O1 (March) moves to it;
        // O2 (June) stays with Standard.
        try await publish(customers, ["CX", "US", "Premium", "TX", "2024-01-01T00:00:00Z"])
        try await warehouse.load(layout, redis: redis)
        rows = try await warehouse.postgres.query("""
            SELECT f.order_id, d.segment FROM fact_sales f JOIN dim_customers d ON d.customer_key = f.customer_key ORDER BY f.order_id
            """)
        #expect(rows.rows.map { [$0[0], $0[1]] } == [["O1", "Premium"], ["O2", "Standard"]])
        rows = try await warehouse.postgres.query(
            "SELECT segment, is_current FROM dim_customers WHERE customer_id = 'CX' ORDER BY valid_from")
        #expect(rows.rows.map { [$0[0], $0[1]] } == [["Premium", "f"], ["Standard", "t"]])
        // A fact older than the first version joins the first version.
        try await publish(orders, ["O0", "1", "CX", "PX", "1", "5.00", "placed", "2023-06-01T10:00:00Z", "2023-06-01T10:00:00Z"])
        try await warehouse.load(layout, redis: redis)
        rows = try await warehouse.postgres.query("""
            SELECT d.segment FROM fact_sales f JOIN dim_customers d ON d.customer_key = f.customer_key WHERE f.order_id = 'O0'
            """)
        #expect(rows.first?[0] == "Premium")
    }
}

@Suite(.serialized) struct LoaderCrashTests {
    /// kill -9 the loader at random moments during a 200,000-event load, restart it, five times
    /// over: the tables equal an uninterrupted load's and nothing is left pending.
    @Test(.timeLimit(.minutes(8)))
    func killNineFiveTimesLosesAndDoublesNothing() async throws {
        let redis = try await TestServers.redis()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.unique("sw-crash")).path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try DataGenerator(options: DataGenerator.Options(orders: 64_000, seed: 21)).write(to: folder)
        let reference = StreamLayout(namespace: TestServers.unique("swcr"))
        let crashed = StreamLayout(namespace: TestServers.unique("swck"))
        for layout in [reference, crashed] {
            var options = Replayer.Options(dataDirectory: folder)
            options.layout = layout
            let report = try await Replayer(options: options).run(redis: redis)
            #expect(report.events >= 195_000)
        }

        let uninterrupted = try await WarehouseFixture.make()
        try await uninterrupted.load(reference, redis: redis)
        let expected = try await uninterrupted.checksums()

        let victim = try await WarehouseFixture.make()
        let arguments = ["consume", "--namespace", crashed.namespace, "--batch", "500", "--block-ms", "100",
                         "--min-idle-ms", "1000", "--until-drained"]
        let environment = ["DATABASE_URL": victim.url]
        let kills = try await TestServers.killRepeatedly(arguments, environment: environment, after: 400...2500)
        let final = try await TestServers.runWarehouse(arguments, environment: environment)
        #expect(final.status == 0, "stderr: \(final.stderr)")
        #expect(kills >= 3, "the load should have been killed several times (was \(kills))")

        #expect(try await victim.checksums() == expected)
        for entity in Entity.allCases {
            let pending = try await redis.xpending(crashed.streamKey(entity, partition: 0), group: "warehouse")
            #expect(pending.count == 0, "\(entity) has pending entries")
        }
        let dead = try await redis.xlen(crashed.deadLetterKey)
        let deadReference = try await redis.xlen(reference.deadLetterKey)
        #expect(dead == deadReference, "crashes dead-letter nothing more")
    }
}

@Suite struct LoaderPoisonTests {
    static func orderFields(_ order: String, quantity: String = "1", price: String = "10.00") -> [String] {
        ["order_id", order, "line_number", "1", "customer_id", "C1", "product_id", "P1", "quantity", quantity,
         "unit_price", price, "discount", "0", "status", "placed", "order_ts", "2024-03-01T10:00:00Z",
         "updated_at", "2024-03-01T10:00:00Z", "type", "order_line", "schema_version", "1",
         "event_time", "2024-03-01T10:00:00Z", "event_id", String(repeating: order.count % 2 == 0 ? "a" : "b", count: 30) + "\(order.count)0",
         "source", "test:1"]
    }

    /// An event the database refuses every time (its amount overflows) is dead-lettered with the
    /// reason; the events around it in the same batch load.
    @Test func anEntryThatAlwaysFailsIsDeadLetteredAndTheRestLoad() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swpo"))
        let key = layout.streamKey(.orders, partition: 0)
        _ = try await redis.xadd(key, fields: Self.orderFields("O-1"))
        let bad = try await redis.xadd(key, fields: Self.orderFields("O-22", quantity: "2000000000", price: "999999999999"))
        _ = try await redis.xadd(key, fields: Self.orderFields("O-333"))
        let warehouse = try await WarehouseFixture.make()
        let stats = try await warehouse.load(layout, redis: redis)
        #expect(stats.deadLettered == 1)
        let loaded = try await warehouse.postgres.query("SELECT order_id FROM fact_sales ORDER BY order_id")
        #expect(loaded.rows.map { $0[0] } == ["O-1", "O-333"])
        let dead = try await redis.xrange(layout.deadLetterKey)
        #expect(dead.count == 1)
        #expect(dead.first?["entry_id"] == bad.description)
        #expect(dead.first?["stream"] == key)
        #expect(dead.first?["reason"]?.contains("22003") == true, "the reason names the failure: \(dead.first?["reason"] ?? "")")
        #expect(try await redis.xpending(key, group: "warehouse").count == 0)
    }

    /// An entry delivered more times than the limit (a consumer died on it again and again) is
    /// dead-lettered as poison with its delivery count when another consumer reclaims it.
    @Test func aRedeliveredEntryPastTheLimitIsPoison() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swpd"))
        let key = layout.streamKey(.orders, partition: 0)
        try await redis.xgroupCreate(key, group: "warehouse", id: "0")
        let poison = try await redis.xadd(key, fields: Self.orderFields("O-1"))
        // A consumer that keeps dying on it: each read of its pending entries is another delivery.
        _ = try await redis.xreadgroup(group: "warehouse", consumer: "doomed", streams: [(key, ">")], count: 10)
        for _ in 0..<5 {
            _ = try await redis.xreadgroup(group: "warehouse", consumer: "doomed", streams: [(key, "0")], count: 10)
        }
        _ = try await redis.xadd(key, fields: Self.orderFields("O-22"))
        try await Task.sleep(for: .milliseconds(60))

        let warehouse = try await WarehouseFixture.make()
        var options = ConsumerGroupRunner.Options(group: "warehouse", consumer: "survivor", streams: [key])
        options.block = .milliseconds(50)
        options.untilDrained = true
        options.minIdle = .milliseconds(50)
        options.deliveryLimit = 5
        let stats = try await WarehouseLoader().consume(options, layout: layout, redis: redis, postgres: warehouse.postgres)
        #expect(stats.deadLettered == 1)
        let dead = try await redis.xrange(layout.deadLetterKey)
        #expect(dead.first?["entry_id"] == poison.description)
        #expect(dead.first?["code"] == "poison")
        #expect(dead.first?["deliveries"].flatMap(Int.init) ?? 0 > 5)
        let loaded = try await warehouse.postgres.query("SELECT order_id FROM fact_sales")
        #expect(loaded.rows.map { $0[0] } == ["O-22"])
        #expect(try await redis.xpending(key, group: "warehouse").count == 0)
    }
}

@Suite struct RedriveTests {
    @Test func correctedRejectsAreRedrivenAndLoad() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swrd"))
        _ = try await TestServers.replay(SampleExpectations.dataFolder, into: layout, redis: redis)
        let queue = DeadLetterQueue(layout: layout)
        let dead = try await queue.list(on: redis, count: 100)
        let quantityZero = try #require(dead.first { $0["raw"]?.hasPrefix("O9001,") == true })

        // Uncorrected, it is still refused and stays.
        let again = try await TestServers.runWarehouse(["dlq", "redrive", quantityZero.id.description, "--namespace", layout.namespace])
        #expect(again.status == 1)
        #expect(again.stdout.contains("still rejected: quantity"))
        #expect(try await redis.xlen(layout.deadLetterKey) == dead.count)

        // Corrected, it goes to the orders stream and leaves the dead-letter stream.
        let fixed = try await TestServers.runWarehouse(
            ["dlq", "redrive", quantityZero.id.description, "--set", "quantity=2", "--namespace", layout.namespace])
        #expect(fixed.status == 0, "\(fixed.stdout) \(fixed.stderr)")
        #expect(fixed.stdout.contains("redriven to \(layout.streamKey(.orders, partition: 0))"))
        #expect(try await redis.xlen(layout.deadLetterKey) == dead.count - 1)

        let warehouse = try await WarehouseFixture.make()
        try await warehouse.load(layout, redis: redis)
        let row = try await warehouse.postgres.query("SELECT quantity, net_amount::text FROM fact_sales WHERE order_id = 'O9001'")
        #expect(row.first?[0] == "2")
        #expect(row.first?[1] == "39.98")
    }
}

extension LoaderCrashTests {
    /// SIGTERM in the middle of a load: the loader finishes and acknowledges what it has in hand,
    /// exits 0, and leaves nothing pending.
    @Test(.timeLimit(.minutes(3)))
    func sigtermDrainsAndLeavesNothingPending() async throws {
        let redis = try await TestServers.redis()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.unique("sw-term")).path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try DataGenerator(options: DataGenerator.Options(orders: 30_000, seed: 23)).write(to: folder)
        let layout = StreamLayout(namespace: TestServers.unique("swterm"))
        _ = try await TestServers.replay(folder, into: layout, redis: redis)
        let warehouse = try await WarehouseFixture.make()
        let logPath = folder + "/consume.log"
        let process = try TestServers.startWarehouse(
            ["consume", "--namespace", layout.namespace, "--batch", "300", "--block-ms", "100"],
            environment: ["DATABASE_URL": warehouse.url], stderrPath: logPath)
        // Until its first batch is committed (a fixed wait sent the signal before the handler was
        // installed when a loaded machine started the process slowly), then a little more.
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline, process.isRunning {
            let applied = try await warehouse.postgres.query(
                "SELECT coalesce(sum(value), 0)::bigint FROM loader_counters WHERE name = 'events_applied'").first?.decode(Int.self, at: 0) ?? 0
            if applied > 0 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(process.isRunning)
        kill(process.processIdentifier, SIGTERM)
        await TestServers.waitForExit(process)
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        #expect(process.terminationReason == .exit && process.terminationStatus == 0, "\(log)")
        #expect(log.contains("asked to stop; finishing the batch in flight"))
        #expect(!log.lowercased().contains("error"), "a normal stop logs no error: \(log)")
        var pending = 0
        for entity in Entity.allCases {
            pending += try await redis.xpending(layout.streamKey(entity, partition: 0), group: "warehouse").count
        }
        #expect(pending == 0, "a graceful stop leaves nothing pending")
        let loaded = try await warehouse.postgres.query("SELECT count(*) FROM fact_sales").first?.decode(Int.self, at: 0) ?? 0
        #expect(loaded > 0)
    }

    /// PostgreSQL stopped for 20 s in the middle of a load: the loader logs the open circuit, waits,
    /// resumes when the server is back; nothing is lost and nothing is dead-lettered.
    @Test(.timeLimit(.minutes(5)))
    func postgresOutageIsWaitedOut() async throws {
        let redis = try await TestServers.redis()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.unique("sw-outage")).path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try DataGenerator(options: DataGenerator.Options(orders: 64_000, seed: 22)).write(to: folder)
        let reference = StreamLayout(namespace: TestServers.unique("swor"))
        let outage = StreamLayout(namespace: TestServers.unique("swoo"))
        for layout in [reference, outage] {
            _ = try await TestServers.replay(folder, into: layout, redis: redis)
        }
        let uninterrupted = try await WarehouseFixture.make()
        try await uninterrupted.load(reference, redis: redis)
        let expected = try await uninterrupted.checksums()

        // A PostgreSQL of this test's own, so stopping it disturbs no other test.
        let server = try await PrivatePostgres.start()
        let url = "postgresql://warehouse@127.0.0.1:\(server.port)/warehouse"
        let migrated = try await TestServers.runWarehouse(["migrate"], environment: ["DATABASE_URL": url])
        #expect(migrated.status == 0, "\(migrated.stderr)")

        let stderrPath = folder + "/consume.log"
        let process = try TestServers.startWarehouse(
            ["consume", "--namespace", outage.namespace, "--batch", "500", "--block-ms", "100", "--until-drained"],
            environment: ["DATABASE_URL": url], stderrPath: stderrPath)
        try await Task.sleep(for: .milliseconds(1500))
        #expect(process.isRunning, "the load should still be running when the server stops")
        try await server.stop()
        try await Task.sleep(for: .seconds(20))
        #expect(process.isRunning, "the loader waits for the server instead of exiting")
        try await server.startAgain()
        await TestServers.waitForExit(process)
        let log = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus == 0, "\(log)")
        #expect(log.contains("circuit open"), "\(log)")
        #expect(log.contains("circuit closed"), "\(log)")

        let recovered = try await PostgresConnection(url)
        let warehouse = WarehouseFixture(schema: "public", url: url, postgres: recovered)
        #expect(try await warehouse.checksums() == expected)
        #expect(try await redis.xlen(outage.deadLetterKey) == redis.xlen(reference.deadLetterKey), "nothing more dead-lettered")
        for entity in Entity.allCases {
            #expect(try await redis.xpending(outage.streamKey(entity, partition: 0), group: "warehouse").count == 0)
        }
        await server.destroy()
    }
}

/// A throwaway PostgreSQL server for one test, started with the project's own scripts/lib.sh.
struct PrivatePostgres {
    let directory: String
    let port: Int
    /// With `fsync` and `synchronous_commit` on, as a user runs it (otherwise the fast settings).
    var durable = false
    var url: String { "postgresql://warehouse@127.0.0.1:\(port)/warehouse" }
    private var mode: String { durable ? "durable" : "fast" }

    /// A port picked free can be taken by another test's server before this one binds it: the
    /// start is tried again on a fresh port.
    static func start(durable: Bool = false) async throws -> PrivatePostgres {
        var lastError: (any Error)?
        for _ in 0..<3 {
            let directory = "/tmp/" + TestServers.unique("sw-pg")
            let port = Int(try await TestServers.shell("sw_free_port").trimmingCharacters(in: .whitespacesAndNewlines))!
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let server = PrivatePostgres(directory: directory, port: port, durable: durable)
            do {
                _ = try await TestServers.shell("chmod 755 \(directory) && sw_start_postgres \(directory)/pg \(port) \(server.mode)")
                return server
            } catch {
                lastError = error
                await server.destroy()
            }
        }
        throw lastError!
    }

    func stop() async throws { _ = try await TestServers.shell("sw_stop_postgres \(directory)/pg fast") }
    func startAgain() async throws { _ = try await TestServers.shell("sw_start_postgres \(directory)/pg \(port) \(mode)") }
    /// kill -9 of every process of the server (as a power cut would end them); returns once they are gone.
    func killNine() async throws { _ = try await TestServers.shell("sw_kill_postgres \(directory)/pg") }

    func destroy() async {
        _ = try? await TestServers.shell("sw_stop_postgres \(directory)/pg immediate")
        try? FileManager.default.removeItem(atPath: directory)
    }
}
