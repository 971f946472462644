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

@Suite struct RedisConnectionTests {
    @Test func binarySafeValuesRoundTrip() async throws {
        let redis = try await TestServers.redis()
        let key = TestServers.unique("sw:test:binary")
        let value = (0...255).map { UInt8($0) } + Array("\r\n$3\r\n".utf8)
        _ = try await redis.command(bytes: [Array("SET".utf8), Array(key.utf8), value])
        let reply = try await redis.command("GET", key)
        #expect(reply.bytes == value)
        #expect(try await redis.command("GET", TestServers.unique("sw:test:missing")) == .null)
        _ = try await redis.command("DEL", key)
    }

    @Test func pipelineKeepsErrorRepliesInPlace() async throws {
        let redis = try await TestServers.redis()
        let key = TestServers.unique("sw:test:pipe")
        var batch = RedisCommandBuffer()
        batch.append("SET", key, "text")
        batch.append("INCR", key)
        batch.append("GET", key)
        let replies = try await redis.send(batch)
        #expect(replies[0] == .status("OK"))
        guard case .error(let message) = replies[1] else {
            Issue.record("expected an error reply, got \(replies[1])")
            return
        }
        #expect(message.hasPrefix("ERR"))
        #expect(replies[2].string == "text")
        await #expect(throws: RedisError.self) { try await redis.command("INCR", key) }
        do {
            _ = try await redis.command("INCR", key)
        } catch let error as RedisError {
            #expect(error.code == .server)
            #expect(FailureClass.of(error) != .transient)
        }
        // The connection is still in step after the error.
        #expect(try await redis.command("GET", key).string == "text")
        _ = try await redis.command("DEL", key)
    }

    @Test func evalshaWorksAfterScriptFlush() async throws {
        let redis = try await TestServers.redis()
        let key = TestServers.unique("sw:test:script")
        let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        #expect(try await redis.run(script, keys: [key], arguments: ["5"]) == .integer(5))
        let serverSHA = try await redis.command("SCRIPT", "LOAD", script.source).string
        #expect(serverSHA == script.sha1)
        _ = try await redis.command("SCRIPT", "FLUSH")
        #expect(try await redis.run(script, keys: [key], arguments: ["2"]) == .integer(7))
        let failing = RedisScript("return redis.error_reply('BOOM nope')")
        await #expect(throws: RedisError.self) { try await redis.run(failing) }
        _ = try await redis.command("DEL", key)
    }

    @Test func killedConnectionReportsThenReconnects() async throws {
        let redis = try await TestServers.redis()
        let killer = try await TestServers.redis()
        let id = try #require(try await redis.command("CLIENT", "ID").int)
        #expect(await redis.connects == 1)
        _ = try await killer.command("CLIENT", "KILL", "ID", String(id))
        do {
            _ = try await redis.command("PING")
            Issue.record("a killed connection should fail once")
        } catch let error as RedisError {
            #expect(error.code == .connection)
            #expect(FailureClass.of(error) == .transient)
        }
        #expect(try await redis.command("PING") == .status("PONG"))
        #expect(await redis.connects == 2)
        let newID = try #require(try await redis.command("CLIENT", "ID").int)
        #expect(newID != id)
    }

    @Test func unreachableServerIsAConnectionError() async throws {
        // Port 1 on loopback: nothing listens there.
        do {
            _ = try await RedisConnection(configuration: RedisConfiguration(host: "127.0.0.1", port: 1, connectTimeout: .seconds(1)))
            Issue.record("connecting to a closed port should fail")
        } catch let error as RedisError {
            #expect(error.code == .connection)
        }
    }

    @Test func wrongPasswordIsRejectedWithoutPrintingIt() async throws {
        var configuration = try RedisConfiguration(url: try TestServers.redisURL())
        configuration.password = "not-the-password"
        do {
            _ = try await RedisConnection(configuration: configuration)
            Issue.record("AUTH against a server without a password should fail")
        } catch let error as RedisError {
            #expect(error.code == .server)
            #expect(!error.description.contains("not-the-password"))
        }
    }

