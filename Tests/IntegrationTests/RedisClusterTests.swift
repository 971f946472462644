import Foundation
import Testing
import RedisClient
import RedisWire

/// The cluster-aware client against a real 6-node Redis Cluster: found from one node, pipelines
/// split per node and put back in order, MOVED and ASK followed during a live slot migration,
/// scripts loaded everywhere, SCAN over every primary, and a failover followed on its own.
@Suite(.serialized) struct RedisClusterTests {
    @Test func routesPipelinesScriptsStreamsAndRedirects() async throws {
        let cluster = try await PrivateCluster.start()
        defer { Task { await cluster.destroy() } }

        // Found from one node; a standalone server stays standalone.
        let redis = try await RedisConnection(url: cluster.oneNodeURL)
        #expect(try await redis.isCluster)
        #expect(try await redis.primaryAddresses().count == 3)
        let standalone = try await TestServers.redis()
        #expect(try await standalone.isCluster == false)

        // One pipeline over thousands of slots on three nodes: every reply in its command's place.
        var writes = RedisCommandBuffer()
        for index in 0..<3000 { writes.append("SET", "k:\(index)", "v\(index)") }
        #expect(try await redis.send(writes).allSatisfy { $0 == .status("OK") })
        var reads = RedisCommandBuffer()
        for index in (0..<3000).reversed() { reads.append("GET", "k:\(index)") }
        reads.append("PING")
        let replies = try await redis.send(reads)
        #expect(replies.count == 3001)
        #expect(replies.prefix(3000).map(\.string) == (0..<3000).reversed().map { "v\($0)" })
        var perNode: [Int] = []
        var dbsize = RedisCommandBuffer()
        dbsize.append("DBSIZE")
        for (_, replies) in try await redis.sendToEachPrimary(dbsize) { perNode.append(replies[0].int ?? 0) }
        #expect(perNode.count == 3 && perNode.allSatisfy { $0 > 500 } && perNode.reduce(0, +) == 3000, "\(perNode)")
        #expect(try await redis.scanKeys(match: "k:*").count == 3000)

        // Scripts: flushed from every node, loaded again where they run.
        let script = RedisScript("return redis.call('INCR', KEYS[1])")
        var flush = RedisCommandBuffer()
        flush.append("SCRIPT", "FLUSH")
        _ = try await redis.sendToEachPrimary(flush)
        for key in ["{a}n", "{b}n", "{c}n", "{d}n"] {
            #expect(try await redis.run(script, keys: [key]) == .integer(1))
        }

        // Streams: a group read in one slot, blocking.
        let stream = "sw:{p7}:orders"
        try await redis.xgroupCreate(stream, group: "g")
        _ = try await redis.xadd(stream, fields: ["a", "1"])
        let read = try await redis.xreadgroup(group: "g", consumer: "c", streams: [(stream, ">")], count: 10, block: .milliseconds(100))
        #expect(read.first?.entries.count == 1)

        // A live slot migration: ASK for a key not yet moved, MOVED once the slot is gone.
        let key = "{migrating}old", newKey = "{migrating}new"
        _ = try await redis.command("SET", key, "before")
        let slot = HashSlot.of(key)
        let source = try await redis.node(of: key)
        let target = try await redis.primaryAddresses().first { $0 != source }!
        let sourcePort = ClusterRouting.split(address: source)!.port, targetPort = ClusterRouting.split(address: target)!.port
        let sourceID = try await cluster.cli(sourcePort, "cluster myid").trimmingCharacters(in: .whitespacesAndNewlines)
        let targetID = try await cluster.cli(targetPort, "cluster myid").trimmingCharacters(in: .whitespacesAndNewlines)
        _ = try await cluster.cli(targetPort, "cluster setslot \(slot) importing \(sourceID)")
        _ = try await cluster.cli(sourcePort, "cluster setslot \(slot) migrating \(targetID)")
        _ = try await redis.command("SET", newKey, "asked")           // not on the source: ASK → target
        #expect(try await redis.command("GET", key).string == "before")   // still on the source
        #expect(try await cluster.cli(targetPort, "-c get \(newKey)").contains("asked"))
        _ = try await cluster.cli(sourcePort, "migrate 127.0.0.1 \(targetPort) \"\" 0 5000 keys \(key)")
        for port in cluster.ports { _ = try? await cluster.cli(port, "cluster setslot \(slot) node \(targetID)") }
        #expect(try await redis.command("GET", key).string == "before")   // MOVED → target
        #expect(try await redis.node(of: key) == target)
        var both = RedisCommandBuffer()
        both.append("GET", key); both.append("GET", newKey); both.append("GET", "k:1")
        #expect(try await redis.send(both).map(\.string) == ["before", "asked", "v1"])

        // Durability on request: every primary written to waits for its replica (WAIT 1); asking
        // for two replicas, where each primary has one, fails the call instead of passing silently.
        let durable = try await RedisConnection(url: cluster.url.replacingOccurrences(of: "/0", with: "/0?wait_replicas=1"))
        #expect(try await durable.send(writes).allSatisfy { $0 == .status("OK") })
        let tooMany = try await RedisConnection(url: cluster.url.replacingOccurrences(of: "/0", with: "/0?wait_replicas=2&wait_timeout_ms=100"))
        await #expect(throws: RedisError.self) { _ = try await tooMany.send(writes) }
        let standaloneWaiting = try await RedisConnection(url: try TestServers.redisURL() + "?wait_replicas=1&wait_timeout_ms=50")
        do {
            _ = try await standaloneWaiting.command("SET", "sw-wait-probe", "1")
            Issue.record("a single Redis has no replica: WAIT 1 must fail the call")
        } catch let error as RedisError {
            #expect(error.message.contains("only 0 of the 1 replica"), "\(error)")
        }
    }

    /// A primary killed with -9: calls fail (a connection error, which callers retry) until its
    /// replica is promoted, then the same connection serves the slot from the new primary.
    @Test func followsAFailover() async throws {
        let cluster = try await PrivateCluster.start()
        defer { Task { await cluster.destroy() } }
        let redis = try await cluster.connect()
        let key = "{failover}k"
        _ = try await redis.command("SET", key, "kept")
        // WAIT has no key (a client sends it to any primary): it is asked of the key's own primary.
        let primary = try await redis.node(of: key)
        let port = ClusterRouting.split(address: primary)!.port
        #expect(try await cluster.cli(port, "wait 1 2000").trimmingCharacters(in: .whitespacesAndNewlines) == "1")
        let replica = try #require(try await cluster.roles().replicaOf[port])

        try await cluster.killNine(port)
        let started = ContinuousClock.now
        var failures = 0
        var value: String?
        while ContinuousClock.now - started < .seconds(60) {
            do {
                value = try await redis.command("GET", key).string
                break
            } catch let error as RedisError where error.code == .connection || error.code == .timeout || error.serverErrorPrefix == "CLUSTERDOWN" {
                failures += 1
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        #expect(value == "kept")
        #expect(failures > 0, "the kill was not seen")
        #expect(try await redis.node(of: key) == "127.0.0.1:\(replica)")
        // The killed node comes back as a replica of its successor.
        try await cluster.startAgain(port)
        try await cluster.waitUntilOK()
        #expect(try await redis.command("GET", key).string == "kept")
    }
}
