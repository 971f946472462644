import Testing
@testable import RedisClient
import Contract
import KPIModel
import StreamRuntime
import WarehouseSink
import KPIStore
import DataGenerator
import RedisWire
import PostgresClient

@Suite struct RedisCommandBufferTests {
    @Test func encodesArgvAsBulkStrings() {
        var buffer = RedisCommandBuffer()
        buffer.append("SET", "key", "value")
        #expect(String(decoding: buffer.bytes, as: UTF8.self) == "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n")
        #expect(buffer.count == 1)
    }

    @Test func isBinarySafe() {
        var buffer = RedisCommandBuffer()
        buffer.append(bytes: [Array("SET".utf8), [0x00, 0x0d, 0x0a, 0xff]])
        #expect(buffer.bytes == Array("*2\r\n$3\r\nSET\r\n$4\r\n".utf8) + [0x00, 0x0d, 0x0a, 0xff] + [13, 10])
    }

    @Test func encodesIntegersAndMultiByteText() {
        var buffer = RedisCommandBuffer()
        buffer.begin(arguments: 4)
        buffer.add("X"); buffer.add(-1234567890123); buffer.add(0); buffer.add("é€")
        #expect(String(decoding: buffer.bytes, as: UTF8.self)
            == "*4\r\n$1\r\nX\r\n$14\r\n-1234567890123\r\n$1\r\n0\r\n$5\r\né€\r\n")
    }

    /// Commands written into script arguments become one EVALSHA whose ARGV holds, per command,
    /// its argument count and its arguments.
    @Test func flattensCommandsIntoOneScriptCall() {
        var commands = RedisCommandBuffer.scriptArguments()
        commands.append("HSET", "h", "f", "v")
        commands.append("DEL", nil, each: ["a", "b", "c"], perCommand: 2)
        #expect(commands.flatArgumentCount == 5 + 4 + 3)
        var buffer = RedisCommandBuffer()
        let script = RedisScript("return 1")
        buffer.evalsha(script, keys: ["k"], arguments: ["7"], commands: commands)
        #expect(buffer.count == 1 && buffer.isComplete)
        #expect(String(decoding: buffer.bytes, as: UTF8.self) == "*17\r\n$7\r\nEVALSHA\r\n$40\r\n\(script.sha1)\r\n$1\r\n1\r\n$1\r\nk\r\n$1\r\n7\r\n"
            + "$1\r\n4\r\n$4\r\nHSET\r\n$1\r\nh\r\n$1\r\nf\r\n$1\r\nv\r\n"
            + "$1\r\n3\r\n$3\r\nDEL\r\n$1\r\na\r\n$1\r\nb\r\n"
            + "$1\r\n2\r\n$3\r\nDEL\r\n$1\r\nc\r\n")
    }

    @Test func pipelinesManyCommands() {
        var buffer = RedisCommandBuffer()
        for index in 0..<12 { buffer.append("INCR", "k\(index)") }
        #expect(buffer.count == 12)
        #expect(buffer.isComplete)
        buffer.removeAll()
        #expect(buffer.isEmpty && buffer.bytes.isEmpty)
    }

    @Test func buildsXADDWithTrim() {
        var buffer = RedisCommandBuffer()
        buffer.xadd("s", trim: .maxLength(1000), fields: ["a", "1"])
        #expect(String(decoding: buffer.bytes, as: UTF8.self)
            == "*8\r\n$4\r\nXADD\r\n$1\r\ns\r\n$6\r\nMAXLEN\r\n$1\r\n~\r\n$4\r\n1000\r\n$1\r\n*\r\n$1\r\na\r\n$1\r\n1\r\n")
        #expect(buffer.isComplete)
        buffer.removeAll()
        buffer.xadd("s", trim: .minID(StreamID(milliseconds: 5, sequence: 1), approximate: false), fields: ["a", "1"])
        #expect(String(decoding: buffer.bytes, as: UTF8.self).contains("$5\r\nMINID\r\n$3\r\n5-1\r\n$1\r\n*\r\n"))
    }

    @Test func formatsDecimalEdges() {
        for value in [0, 9, 10, -1, Int.max, Int.min + 1, 1_000_000] {
            var storage = [UInt8](repeating: 0, count: 24)
            let length = storage.withUnsafeMutableBytes { RedisCommandBuffer.formatDecimal(value, into: $0) }
            #expect(String(decoding: storage[0..<length], as: UTF8.self) == String(value))
        }
    }
}

