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
import Dashboard

/// `warehouse lag`'s figures against what XINFO and XPENDING say, in each situation, and the status
/// each situation gets.
@Suite struct LagTests {
    let monitor = LagMonitor()

    func stream(_ entries: Int, redis: RedisConnection) async throws -> String {
        let key = TestServers.unique("sw:test:{lag}")
        var batch = RedisCommandBuffer()
        for index in 0..<entries { batch.xadd(key, fields: ["n", String(index)]) }
        _ = try await redis.send(batch)
        _ = try await redis.xgroupCreate(key, group: "g", id: "0")
        return key
    }

    /// The reading agrees with XINFO GROUPS / XPENDING / XINFO CONSUMERS.
    func expectAgrees(_ reading: LagMonitor.Reading, _ key: String, redis: RedisConnection) async throws {
        let info = try #require(try await redis.xinfoGroups(key).first { $0.name == "g" })
        let pending = try await redis.xpending(key, group: "g")
        #expect(reading.lag == info.lag)
        #expect(reading.pending == info.pending && reading.pending == pending.count)
        #expect(reading.entriesRead == info.entriesRead)
        #expect(reading.length == (try await redis.xlen(key)))
        #expect(Dictionary(uniqueKeysWithValues: reading.consumers.filter { $0.pending > 0 }.map { ($0.name, $0.pending) }) == pending.consumers)
    }

    /// `lag` leaves out consumers gone longer than --stopped-after with nothing pending (unless
    /// --all-consumers), and `lag --prune` deletes exactly those: never one holding entries.
    @Test func goneConsumersAreHiddenAndPrunedButNeverOneHoldingEntries() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swlag"))
        let key = layout.streamKey(.orders, partition: 0)
        for index in 0..<5 { _ = try await redis.xadd(key, fields: ["n", String(index)]) }
        _ = try await redis.xgroupCreate(key, group: "g", id: "0")
        let done = try await redis.xreadgroup(group: "g", consumer: "gone", streams: [(key, ">")], count: 2)
        _ = try await redis.xack(key, group: "g", ids: done.flatMap(\.entries).map(\.id))
        _ = try await redis.xreadgroup(group: "g", consumer: "holding", streams: [(key, ">")], count: 1)
        try await Task.sleep(for: .milliseconds(5500))
        _ = try await redis.xreadgroup(group: "g", consumer: "fresh", streams: [(key, ">")], count: 1)
        _ = try await redis.xack(key, group: "g", ids: [try #require(try await redis.xrange(key).dropFirst(3).first?.id)])
        // "fresh" stays live: each command below runs right after it reads again (its own history,
        // nothing new), well within the 5 s however loaded the machine.
        func touch() async throws { _ = try await redis.xreadgroup(group: "g", consumer: "fresh", streams: [(key, "0")]) }

        func consumers(_ arguments: [String]) async throws -> [String] {
            try await touch()
            let run = try await TestServers.runWarehouse(["lag", "--json", "--namespace", layout.namespace, "--stopped-after", "5",
                                                          "--window-ms", "50"] + arguments)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run.stderr)")
            let rows = try #require(object["rows"] as? [[String: Any]])
            return rows.flatMap { ($0["consumers"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String } }.sorted()
        }
        #expect(try await consumers([]) == ["fresh", "holding"])
        #expect(try await consumers(["--all-consumers"]) == ["fresh", "gone", "holding"])

        try await touch()
        let prune = try await TestServers.runWarehouse(["lag", "--prune", "--json", "--namespace", layout.namespace, "--stopped-after", "5"])
        #expect(prune.status == 0, "\(prune.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(prune.stdout.utf8)) as? [String: Any], "\(prune.stdout)")
        let pruned = try #require(object["pruned"] as? [[String: Any]])
        #expect(pruned.count == 1 && pruned.first?["consumer"] as? String == "gone" && pruned.first?["group"] as? String == "g"
                && pruned.first?["stream"] as? String == key && (pruned.first?["idle_ms"] as? Int ?? 0) >= 5000, "\(pruned)")
        #expect(try await redis.xinfoConsumers(key, group: "g").map(\.name).sorted() == ["fresh", "holding"])
        #expect(try await redis.xpending(key, group: "g").consumers == ["holding": 1], "the held entry is still pending")

        try await touch()
        let again = try await TestServers.runWarehouse(["lag", "--prune", "--namespace", layout.namespace, "--stopped-after", "5"])
        #expect(again.status == 0 && again.stdout.contains("no consumer gone longer than"), "\(again.stdout)")
    }