    /// While two connections sit in XREADGROUP … BLOCK 10000, a third completes 100 round trips and
    /// the server still reports both as blocked: blocking C calls do not hold Swift's cooperative
    /// pool (two threads here, so two blocked calls on the pool would leave none). The window is
    /// 10 s, not 4 s: on a 2-core machine busy with the other tests' servers and processes, 500
    /// round trips once took longer than 4 s.
    @Test func blockedReadsDoNotHoldTheCooperativePool() async throws {
        let key1 = TestServers.unique("sw:test:{block1}")
        let key2 = TestServers.unique("sw:test:{block2}")
        let blockerA = try await TestServers.redis()
        let blockerB = try await TestServers.redis()
        let free = try await TestServers.redis()
        let nameA = TestServers.unique("blockerA"), nameB = TestServers.unique("blockerB")
        _ = try await blockerA.command("CLIENT", "SETNAME", nameA)
        _ = try await blockerB.command("CLIENT", "SETNAME", nameB)
        try await free.xgroupCreate(key1, group: "g")
        try await free.xgroupCreate(key2, group: "g")

        let clock = ContinuousClock()
        let start = clock.now
        async let readA = blockerA.xreadgroup(group: "g", consumer: "a", streams: [(key1, ">")], count: 10, block: .milliseconds(10_000))
        async let readB = blockerB.xreadgroup(group: "g", consumer: "b", streams: [(key2, ">")], count: 10, block: .milliseconds(10_000))

        // How many of the two readers the server reports as blocked in XREADGROUP.
        func blockedReaders() async throws -> Int {
            let clients = try await free.command("CLIENT", "LIST").string ?? ""
            return clients.split(separator: "\n").filter { line in
                (line.contains("name=\(nameA) ") || line.contains("name=\(nameB) ")) && line.contains("cmd=xreadgroup")
                    && line.contains("flags=b")
            }.count
        }
        var blocked = 0
        for _ in 0..<100 {
            blocked = try await blockedReaders()
            if blocked == 2 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(blocked == 2, "both readers should be blocked on the server")

        let roundTripsStart = clock.now
        for _ in 0..<100 {
            _ = try await free.command("PING")
        }
        let roundTrips = clock.now - roundTripsStart
        // The proof does not depend on how fast this machine is: the round trips completed while
        // both readers were still blocked (the server says so), so the blocked calls held no
        // thread of the cooperative pool.
        #expect(try await blockedReaders() == 2, "100 round trips (\(roundTrips)) finished while both BLOCKs were still in progress")
        #expect(clock.now - start < .milliseconds(10_000))

        let (a, b) = try await (readA, readB)
        #expect(a.isEmpty && b.isEmpty)
        #expect(clock.now - start >= .milliseconds(9900), "the BLOCKs lasted their full 10 s")
        _ = try await free.command("DEL", key1, key2)
    }
}

@Suite struct RedisConnectionFaultTests {
    /// Connections cut part-way through large stream replies, again and again: every read fails
    /// with a connection error (never a crash, never a wrong entry), and the read after the cuts
    /// returns every entry intact. Before the fix, a cut left the reader's half-built reply
    /// pointing at the connection's reply builder, and freeing the context freed that live object.
    @Test(.timeLimit(.minutes(2)))
    func repliesCutMidwayFailCleanly() async throws {
        let redis = try await TestServers.redis()
        let key = TestServers.unique("sw-cut")
        var batch = RedisCommandBuffer()
        for index in 0..<3000 {
            batch.xadd(key, fields: ["n", String(index), "payload", String(repeating: "x", count: 200), "tail", "t\(index)"])
        }
        _ = try await redis.send(batch)
        defer { Task { _ = try? await redis.command("DEL", key) } }
        let upstream = redis.configuration.port
        let cuts = 25
        let proxy = try CuttingProxy(upstreamPort: upstream, cuts: cuts) { n in 100 + (n * 37_931) % 600_000 }
        defer { proxy.close() }
        let connection = try await RedisConnection(url: "redis://127.0.0.1:\(proxy.port)/0")
        var failures = 0
        for _ in 0..<(cuts * 2) {
            do {
                let reads = try await connection.xread(streams: [(key, "0")], count: 3000)
                let entries = reads.first?.entries ?? []
                #expect(entries.count == 3000)
                #expect(entries.enumerated().allSatisfy { $0.element["n"] == String($0.offset) && $0.element["tail"] == "t\($0.offset)" })
                if proxy.accepted > cuts { break }
            } catch let error as RedisError {
                #expect(error.code == .connection || error.code == .protocolError || error.code == .timeout, "\(error)")
                failures += 1
            }
            // Allocation traffic between reads, so a freed live object shows.
            _ = (0..<2000).map { String(repeating: "y", count: $0 % 64) }
        }
        #expect(failures >= cuts - 1, "the proxy cut the replies (\(failures) failures)")
        let last = try await connection.xread(streams: [(key, "0")], count: 3000)
        #expect(last.first?.entries.count == 3000)
    }
}
