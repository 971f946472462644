import Testing
@testable import RedisWire
import RedisClient

/// How a cluster client splits a pipeline and reads the cluster's replies (pure rules; the real
/// cluster is exercised in RedisClusterTests).
struct ClusterRoutingTests {
    @Test func splitsAPipelineAndFindsEachCommandsKey() {
        var batch = RedisCommandBuffer()
        batch.append("SET", "sw:{p1}:a", "1")
        batch.append("PING")
        batch.append("XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "STREAMS", "sw:{p2}:orders", "sw:{p2}:payments", ">", ">")
        batch.append("XGROUP", "CREATE", "sw:{p3}:orders", "g", "0", "MKSTREAM")
        var script = RedisCommandBuffer.scriptArguments()
        script.append("HSET", "sw:{p4}:x", "f", "v")
        batch.evalsha(RedisScript("return 1"), keys: ["sw:{p4}:fence"], arguments: ["7"], commands: script)
        batch.evalsha(RedisScript("return 2"), keys: [], arguments: ["x"], commands: RedisCommandBuffer.scriptArguments())
        batch.append("XINFO", "GROUPS", "sw:{p5}:orders")
        batch.append("xadd", "plain-key", "*", "f", "v")   // case-insensitive names
        let commands = ClusterRouting.commands(in: batch.bytes)
        #expect(commands.count == batch.count)
        #expect(commands.map(\.slot) == [
            HashSlot.of("p1"), nil, HashSlot.of("p2"), HashSlot.of("p3"), HashSlot.of("p4"), nil, HashSlot.of("p5"),
            HashSlot.of("plain-key"),
        ])
        // The ranges tile the buffer, in order.
        #expect(commands.first?.range.lowerBound == 0)
        #expect(commands.last?.range.upperBound == batch.bytes.count)
        for (a, b) in zip(commands, commands.dropFirst()) { #expect(a.range.upperBound == b.range.lowerBound) }
        // Each piece is one whole command: re-split alone, it is one command with the same key.
        for command in commands {
            let piece = Array(batch.bytes[command.range])
            #expect(ClusterRouting.commands(in: piece).map(\.slot) == [command.slot])
        }
    }

    @Test func readsRedirects() {
        #expect(ClusterRouting.redirect("MOVED 3999 127.0.0.1:6381") == .moved(slot: 3999, node: "127.0.0.1:6381"))
        #expect(ClusterRouting.redirect("ASK 3999 10.0.0.2:7000") == .ask(slot: 3999, node: "10.0.0.2:7000"))
        #expect(ClusterRouting.redirect("MOVED 12 :7001") == .moved(slot: 12, node: "?:7001"))
        for retry in ["TRYAGAIN Multiple keys request during rehashing of slot", "CLUSTERDOWN The cluster is down",
                      "LOADING Redis is loading", "READONLY You can't write against a read only replica.",
                      "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)"] {
            #expect(ClusterRouting.redirect(retry) == .retry, "\(retry)")
        }
        for other in ["ERR unknown command", "MOVED", "MOVED x 1.2.3.4:5", "MOVED 16384 1.2.3.4:5", "NOGROUP", "CROSSSLOT Keys"] {
            #expect(ClusterRouting.redirect(other) == nil, "\(other)")
        }
    }

    @Test func readsTheSlotMap() throws {
        let reply = RedisReply.array([
            .array([.integer(0), .integer(5460), .array([.bulk(Array("127.0.0.1".utf8)), .integer(7000), .bulk(Array("id0".utf8))]),
                    .array([.bulk(Array("127.0.0.1".utf8)), .integer(7003)])]),
            .array([.integer(5461), .integer(16383), .array([.bulk([]), .integer(7001)])]),
        ])
        let ranges = try #require(ClusterRouting.slotRanges(reply, askedHost: "10.1.1.1"))
        #expect(ranges.count == 2)
        #expect(ranges[0].slots == 0...5460 && ranges[0].primary == "127.0.0.1:7000" && ranges[0].replicas == ["127.0.0.1:7003"])
        #expect(ranges[1].slots == 5461...16383 && ranges[1].primary == "10.1.1.1:7001")
        #expect(ClusterRouting.slotRanges(.error("ERR This instance has cluster support disabled"), askedHost: "h") == nil)
        #expect(ClusterRouting.slotRanges(.array([.array([.integer(5), .integer(2), .array([.bulk([]), .integer(1)])])]), askedHost: "h") == nil)
    }

    @Test func addresses() {
        #expect(ClusterRouting.address(host: "::1", port: 7000) == "[::1]:7000")
        #expect(ClusterRouting.split(address: "[::1]:7000")! == ("::1", 7000))
        #expect(ClusterRouting.split(address: "redis-a:6379")! == ("redis-a", 6379))
        #expect(ClusterRouting.split(address: "nope") == nil)
    }

    @Test func severalSeedNodesInOneURL() throws {
        let config = try RedisConfiguration(url: "redis://u:pw@h1:7000,h2:7001,[::1]:7002,h4/0")
        #expect(config.seeds == [.init(host: "h1", port: 7000), .init(host: "h2", port: 7001), .init(host: "::1", port: 7002),
                                 .init(host: "h4", port: 6379)])
        #expect(config.username == "u" && config.password == "pw")
        #expect(config.redactedURL == "redis://u:***@h1:7000,h2:7001,[::1]:7002,h4:6379/0")
        #expect(try RedisConfiguration(url: "redis://h1:7000").seeds.count == 1)
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis://h1:7000,h2:x/0") }
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis://h1:7000,h2:7001/2") }
        let durable = try RedisConfiguration(url: "redis://h1:7000,h2:7001/0?wait_replicas=1&wait_timeout_ms=250")
        #expect(durable.replicaAcknowledgements == 1 && durable.replicaTimeout == .milliseconds(250) && durable.seeds.count == 2)
        #expect(durable.redactedURL == "redis://h1:7000,h2:7001/0?wait_replicas=1&wait_timeout_ms=250")
        #expect(try RedisConfiguration(url: "redis://h1/0").replicaAcknowledgements == 0)
        for bad in ["redis://h1/0?wait_replicas=x", "redis://h1/0?wait_timeout_ms=0", "redis://h1/0?nope=1"] {
            #expect(throws: RedisError.self, "\(bad)") { try RedisConfiguration(url: bad) }
        }
    }
}
