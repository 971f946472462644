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

@Suite struct RedisStreamTests {
    @Test func tenThousandPipelinedXADDsReadBackInOrder() async throws {
        let redis = try await TestServers.redis()
        let key = TestServers.unique("sw:test:{xadd}")
        var batch = RedisCommandBuffer()
        for index in 0..<10_000 {
            batch.xadd(key, fields: ["n", String(index), "payload", "value-\(index)", "text", "é, \"quoted\"\n"])
        }
        let replies = try await redis.send(batch)
        #expect(replies.count == 10_000)
        let ids = replies.compactMap { $0.string.flatMap(StreamID.init) }
        #expect(ids.count == 10_000)
        #expect(ids == ids.sorted())
        #expect(try await redis.xlen(key) == 10_000)

        var read: [StreamEntry] = []
        var start = "-"
        while true {
            let page = try await redis.xrange(key, start: start, count: 2500)
            if page.isEmpty { break }
            read += page
            start = "(" + page.last!.id.description
        }
        #expect(read.count == 10_000)
        #expect(read.map(\.id) == ids)
        for (index, entry) in read.enumerated() {
            #expect(entry["n"] == String(index))
            #expect(entry["payload"] == "value-\(index)")
            #expect(entry["text"] == "é, \"quoted\"\n")
        }
        _ = try await redis.command("DEL", key)
    }

    @Test func readGroupAndAcknowledge() async throws {
        let redis = try await TestServers.redis()
        let key = TestServers.unique("sw:test:{group}")
        #expect(try await redis.xgroupCreate(key, group: "g", id: "0"))
        #expect(try await redis.xgroupCreate(key, group: "g", id: "0") == false, "BUSYGROUP is success")
        for index in 0..<25 { _ = try await redis.xadd(key, fields: ["i", String(index)]) }

        let first = try await redis.xreadgroup(group: "g", consumer: "c1", streams: [(key, ">")], count: 10)
        #expect(first.count == 1)
        #expect(first[0].key == key)
        #expect(first[0].entries.map { $0["i"] } == (0..<10).map { String($0) })
        var summary = try await redis.xpending(key, group: "g")
        #expect(summary.count == 10)
        #expect(summary.consumers == ["c1": 10])
        #expect(summary.smallest == first[0].entries.first?.id)

        #expect(try await redis.xack(key, group: "g", ids: first[0].entries.map(\.id)) == 10)
        summary = try await redis.xpending(key, group: "g")
        #expect(summary.count == 0)

        let rest = try await redis.xreadgroup(group: "g", consumer: "c1", streams: [(key, ">")], count: 100, block: .milliseconds(50))
        #expect(rest.first?.entries.count == 15)
        let empty = try await redis.xreadgroup(group: "g", consumer: "c1", streams: [(key, ">")], count: 100, block: .milliseconds(50))
        #expect(empty.isEmpty, "a BLOCK that times out returns nothing")

        let groups = try await redis.xinfoGroups(key)
        #expect(groups.count == 1)
        #expect(groups[0].name == "g")
        #expect(groups[0].pending == 15)
        #expect(groups[0].lag == 0)
        #expect(groups[0].entriesRead == 25)
        let info = try await redis.xinfoStream(key)
        #expect(info.length == 25)
        #expect(info.groups == 1)
        #expect(info.firstEntry?["i"] == "0")
        #expect(info.lastEntry?["i"] == "24")
        let consumers = try await redis.xinfoConsumers(key, group: "g")
        #expect(consumers.map(\.name) == ["c1"])
        #expect(consumers[0].pending == 15)
        _ = try await redis.command("DEL", key)
    }

