import CHiredis
#if canImport(Glibc)
import Glibc
#endif
public import RedisWire

/// What a connection to a Redis Cluster knows: which primary serves each of the 16,384 slots, and
/// one hiredis connection per node it has talked to. Lives on its connection's thread only.
final class ClusterState {
    /// Connections by node address (`host:port`), made when first needed.
    var nodes: [String: RedisContextBox] = [:]
    /// The primary serving each slot, as an index into `addresses` (-1: no node serves it).
    private var owners = [Int32](repeating: -1, count: HashSlot.count)
    private(set) var addresses: [String] = []
    private var indexes: [String: Int32] = [:]
    /// The primaries, in slot order of their first range.
    private(set) var primaries: [String] = []
    /// Set when the map may be out of date (a MOVED, a lost node): read again before the next call.
    var stale = false
    var refreshedAt = ContinuousClock.now

    init?(slots reply: RedisReply, askedHost: String) {
        guard update(slots: reply, askedHost: askedHost) else { return nil }
    }

    /// Replaces the map with a `CLUSTER SLOTS` reply; false when the reply is not a map.
    func update(slots reply: RedisReply, askedHost: String) -> Bool {
        guard let ranges = ClusterRouting.slotRanges(reply, askedHost: askedHost), !ranges.isEmpty else { return false }
        owners = [Int32](repeating: -1, count: HashSlot.count)
        primaries = []
        for range in ranges {
            let index = index(of: range.primary)
            if !primaries.contains(range.primary) { primaries.append(range.primary) }
            for slot in range.slots { owners[slot] = index }
        }
        // Connections to nodes that serve nothing now (a primary demoted by a failover, a node
        // removed) are closed: what they hold is a replica's or nothing.
        for address in nodes.keys where !primaries.contains(address) { nodes[address] = nil }
        stale = false
        refreshedAt = .now
        return true
    }

    private func index(of address: String) -> Int32 {
        if let index = indexes[address] { return index }
        let index = Int32(addresses.count)
        addresses.append(address)
        indexes[address] = index
        return index
    }

    /// The primary serving `slot`; nil when none does (the cluster is missing that slot).
    func owner(of slot: Int) -> String? {
        let index = owners[slot]
        return index < 0 ? nil : addresses[Int(index)]
    }

    /// A MOVED reply's news: `slot` is served by `node` now.
    func move(slot: Int, to node: String) {
        owners[slot] = index(of: node)
        if !primaries.contains(node) { primaries.append(node) }
        stale = true
    }
}

extension RedisConnection {
    /// True when connected to a Redis Cluster (detected on connecting).
    public var isCluster: Bool {
        get async throws {
            try await ensureConnected()
            return cluster != nil
        }
    }

    /// The address of every primary (`host:port`); the one server's when not a cluster.
    public func primaryAddresses() async throws -> [String] {
        try await ensureConnected()
        if let cluster { return cluster.primaries }
        return [ClusterRouting.address(host: configuration.host, port: configuration.port)]
    }

    /// The address of the primary that serves `key` now (the one server's when not a cluster).
    public func node(of key: String) async throws -> String {
        try await ensureConnected()
        guard let cluster else { return ClusterRouting.address(host: configuration.host, port: configuration.port) }
        guard let node = cluster.owner(of: HashSlot.of(key)) else {
            cluster.stale = true
            throw RedisError(.connection, "no node serves the slot of \(key) (the cluster is missing slots)")
        }
        return node
    }

    /// Sends `batch` to one node as it is (no routing, no redirects followed): for commands that
    /// concern a node rather than a key (SCAN, INFO, CONFIG, SCRIPT LOAD, FLUSHALL). Not a
    /// cluster: the one server.
    public func send(_ batch: RedisCommandBuffer, toNode address: String) async throws -> [RedisReply] {
        try await ensureConnected()
        guard let cluster else { return try roundTrip(batch) { RedisReply(converting: $0) } }
        let context = try context(of: address, in: cluster)
        return try nodeExchange(batch, node: address, context: context, in: cluster, asking: []) { RedisReply(converting: $0) }
            .map { $0.value }
    }