    @Test func noConsumerIsStopped() async throws {
        let redis = try await TestServers.redis()
        let key = try await stream(5, redis: redis)
        let rows = try await monitor.sample(streams: [key], on: redis, window: .milliseconds(100))
        let row = try #require(rows.first)
        try await expectAgrees(row.reading, key, redis: redis)
        #expect(row.reading.lag == 5 && row.reading.consumers.isEmpty && row.reading.timeLagSeconds >= 0)
        #expect(row.status == .stopped)
    }

    @Test func aStuckConsumerIsStalledThenStopped() async throws {
        let redis = try await TestServers.redis()
        let key = try await stream(5, redis: redis)
        _ = try await redis.xreadgroup(group: "g", consumer: "stuck", streams: [(key, ">")], count: 3)
        let rows = try await monitor.sample(streams: [key], on: redis, window: .milliseconds(100))
        let row = try #require(rows.first)
        try await expectAgrees(row.reading, key, redis: redis)
        #expect(row.reading.lag == 2 && row.reading.pending == 3 && row.reading.oldestPendingAgeSeconds != nil)
        #expect(row.status == .stalled, "a live consumer that consumes nothing")
        var thresholds = LagMonitor.Thresholds()
        thresholds.stoppedAfter = .milliseconds(50)
        let strict = try await LagMonitor(thresholds: thresholds).sample(streams: [key], on: redis, window: .milliseconds(100))
        #expect(strict.first?.status == .stopped, "its consumer has been idle longer than the threshold")
    }

    @Test func aConsumerKeepingUpIsOK() async throws {
        let redis = try await TestServers.redis()
        let key = try await stream(5, redis: redis)
        let read = try await redis.xreadgroup(group: "g", consumer: "c", streams: [(key, ">")], count: 10)
        _ = try await redis.xack(key, group: "g", ids: read[0].entries.map(\.id))
        let row = try #require(try await monitor.sample(streams: [key], on: redis, window: .milliseconds(100)).first)
        try await expectAgrees(row.reading, key, redis: redis)
        #expect(row.reading.lag == 0 && row.reading.pending == 0 && row.reading.timeLagSeconds == 0 && row.etaSeconds == 0)
        #expect(row.status == .ok)
    }

    @Test func aConsumerCatchingUpIsOKAndOneFallingBehindIsWarned() async throws {
        let redis = try await TestServers.redis()
        let key = try await stream(400, redis: redis)
        let consumerRedis = try await TestServers.redis()
        // Catching up: 20 entries every 10 ms, nothing new arriving, for as long as the sample runs.
        let catching = Task {
            while !Task.isCancelled {
                let read = try await consumerRedis.xreadgroup(group: "g", consumer: "c", streams: [(key, ">")], count: 20)
                if let entries = read.first?.entries { _ = try await consumerRedis.xack(key, group: "g", ids: entries.map(\.id)) }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        let rows = try await monitor.sample(streams: [key], on: redis, window: .milliseconds(150))
        catching.cancel()
        _ = await catching.result
        let row = try #require(rows.first)
        #expect(row.consumeRate > 0 && row.lagChange < 0 && row.etaSeconds != nil, "\(row)")
        #expect(row.status == .ok)

        // Falling behind: 50 new entries every 10 ms, 5 consumed, for as long as the sample runs.
        let producerRedis = try await TestServers.redis()
        let producing = Task {
            while !Task.isCancelled {
                var batch = RedisCommandBuffer()
                for index in 0..<50 { batch.xadd(key, fields: ["m", String(index)]) }
                _ = try await producerRedis.send(batch)
                let read = try await consumerRedis.xreadgroup(group: "g", consumer: "c", streams: [(key, ">")], count: 5)
                if let entries = read.first?.entries { _ = try await consumerRedis.xack(key, group: "g", ids: entries.map(\.id)) }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        let behind = try await monitor.sample(streams: [key], on: redis, window: .milliseconds(300))
        producing.cancel()
        _ = await producing.result
        let warned = try #require(behind.first)
        #expect(warned.lagChange > 0 && warned.consumeRate > 0 && warned.produceRate > warned.consumeRate, "\(warned)")
        #expect(warned.status == .warn)
        #expect(warned.etaSeconds == nil, "not converging")
    }

    @Test func lagIsCountedWhenRedisReportsNone() async throws {
        let redis = try await TestServers.redis()
        let key = try await stream(6, redis: redis)
        _ = try await redis.xreadgroup(group: "g", consumer: "c", streams: [(key, ">")], count: 1)
        let all = try await redis.xrange(key)
        _ = try await redis.xdel(key, ids: [all[3].id])   // a tombstone after the group's position
        let reading = try #require(try await monitor.read(streams: [key], on: redis).first)
        let reported = try await redis.xinfoGroups(key).first?.lag
        if reported == nil { #expect(reading.lagSource == "computed") }
        #expect(reading.lag == 4, "entries 2, 3, 5 and 6 are not delivered yet")
    }
}