    @Test func secondConsumerReclaimsPendingEntry() async throws {
        let redis = try await TestServers.redis()
        let key = TestServers.unique("sw:test:{claim}")
        try await redis.xgroupCreate(key, group: "g", id: "0")
        let id = try await redis.xadd(key, fields: ["order", "o-1"])
        _ = try await redis.xadd(key, fields: ["order", "o-2"])
        // c1 reads both and dies without acknowledging.
        let taken = try await redis.xreadgroup(group: "g", consumer: "c1", streams: [(key, ">")], count: 10)
        #expect(taken.first?.entries.count == 2)
        // Not idle long enough yet: nothing is claimed.
        let early = try await redis.xautoclaim(key, group: "g", consumer: "c2", minIdle: .seconds(60))
        #expect(early.entries.isEmpty)
        try await Task.sleep(for: .milliseconds(30))
        // One entry was deleted meanwhile: Redis 7 reports it instead of handing it out.
        _ = try await redis.xdel(key, ids: [taken[0].entries[1].id])
        let claimed = try await redis.xautoclaim(key, group: "g", consumer: "c2", minIdle: .milliseconds(20))
        #expect(claimed.entries.map(\.id) == [id])
        #expect(claimed.entries.first?["order"] == "o-1")
        #expect(claimed.deleted == [taken[0].entries[1].id])
        #expect(claimed.next == .zero)
        let pending = try await redis.xpending(key, group: "g", count: 10)
        #expect(pending.count == 1)
        #expect(pending[0].consumer == "c2")
        #expect(pending[0].deliveries == 2)
        _ = try await redis.command("DEL", key)
    }

    /// The flat reader of stream replies: binary and empty values, long values (multi-byte length
    /// prefixes), an entry deleted while pending (nil fields: skipped), a server error, a timeout.
    @Test func streamReadsThroughTheFlatReader() async throws {
        let redis = try await TestServers.redis()
        let key = TestServers.unique("sw:test:{flat}")
        let long = String(repeating: "x", count: 70_000)
        let first = try await redis.xadd(key, fields: ["a", "", "b", long, "c", "é\u{0}\r\n"])
        let second = try await redis.xadd(key, fields: ["only", "1"])
        _ = try await redis.xgroupCreate(key, group: "g", id: "0")
        let read = try await redis.xreadgroup(group: "g", consumer: "c", streams: [(key, ">")], count: 10)
        #expect(read.count == 1 && read[0].key == key)
        #expect(read[0].entries.map(\.id) == [first, second])
        #expect(read[0].entries[0].fields == ["a", "", "b", long, "c", "é\u{0}\r\n"])
        #expect(read[0].entries[0]["b"]?.count == 70_000 && read[0].entries[1]["only"] == "1")
        _ = try await redis.xdel(key, ids: [first])
        let pending = try await redis.xreadgroup(group: "g", consumer: "c", streams: [(key, "0")], count: 10)
        #expect(pending.first?.entries.map(\.id) == [second], "the deleted pending entry is skipped")
        await #expect(throws: RedisError.self) {
            _ = try await redis.xreadgroup(group: "nosuchgroup", consumer: "c", streams: [(key, ">")], count: 1)
        }
        let nothing = try await redis.xreadgroup(group: "g", consumer: "c", streams: [(key, ">")], count: 1, block: .milliseconds(20))
        #expect(nothing.isEmpty)
        // The connection is still usable after all of that.
        #expect(try await redis.xlen(key) == 1)
    }

    @Test func trimAndDelete() async throws {
        let redis = try await TestServers.redis()
        let key = TestServers.unique("sw:test:{trim}")
        var ids: [StreamID] = []
        for index in 0..<100 { ids.append(try await redis.xadd(key, fields: ["i", String(index)])) }
        #expect(try await redis.xtrim(key, .minID(ids[40])) == 40)
        #expect(try await redis.xrange(key, count: 1).first?.id == ids[40])
        #expect(try await redis.xtrim(key, .maxLength(10, approximate: false)) == 50)
        #expect(try await redis.xlen(key) == 10)
        #expect(try await redis.xdel(key, ids: [ids[99], ids[0]]) == 1)
        let newest = try await redis.xrevrange(key, count: 1)
        #expect(newest.first?.id == ids[98])
        _ = try await redis.command("DEL", key)
    }
}
