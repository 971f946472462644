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

/// The three classes of failure, each end to end: a deployment mistake stops the consumer and
/// acknowledges nothing (fatal), a full Redis is waited out (transient), a row PostgreSQL refuses
/// is dead-lettered alone (data: `LoaderPoisonTests.anEntryThatAlwaysFailsIsDeadLetteredAndTheRestLoad`).
@Suite(.serialized) struct ErrorClassTests {
    /// Over `layout`'s streams (or those of `entities`): entries the group acknowledged, entries
    /// pending, the highest delivery count.
    static func progress(
        _ layout: StreamLayout, group: String, redis: RedisConnection, entities: [Entity] = Entity.allCases
    ) async throws -> (acked: Int, pending: Int, deliveries: Int) {
        var acked = 0, pending = 0, deliveries = 0
        for entity in entities {
            let key = layout.streamKey(entity, partition: 0)
            let length = try await redis.xlen(key)
            guard let info = try await redis.xinfoGroups(key).first(where: { $0.name == group }) else { continue }
            acked += length - info.pending - (info.lag ?? 0)
            pending += info.pending
            if info.pending > 0 {
                deliveries = max(deliveries, try await redis.xpending(key, group: group, count: 10_000).map(\.deliveries).max() ?? 0)
            }
        }
        return (acked, pending, deliveries)
    }

    /// A table renamed under the loader (a deployment mistake, not bad data): the loader stops with
    /// exit status 1 and a message naming the cause and the fix, dead-letters nothing and
    /// acknowledges nothing, and so again when its supervisor restarts it seven times (each restart
    /// reclaims what the last one held: its deliveries must not pile up into "poison"). Once the
    /// rename is undone, a restart loads everything.
    @Test(.timeLimit(.minutes(4)))
    func aRenamedTableStopsTheLoaderAndAcknowledgesNothing() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swfatal"))
        let reference = StreamLayout(namespace: TestServers.unique("swfref"))
        for target in [layout, reference] {
            _ = try await TestServers.replay(SampleExpectations.dataFolder, into: target, redis: redis)
        }
        let deadBefore = try await redis.xlen(layout.deadLetterKey)   // the sample's own bad rows, from replay
        let serial = try await WarehouseFixture.make()
        try await serial.load(reference, redis: redis)
        let expected = try await serial.checksums()

        let warehouse = try await WarehouseFixture.make()
        try await warehouse.postgres.execute("ALTER TABLE fact_payments RENAME TO fact_payments_moved")
        let arguments = ["consume", "--namespace", layout.namespace, "--block-ms", "100", "--min-idle-ms", "300", "--until-drained"]
        let environment = ["DATABASE_URL": warehouse.url]
        for run in 1...8 {
            let result = try await TestServers.runWarehouse(arguments, environment: environment)
            #expect(result.status == 1, "run \(run) exits 1: \(result.stderr)")
            #expect(result.stderr.contains("42P01"), "run \(run) names the SQLSTATE: \(result.stderr)")
            #expect(result.stderr.contains("warehouse migrate"), "run \(run) says what to do: \(result.stderr)")
            #expect(result.stderr.contains("Nothing in hand was acknowledged"), "\(result.stderr)")
            // Payments cannot load, and nothing held with them was acknowledged (a later run may
            // load other streams' entries on their own: those tables are fine).
            let payments = try await Self.progress(layout, group: "warehouse", redis: redis, entities: [.payments])
            #expect(payments.acked == 0 && payments.pending == 52, "run \(run): no payment acknowledged (\(payments))")
            if run == 1 {
                let all = try await Self.progress(layout, group: "warehouse", redis: redis)
                #expect(all.acked == 0, "the first run's one batch held every stream: nothing acknowledged (\(all))")
            }
            let progress = try await Self.progress(layout, group: "warehouse", redis: redis)
            #expect(progress.deliveries <= 1, "run \(run): deliveries given back, none counted as failures (\(progress))")
            #expect(try await redis.xlen(layout.deadLetterKey) == deadBefore, "run \(run): nothing dead-lettered")
            try await Task.sleep(for: .milliseconds(400))   // past --min-idle-ms: the next run reclaims
        }
        let lag = try await TestServers.runWarehouse(["lag", "--json", "--namespace", layout.namespace, "--group", "warehouse",
                                                      "--window-ms", "200", "--stopped-after", "0.1"])
        #expect(lag.status == 2, "lag alerts on the stopped group: \(lag.stdout)")