    /// Sends `batch` to every primary (to the one server when not a cluster): replies per node.
    public func sendToEachPrimary(_ batch: RedisCommandBuffer) async throws -> [(node: String, replies: [RedisReply])] {
        var results: [(node: String, replies: [RedisReply])] = []
        for node in try await primaryAddresses() {
            results.append((node, try await send(batch, toNode: node)))
        }
        return results
    }

    // MARK: - The C layer (runs on `thread`)

    /// Reads the slot map again from the first node that answers (the known primaries, then the
    /// seeds), and drops connections to nodes that no longer serve slots.
    func refreshTopology() throws {
        guard let cluster else { return }
        var candidates = cluster.primaries.compactMap(ClusterRouting.split(address:))
        candidates += configuration.seeds.map { ($0.host, $0.port) }
        var failures: [String] = []
        for (host, port) in candidates {
            let address = ClusterRouting.address(host: host, port: port)
            do {
                let context = try self.context(of: address, in: cluster)
                var batch = RedisCommandBuffer()
                batch.append("CLUSTER", "SLOTS")
                let reply = try nodeExchange(batch, node: address, context: context, in: cluster, asking: []) {
                    RedisReply(converting: $0)
                }[0].value
                if cluster.update(slots: reply, askedHost: host) { return }
                failures.append("\(address): CLUSTER SLOTS returned \(reply)")
            } catch {
                failures.append("\(error)")
            }
        }
        cluster.stale = true
        throw RedisError(.connection, "cannot read the cluster's slot map from any node: " + failures.joined(separator: "; "))
    }

    /// The connection to `address`, made now if there is none.
    private func context(of address: String, in cluster: ClusterState) throws -> UnsafeMutablePointer<redisContext> {
        if let box = cluster.nodes[address] { return box.context }
        guard let (host, port) = ClusterRouting.split(address: address) else {
            throw RedisError(.unexpectedReply, "not a node address: \(address)")
        }
        let box = try openContext(host: host, port: port, selectDatabase: false)
        cluster.nodes[address] = box
        return box.context
    }

    private func dropNode(_ address: String, _ context: UnsafeMutablePointer<redisContext>, in cluster: ClusterState) -> RedisError {
        let error = connectionError(context, node: address)
        cluster.nodes[address] = nil
        topologyChanges += 1
        // The node may have failed over: the map is read again before the next call.
        cluster.stale = true
        return error
    }

    /// Where a command goes: its slot's primary, a keyless command to the first primary.
    private func route(_ slot: Int?, in cluster: ClusterState) throws -> String {
        guard let slot else {
            guard let first = cluster.primaries.first else { throw RedisError(.connection, "the cluster has no primary") }
            return first
        }
        guard let node = cluster.owner(of: slot) else {
            cluster.stale = true
            throw RedisError(.connection, "no node serves slot \(slot) (the cluster is missing slots)")
        }
        return node
    }

    /// How many times one call follows redirects (MOVED, ASK) and waits out a changing cluster
    /// (TRYAGAIN, CLUSTERDOWN …) before giving up with a connection error, which callers retry.
    private static var redirectRounds: Int { 8 }