@Suite struct StreamIDTests {
    @Test func parsesAndPrints() {
        #expect(StreamID("1700000000000-3") == StreamID(milliseconds: 1_700_000_000_000, sequence: 3))
        #expect(StreamID("42") == StreamID(milliseconds: 42, sequence: 0))
        #expect(StreamID("1-2")?.description == "1-2")
        for bad in ["", "-", "1-", "-1", "a-1", "1-b", "1-2-3", "99999999999999999999-0", " 1-2"] {
            #expect(StreamID(bad) == nil, "\(bad) should not parse")
        }
    }

    @Test func ordersAsRedisDoes() {
        let ids = ["2-0", "1-10", "1-2", "10-0", "1-0"].compactMap(StreamID.init)
        #expect(ids.sorted().map(\.description) == ["1-0", "1-2", "1-10", "2-0", "10-0"])
        #expect(StreamID(milliseconds: 1, sequence: .max).successor == StreamID(milliseconds: 2, sequence: 0))
        #expect(StreamID(milliseconds: 1, sequence: 1).successor == StreamID(milliseconds: 1, sequence: 2))
    }

    @Test func entryFieldLookup() {
        let entry = StreamEntry(id: .zero, fields: ["a", "1", "b", "2", "a", "3"])
        #expect(entry["a"] == "1")
        #expect(entry["b"] == "2")
        #expect(entry["c"] == nil)
        #expect(entry.pairs.map(\.name) == ["a", "b", "a"])
    }
}

@Suite struct SHA1Tests {
    @Test func knownVectors() {
        #expect(SHA1.hexDigest(Array("".utf8)) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(SHA1.hexDigest(Array("abc".utf8)) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(SHA1.hexDigest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
            == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(SHA1.hexDigest([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))
            == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }
}

@Suite struct RedisConfigurationTests {
    @Test func parsesURLs() throws {
        let full = try RedisConfiguration(url: "redis://user:p%40ss@example.com:7000/3")
        #expect(full.host == "example.com")
        #expect(full.port == 7000)
        #expect(full.username == "user")
        #expect(full.password == "p@ss")
        #expect(full.database == 3)
        #expect(full.redactedURL == "redis://user:***@example.com:7000/3")
        #expect(!full.redactedURL.contains("p@ss"))

        let passwordOnly = try RedisConfiguration(url: "redis://:secret@127.0.0.1")
        #expect(passwordOnly.username == nil)
        #expect(passwordOnly.password == "secret")
        #expect(passwordOnly.port == 6379)
        #expect(passwordOnly.database == 0)

        let bare = try RedisConfiguration(url: "redis://localhost:16379")
        #expect(bare.host == "localhost" && bare.port == 16379 && bare.password == nil)
    }

    @Test func rejectsBadURLs() {
        for bad in ["http://localhost", "redis://localhost/db", "rediss://x", "redis://h:0"] {
            #expect(throws: RedisError.self, "\(bad)") { try RedisConfiguration(url: bad) }
        }
        #expect(RedisConfiguration.redacted("redis://u:pw@h:1/0") == "redis://u:***@h:1/0")
    }

    @Test func errorsSayWhatKind() {
        #expect(RedisError(.server, "BUSYGROUP Consumer Group name already exists").serverErrorPrefix == "BUSYGROUP")
        #expect(RedisError(.server, "NOSCRIPT x").description == "Redis server error: NOSCRIPT x")
    }
}