        try await warehouse.postgres.execute("ALTER TABLE fact_payments_moved RENAME TO fact_payments")
        let fixed = try await TestServers.runWarehouse(arguments, environment: environment)
        #expect(fixed.status == 0, "\(fixed.stderr)")
        #expect(try await warehouse.checksums() == expected, "everything loaded once the rename was undone")
        #expect(try await redis.xlen(layout.deadLetterKey) == deadBefore)
        #expect(try await Self.progress(layout, group: "warehouse", redis: redis).pending == 0)
    }

    /// A Redis out of memory while the KPI aggregator runs (maxmemory below what it holds, policy
    /// noeviction): every commit is refused with OOM, the aggregator waits with the circuit open
    /// and acknowledges nothing more; once memory is raised it finishes, and the KPIs equal a run
    /// that never saw the outage.
    @Test(.timeLimit(.minutes(4)))
    func aFullRedisIsWaitedOutByTheAggregator() async throws {
        let shared = try await TestServers.redis()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.unique("sw-oom")).path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try DataGenerator(options: DataGenerator.Options(orders: 20_000, seed: 41)).write(to: folder)
        let reference = StreamLayout(namespace: TestServers.unique("swoomr"))
        _ = try await TestServers.replay(folder, into: reference, redis: shared)
        try await KPITests.aggregate(reference)
        let expected = try await KPISnapshot.read(KPIKeys(layout: reference), on: shared)

        let server = try await PrivateRedis.start()
        defer { Task { await server.destroy() } }
        let redis = try await server.connect()
        let layout = StreamLayout(namespace: "sw")
        _ = try await TestServers.replay(folder, into: layout, redis: redis)
        let logPath = folder + "/kpi.log"
        let process = try TestServers.startWarehouse(
            ["consume", "--group", "kpi", "--namespace", layout.namespace, "--batch", "200", "--block-ms", "100", "--until-drained"],
            environment: ["REDIS_URL": server.url], stderrPath: logPath)
        // Some progress first, then the limit: below what Redis holds now.
        var before = (acked: 0, pending: 0, deliveries: 0)
        while before.acked < 2000 {
            try await Task.sleep(for: .milliseconds(20))
            before = try await Self.progress(layout, group: "kpi", redis: redis)
        }
        let info = try await redis.command("INFO", "memory").string ?? ""
        let usedMemory = try #require(info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("used_memory:") }
            .flatMap { Int($0.dropFirst("used_memory:".count)) })
        _ = try await redis.command("CONFIG", "SET", "maxmemory", String(usedMemory - 1_000_000))
        try await Task.sleep(for: .seconds(4))
        let during = try await Self.progress(layout, group: "kpi", redis: redis)
        #expect(process.isRunning, "the aggregator waits instead of exiting")
        try await Task.sleep(for: .seconds(1))
        let later = try await Self.progress(layout, group: "kpi", redis: redis)
        #expect(later.acked == during.acked, "nothing is acknowledged while Redis refuses writes (\(during) → \(later))")
        _ = try await redis.command("CONFIG", "SET", "maxmemory", "0")
        await TestServers.waitForExit(process)
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus == 0, "\(log)")
        #expect(log.contains("OOM"), "the log names the refusal: \(log)")
        #expect(log.contains("circuit open") && log.contains("circuit closed"), "\(log)")

        let actual = try await KPISnapshot.read(KPIKeys(layout: layout), on: redis)
        let differing = KPITests.differences(actual, expected)
        #expect(differing.isEmpty, "KPIs that differ from the run without the outage: \(differing.prefix(10))")
        #expect(try await redis.xlen(layout.deadLetterKey) == shared.xlen(reference.deadLetterKey), "nothing more dead-lettered")
        #expect(try await Self.progress(layout, group: "kpi", redis: redis).pending == 0)
    }

    /// The dead-letter write itself refused by a full Redis: the runner waits (it neither drops the
    /// reject nor acknowledges its entry), and finishes once memory is raised; the bad entry is
    /// dead-lettered once, the good ones load.
    @Test(.timeLimit(.minutes(2)))
    func aFullRedisUnderADeadLetterWriteIsWaitedOut() async throws {
        let server = try await PrivateRedis.start()
        defer { Task { await server.destroy() } }
        let redis = try await server.connect()
        let admin = try await server.connect()
        let layout = StreamLayout(namespace: "sw")
        let key = layout.streamKey(.orders, partition: 0)
        _ = try await redis.xadd(key, fields: LoaderPoisonTests.orderFields("O-1"))
        let bad = try await redis.xadd(key, fields: LoaderPoisonTests.orderFields("O-22", quantity: "2000000000", price: "999999999999"))
        _ = try await redis.xadd(key, fields: LoaderPoisonTests.orderFields("O-333"))
        let warehouse = try await WarehouseFixture.make()
        let postgres = warehouse.postgres

        var options = ConsumerGroupRunner.Options(group: "warehouse", consumer: "c", streams: [key])
        options.block = .milliseconds(50)
        options.untilDrained = true
        let runner = ConsumerGroupRunner(options: options, deadLetters: DeadLetterQueue(layout: layout))
        // The real loader, except that the moment PostgreSQL refuses the bad entry on its own, Redis
        // fills up: the dead-letter write that follows is refused with OOM.
        let handler: ConsumerGroupRunner.Handler = { reads in
            let batch = LoaderBatch(reads, layout: layout)
            do {
                _ = try await WarehouseLoader().apply(batch, on: postgres)
            } catch {
                if reads.first?.entries.count == 1 && reads.first?.entries.first?.id == bad {
                    _ = try await admin.command("CONFIG", "SET", "maxmemory", "1")
                }
                throw error
            }
            return batch.rejects
        }
        let raise = Task {
            // Raised a while after the refusal began.
            while (try await admin.command("CONFIG", "GET", "maxmemory").array?.last?.string ?? "0") == "0" {
                try await Task.sleep(for: .milliseconds(20))
            }
            try await Task.sleep(for: .seconds(2))
            _ = try await admin.command("CONFIG", "SET", "maxmemory", "0")
        }
        let stats = try await runner.run(redis: redis, handler: handler)
        try await raise.value
        #expect(stats.retries >= 1, "the dead-letter write was retried")
        #expect(stats.deadLettered == 1)
        let dead = try await redis.xrange(layout.deadLetterKey)
        #expect(dead.map { $0["entry_id"] } == [bad.description])
        let loaded = try await postgres.query("SELECT order_id FROM fact_sales ORDER BY order_id")
        #expect(loaded.rows.map { $0[0] } == ["O-1", "O-333"])
        #expect(try await redis.xpending(key, group: "warehouse").count == 0)
    }

    /// A Redis that may evict keys: a consumer refuses to start, and says why.
    @Test func aRedisThatMayEvictIsRefused() async throws {
        let server = try await PrivateRedis.start()
        defer { Task { await server.destroy() } }
        let redis = try await server.connect()
        _ = try await redis.command("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
        for group in ["kpi", "warehouse"] {
            let result = try await TestServers.runWarehouse(["consume", "--group", group, "--until-drained"], environment: ["REDIS_URL": server.url])
            #expect(result.status == 1, "\(result.stderr)")
            #expect(result.stderr.contains("maxmemory-policy is allkeys-lru"), "\(result.stderr)")
            #expect(result.stderr.contains("noeviction"), "\(result.stderr)")
        }
    }
}

