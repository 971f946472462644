/// What a Redis Cluster client needs to route a pipeline: where each command of an encoded buffer
/// starts and ends, and the hash slot of the key it names (nil for a command that names none).
/// Pure, so the rules are unit-tested apart from any server.
public enum ClusterRouting {
    /// One command of a buffer.
    public struct Command: Sendable, Equatable {
        /// Its bytes in the buffer.
        public var range: Range<Int>
        /// The slot of its first key; nil for a keyless command (PING, INFO, SCRIPT, CLUSTER …)
        /// and for a script called with no keys.
        public var slot: Int?
    }

    /// Splits RESP-encoded `bytes` (a pipeline of arrays of bulk strings, as `RedisCommandBuffer`
    /// writes them) into its commands. Reads only the headers and the arguments that decide the
    /// key: the cost is a few comparisons per argument.
    public static func commands(in bytes: [UInt8]) -> [Command] {
        bytes.withUnsafeBytes { raw in
            var reader = Reader(raw: raw)
            var commands: [Command] = []
            while reader.offset < raw.count {
                let start = reader.offset
                let arguments = reader.header(UInt8(ascii: "*"))
                var spans: [Range<Int>] = []
                spans.reserveCapacity(min(arguments, 8))
                for _ in 0..<arguments { spans.append(reader.bulk()) }
                let slot = keyArgument(raw, spans).map { HashSlot.of(bytes: UnsafeRawBufferPointer(rebasing: raw[$0])) }
                commands.append(Command(range: start..<reader.offset, slot: slot))
            }
            return commands
        }
    }

    /// The span of the argument that is the command's first key.
    static func keyArgument(_ raw: UnsafeRawBufferPointer, _ spans: [Range<Int>]) -> Range<Int>? {
        guard let nameSpan = spans.first else { return nil }
        let name = String(decoding: UnsafeRawBufferPointer(rebasing: raw[nameSpan]), as: UTF8.self).uppercased()
        func argument(_ index: Int) -> Range<Int>? { index < spans.count ? spans[index] : nil }
        func text(_ index: Int) -> String? {
            argument(index).map { String(decoding: UnsafeRawBufferPointer(rebasing: raw[$0]), as: UTF8.self) }
        }
        switch name {
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
            guard let keys = text(2).flatMap({ Int($0) }), keys > 0 else { return nil }
            return argument(3)
        case "XREAD", "XREADGROUP":
            guard let streams = (1..<spans.count).first(where: { text($0)?.uppercased() == "STREAMS" }) else { return nil }
            return argument(streams + 1)
        case "XGROUP", "XINFO", "OBJECT", "MEMORY":
            return text(1)?.uppercased() == "HELP" ? nil : argument(2)
        case "PING", "ECHO", "INFO", "SCRIPT", "CLUSTER", "CONFIG", "SELECT", "AUTH", "HELLO", "DBSIZE", "FLUSHALL",
             "FLUSHDB", "SCAN", "KEYS", "TIME", "CLIENT", "WAIT", "MULTI", "EXEC", "DISCARD", "ASKING", "READONLY",
             "READWRITE", "COMMAND", "LASTSAVE", "BGSAVE", "BGREWRITEAOF", "SAVE", "ROLE", "DEBUG", "FUNCTION", "ACL",
             "SLOWLOG", "LATENCY", "RANDOMKEY", "SHUTDOWN", "FAILOVER", "REPLICAOF", "SLAVEOF", "MONITOR", "QUIT", "RESET":
            return nil
        default:
            return argument(1)
        }
    }

    /// A redirection or a cluster-state reply that the client handles itself.
    public enum Redirect: Sendable, Equatable {
        /// `MOVED slot host:port`: the slot lives there now; the map is stale.
        case moved(slot: Int, node: String)
        /// `ASK slot host:port`: this one command goes there, after `ASKING` (a slot migrating).
        case ask(slot: Int, node: String)
        /// `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, `LOADING`, `READONLY`, `UNBLOCKED`: the cluster is
        /// changing (a migration, a failover); wait a moment, refresh the map, send again.
        case retry
    }

    /// Reads an error reply as a redirect; nil for any other error.
    public static func redirect(_ message: String) -> Redirect? {
        let words = message.split(separator: " ")
        guard let first = words.first else { return nil }
        switch first {
        case "MOVED", "ASK":
            guard words.count >= 3, let slot = Int(words[1]), (0..<HashSlot.count).contains(slot) else { return nil }
            var node = String(words[2])
            // Redis 7 may leave the host out (`:6380`) when the node has no announced address:
            // the client then uses the host of the node it asked.
            if node.hasPrefix(":") { node = "?" + node }
            return first == "MOVED" ? .moved(slot: slot, node: node) : .ask(slot: slot, node: node)
        case "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "LOADING", "READONLY", "UNBLOCKED":
            return .retry
        default:
            return nil
        }
    }

    /// Reads a `CLUSTER SLOTS` reply: for each slot range, its primary's `host:port` (a missing or
    /// `?` host is replaced with `askedHost`, the host of the node that answered).
    public static func slotRanges(_ reply: RedisReply, askedHost: String) -> [(slots: ClosedRange<Int>, primary: String, replicas: [String])]? {
        guard let ranges = reply.array else { return nil }
        var result: [(slots: ClosedRange<Int>, primary: String, replicas: [String])] = []
        for range in ranges {
            guard let parts = range.array, parts.count >= 3, let start = parts[0].int, let end = parts[1].int,
                  start <= end, start >= 0, end < HashSlot.count
            else { return nil }
            var nodes: [String] = []
            for node in parts[2...] {
                guard let fields = node.array, fields.count >= 2, let port = fields[1].int else { return nil }
                var host = fields[0].string ?? ""
                if host.isEmpty || host == "?" { host = askedHost }
                nodes.append(address(host: host, port: port))
            }
            result.append((start...end, nodes[0], Array(nodes.dropFirst())))
        }
        return result
    }

    /// `host:port`, with an IPv6 host in brackets.
    public static func address(host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Splits `host:port` (the host may be in brackets).
    public static func split(address: String) -> (host: String, port: Int)? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else { return nil }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }

    /// Reads RESP headers (`*n\r\n`, `$n\r\n…\r\n`) from a buffer known to be well formed.
    struct Reader {
        let raw: UnsafeRawBufferPointer
        var offset = 0

        mutating func header(_ kind: UInt8) -> Int {
            precondition(raw[offset] == kind, "not a RESP command buffer")
            offset += 1
            var value = 0
            while raw[offset] != 13 {
                value = value * 10 + Int(raw[offset] &- UInt8(ascii: "0"))
                offset += 1
            }
            offset += 2
            return value
        }

        mutating func bulk() -> Range<Int> {
            let length = header(UInt8(ascii: "$"))
            let start = offset
            offset += length + 2
            return start..<(start + length)
        }
    }
}