    /// The cluster form of `roundTrip`: the batch's commands are grouped by the node serving their
    /// slot (in their order within each node), written to every node before any reply is read, and
    /// the replies put back in the batch's order. MOVED updates the map and sends the command to
    /// the new node; ASK sends it once to the node named, after ASKING; TRYAGAIN, CLUSTERDOWN and
    /// the like wait a moment and read the map again. A node whose connection fails is dropped and
    /// the map marked stale; the call then throws a connection error once every other node's
    /// replies are read (so every connection stays in step), and the caller retries as for any
    /// lost connection.
    func clusterRoundTrip<T>(
        _ batch: RedisCommandBuffer, _ cluster: ClusterState, blockingFor block: Duration?,
        decode: (UnsafeMutablePointer<redisReply>) throws -> T
    ) throws -> [T] {
        let commands = ClusterRouting.commands(in: batch.bytes)
        var results = [T?](repeating: nil, count: commands.count)
        var todo: [(index: Int, ask: String?)] = commands.indices.map { ($0, nil) }
        var decodeError: (any Error)?
        for round in 0...Self.redirectRounds {
            var byNode: [String: [(index: Int, ask: String?)]] = [:]
            var order: [String] = []
            for item in todo {
                let node = try item.ask ?? route(commands[item.index].slot, in: cluster)
                if byNode[node] == nil { order.append(node) }
                byNode[node, default: []].append(item)
            }
            var failure: RedisError?
            var retry: [(index: Int, ask: String?)] = []
            var wait = false
            var written: [(node: String, context: UnsafeMutablePointer<redisContext>, items: [(index: Int, ask: String?)])] = []
            for node in order {
                let items = byNode[node]!
                do {
                    let context = try context(of: node, in: cluster)
                    var bytes: [UInt8] = []
                    for item in items {
                        if item.ask != nil { bytes += Self.asking }
                        bytes += batch.bytes[commands[item.index].range]
                    }
                    if configuration.replicaAcknowledgements > 0 {
                        var wait = RedisCommandBuffer()
                        wait.append(bytes: Self.waitCommand(configuration))
                        bytes += wait.bytes
                    }
                    if let block { redisSetTimeout(context, timeval(configuration.socketTimeout + block)) }
                    let appended = bytes.withUnsafeBufferPointer { buffer in
                        buffer.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(context, $0.baseAddress, $0.count) }
                    }
                    guard appended == REDIS_OK else { throw dropNode(node, context, in: cluster) }
                    written.append((node, context, items))
                } catch let error as RedisError where error.code != .server {
                    failure = failure ?? error
                    cluster.stale = true
                }
            }
            for (node, context, items) in written {
                do {
                    let replies = try nodeReplies(items.map { $0.ask != nil }, node: node, context: context, in: cluster, decode: decode)
                    if configuration.replicaAcknowledgements > 0 {
                        var raw: UnsafeMutableRawPointer?
                        guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw dropNode(node, context, in: cluster) }
                        defer { freeReplyObject(raw) }
                        try Self.checkReplicas(RedisReply(converting: raw.assumingMemoryBound(to: redisReply.self)), configuration, node: node)
                    }
                    if block != nil, cluster.nodes[node] != nil { redisSetTimeout(context, timeval(configuration.socketTimeout)) }
                    for (item, reply) in zip(items, replies) {
                        switch reply {
                        case .value(let value): results[item.index] = value
                        case .failed(let error): decodeError = decodeError ?? error
                        case .redirect(.moved(let slot, let target)):
                            cluster.move(slot: slot, to: Self.resolve(target, askedNode: node))
                            topologyChanges += 1
                            retry.append((item.index, nil))
                        case .redirect(.ask(_, let target)):
                            retry.append((item.index, Self.resolve(target, askedNode: node)))
                        case .redirect(.retry):
                            wait = true
                            retry.append((item.index, nil))
                        }
                    }
                } catch let error as RedisError {
                    failure = failure ?? error
                }
            }
            if let failure { throw failure }
            if retry.isEmpty { break }
            if round == Self.redirectRounds {
                cluster.stale = true
                throw RedisError(.connection, "the cluster kept redirecting or refusing \(retry.count) command(s) (a failover or resharding in progress)")
            }
            if wait {
                // The cluster is changing under us (a failover, a migration): wait, then read the map.
                usleep(useconds_t(50_000 * (round + 1)))
                try? refreshTopology()
            }
            todo = retry
        }
        if let decodeError { throw decodeError }
        return results.map { $0! }
    }

    /// One reply of a node, as the cluster round trip sees it.
    enum NodeReply<T> {
        case value(T)
        case failed(any Error)
        case redirect(ClusterRouting.Redirect)
    }

    /// Reads one reply per item from `node` (and the ASKING reply before each item that has one);
    /// redirects are returned as such, never decoded.
    private func nodeReplies<T>(
        _ asking: [Bool], node: String, context: UnsafeMutablePointer<redisContext>, in cluster: ClusterState,
        decode: (UnsafeMutablePointer<redisReply>) throws -> T
    ) throws -> [NodeReply<T>] {
        var replies: [NodeReply<T>] = []
        replies.reserveCapacity(asking.count)
        for ask in asking {
            for step in 0..<(ask ? 2 : 1) {
                var raw: UnsafeMutableRawPointer?
                guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw dropNode(node, context, in: cluster) }
                defer { freeReplyObject(raw) }
                if ask && step == 0 { continue }   // ASKING's +OK
                let reply = raw.assumingMemoryBound(to: redisReply.self)
                if reply.pointee.type == REDIS_REPLY_ERROR, let redirect = ClusterRouting.redirect(replyString(reply)) {
                    replies.append(.redirect(redirect))
                    continue
                }
                do {
                    replies.append(.value(try decode(reply)))
                } catch {
                    replies.append(.failed(error))
                }
            }
        }
        return replies
    }

    /// Writes `batch` to one node and reads its replies without following redirects.
    private func nodeExchange<T>(
        _ batch: RedisCommandBuffer, node: String, context: UnsafeMutablePointer<redisContext>, in cluster: ClusterState,
        asking: [Bool], decode: (UnsafeMutablePointer<redisReply>) throws -> T
    ) throws -> [(value: T, Void)] {
        let appended = batch.bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(context, $0.baseAddress, $0.count) }
        }
        guard appended == REDIS_OK else { throw dropNode(node, context, in: cluster) }
        var results: [(value: T, Void)] = []
        var decodeError: (any Error)?
        for _ in 0..<batch.count {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw dropNode(node, context, in: cluster) }
            defer { freeReplyObject(raw) }
            do {
                results.append((try decode(raw.assumingMemoryBound(to: redisReply.self)), ()))
            } catch {
                decodeError = decodeError ?? error
            }
        }
        if let decodeError { throw decodeError }
        return results
    }

    /// The cluster form of `streamRoundTrip`: one XREAD/XREADGROUP, to its slot's node, decoded
    /// through the flat reply; redirects followed as in `clusterRoundTrip`.
    func clusterStreamRoundTrip(_ batch: RedisCommandBuffer, _ cluster: ClusterState, blockingFor block: Duration?) throws -> [StreamRead] {
        let slot = ClusterRouting.commands(in: batch.bytes).first?.slot
        var ask: String?
        for round in 0...Self.redirectRounds {
            let node = try ask ?? route(slot, in: cluster)
            let context = try context(of: node, in: cluster)
            guard let reader = context.pointee.reader else { throw dropNode(node, context, in: cluster) }
            if ask != nil {
                var asking = RedisCommandBuffer()
                asking.append("ASKING")
                _ = try nodeExchange(asking, node: node, context: context, in: cluster, asking: []) { _ in () }
            }
            ask = nil
            if let block { redisSetTimeout(context, timeval(configuration.socketTimeout + block)) }
            let appended = batch.bytes.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(context, $0.baseAddress, $0.count) }
            }
            guard appended == REDIS_OK else { throw dropNode(node, context, in: cluster) }
            let reads: [StreamRead]
            do {
                reads = try readStreamReply(on: context, reader: reader) { dropNode(node, $0, in: cluster) }
            } catch let error as RedisError where error.code == .server {
                if block != nil { redisSetTimeout(context, timeval(configuration.socketTimeout)) }
                guard let redirect = ClusterRouting.redirect(error.message), round < Self.redirectRounds else { throw error }
                switch redirect {
                case .moved(let slot, let target):
                    cluster.move(slot: slot, to: Self.resolve(target, askedNode: node))
                    topologyChanges += 1
                case .ask(_, let target): ask = Self.resolve(target, askedNode: node)
                case .retry:
                    usleep(useconds_t(50_000 * (round + 1)))
                    try? refreshTopology()
                }
                continue
            }
            if block != nil { redisSetTimeout(context, timeval(configuration.socketTimeout)) }
            return reads
        }
        cluster.stale = true
        throw RedisError(.connection, "the cluster kept redirecting a stream read (a failover or resharding in progress)")
    }

    /// `ASKING` in RESP.
    private static let asking: [UInt8] = Array("*1\r\n$6\r\nASKING\r\n".utf8)

    /// A redirect's node with its host filled in (`?:port` → the asked node's host).
    private static func resolve(_ target: String, askedNode: String) -> String {
        guard target.hasPrefix("?:"), let asked = ClusterRouting.split(address: askedNode),
              let port = ClusterRouting.split(address: target)?.port
        else { return target }
        return ClusterRouting.address(host: asked.host, port: port)
    }
}