extension ErrorClassTests {
    /// A group that disappears while the loader runs (deleted, or lost by a Redis that restarted
    /// from an append-only file missing its tail) is created again from the start of the stream:
    /// the loader carries on and what the streams hold is read again, idempotently.
    @Test(.timeLimit(.minutes(4)))
    func aGroupThatDisappearsIsCreatedAgain() async throws {
        let redis = try await TestServers.redis()
        let folder = "/tmp/" + TestServers.unique("sw-nogroup")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try DataGenerator(options: DataGenerator.Options(orders: 20_000, seed: 9)).write(to: folder)
        let reference = StreamLayout(namespace: TestServers.unique("swngr"))
        let layout = StreamLayout(namespace: TestServers.unique("swng"))
        for target in [reference, layout] { _ = try await TestServers.replay(folder, into: target, redis: redis) }
        let expected = try await WarehouseFixture.make()
        try await expected.load(reference, redis: redis)

        let warehouse = try await WarehouseFixture.make()
        let log = folder + "/consume.log"
        let process = try TestServers.startWarehouse(
            ["consume", "--namespace", layout.namespace, "--batch", "200", "--block-ms", "100", "--until-drained"],
            environment: ["DATABASE_URL": warehouse.url], stderrPath: log)
        try await Task.sleep(for: .milliseconds(800))
        #expect(process.isRunning, "still loading when the group goes")
        for entity in Entity.allCases {
            _ = try await redis.command("XGROUP", "DESTROY", layout.streamKey(entity, partition: 0), "warehouse")
        }
        await TestServers.waitForExit(process)
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("the consumer group is gone"), "\(text)")
        #expect(try await warehouse.checksums() == expected.checksums())
    }
}
