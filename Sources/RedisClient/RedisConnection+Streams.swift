import CHiredis
public import RedisWire

/// The XPENDING summary of a group.
public struct PendingSummary: Sendable, Equatable {
    public var count: Int
    public var smallest: StreamID?
    public var largest: StreamID?
    /// Pending entries per consumer name.
    public var consumers: [String: Int]
}

/// One entry of the extended XPENDING form.
public struct PendingEntry: Sendable, Equatable {
    public var id: StreamID
    public var consumer: String
    /// Time since the entry was last delivered.
    public var idle: Duration
    public var deliveries: Int
}

/// What XAUTOCLAIM returned.
public struct AutoClaimResult: Sendable, Equatable {
    /// Where the next XAUTOCLAIM call should start (`0-0` once the whole PEL was scanned).
    public var next: StreamID
    /// The entries now owned by the claiming consumer.
    public var entries: [StreamEntry]
    /// Ids that were pending but no longer exist in the stream (removed from the PEL by Redis 7).
    public var deleted: [StreamID]
}

/// One row of XINFO GROUPS.
public struct StreamGroupInfo: Sendable, Equatable {
    public var name: String
    public var consumers: Int
    public var pending: Int
    public var lastDeliveredID: StreamID
    /// Redis 7: the logical count of entries read by the group (nil when unknown).
    public var entriesRead: Int?
    /// Redis 7: entries not yet delivered to the group (nil when Redis cannot tell).
    public var lag: Int?
}

/// The interesting parts of XINFO STREAM.
public struct StreamInfo: Sendable, Equatable {
    public var length: Int
    public var groups: Int
    public var lastGeneratedID: StreamID
    public var firstEntry: StreamEntry?
    public var lastEntry: StreamEntry?
    /// Redis 7: total entries ever added.
    public var entriesAdded: Int?
}

/// One row of XINFO CONSUMERS.
public struct StreamConsumerInfo: Sendable, Equatable {
    public var name: String
    public var pending: Int
    /// Time since the consumer's last attempted interaction.
    public var idle: Duration
    /// Redis 7.2+: time since the last successful interaction (nil on older servers).
    public var inactive: Duration?
}

extension RedisConnection {
    /// `XADD`: appends one entry and returns its id.
    public func xadd(_ key: String, id: String = "*", trim: StreamTrim? = nil, fields: [String]) async throws -> StreamID {
        var batch = RedisCommandBuffer()
        batch.xadd(key, id: id, trim: trim, fields: fields)
        let reply = try await single(batch)
        guard let text = reply.string, let id = StreamID(text) else {
            throw RedisError(.unexpectedReply, "XADD returned \(reply)")
        }
        return id
    }

    /// `XREADGROUP GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS k… id…`.
    ///
    /// Returns the streams that had entries; an empty array when `BLOCK` timed out. While blocked,
    /// only this connection's thread waits; the socket timeout is extended by `block`.
    public func xreadgroup(
        group: String,
        consumer: String,
        streams: [(key: String, id: String)],
        count: Int? = nil,
        block: Duration? = nil,
        noAck: Bool = false
    ) async throws -> [StreamRead] {
        precondition(!streams.isEmpty, "XREADGROUP needs at least one stream")
        var batch = RedisCommandBuffer()
        let options = (count == nil ? 0 : 2) + (block == nil ? 0 : 2) + (noAck ? 1 : 0)
        batch.begin(arguments: 5 + options + streams.count * 2)
        batch.add("XREADGROUP"); batch.add("GROUP"); batch.add(group); batch.add(consumer)
        if let count { batch.add("COUNT"); batch.add(count) }
        if let block { batch.add("BLOCK"); batch.add(Int(block.milliseconds)) }
        if noAck { batch.add("NOACK") }
        batch.add("STREAMS")
        for stream in streams { batch.add(stream.key) }
        for stream in streams { batch.add(stream.id) }
        try await ensureConnected()
        return try streamRoundTrip(batch, blockingFor: block)
    }

    /// `XREAD [COUNT n] [BLOCK ms] STREAMS k… id…` (no group).
    public func xread(streams: [(key: String, id: String)], count: Int? = nil, block: Duration? = nil) async throws -> [StreamRead] {
        precondition(!streams.isEmpty, "XREAD needs at least one stream")
        var batch = RedisCommandBuffer()
        batch.begin(arguments: 2 + (count == nil ? 0 : 2) + (block == nil ? 0 : 2) + streams.count * 2)
        batch.add("XREAD")
        if let count { batch.add("COUNT"); batch.add(count) }
        if let block { batch.add("BLOCK"); batch.add(Int(block.milliseconds)) }
        batch.add("STREAMS")
        for stream in streams { batch.add(stream.key) }
        for stream in streams { batch.add(stream.id) }
        try await ensureConnected()
        return try streamRoundTrip(batch, blockingFor: block)
    }

    /// `XACK key group id…`: returns how many were acknowledged.
    @discardableResult
    public func xack(_ key: String, group: String, ids: [StreamID]) async throws -> Int {
        if ids.isEmpty { return 0 }
        var batch = RedisCommandBuffer()
        batch.xack(key, group: group, ids: ids)
        return try await integer(batch)
    }

    /// `XGROUP CREATE key group id [MKSTREAM]`. Returns false when the group already existed
    /// (BUSYGROUP is success: the group is there).
    @discardableResult
    public func xgroupCreate(_ key: String, group: String, id: String = "0", makeStream: Bool = true) async throws -> Bool {
        var arguments = ["XGROUP", "CREATE", key, group, id]
        if makeStream { arguments.append("MKSTREAM") }
        do {
            _ = try await command(arguments)
            return true
        } catch let error as RedisError where error.serverErrorPrefix == "BUSYGROUP" {
            return false
        }
    }

    /// `XAUTOCLAIM key group consumer min-idle start [COUNT n]`.
    public func xautoclaim(
        _ key: String, group: String, consumer: String, minIdle: Duration, start: StreamID = .zero, count: Int = 100
    ) async throws -> AutoClaimResult {
        var batch = RedisCommandBuffer()
        batch.append("XAUTOCLAIM", key, group, consumer, String(minIdle.milliseconds), start.description, "COUNT", String(count))
        try await ensureConnected()
        return try roundTrip(batch) { reply -> AutoClaimResult in
            let r = reply.pointee
            if r.type == REDIS_REPLY_ERROR { throw RedisError(.server, replyString(reply)) }
            guard r.type == REDIS_REPLY_ARRAY, r.elements >= 2, let next = r.element[0], let entries = r.element[1],
                  let nextID = StreamID(replyString(next))
            else { throw RedisError(.unexpectedReply, "XAUTOCLAIM reply is not [next, entries, …]") }
            var deleted: [StreamID] = []
            // Redis 6.2 returns deleted entries as nil items; Redis 7 lists their ids separately.
            var claimed: [StreamEntry] = []
            for index in 0..<entries.pointee.elements {
                guard let item = entries.pointee.element[index] else { continue }
                if item.pointee.type == REDIS_REPLY_NIL { continue }
                if let entry = try decodeEntry(item) { claimed.append(entry) }
            }
            if r.elements >= 3, let third = r.element[2], third.pointee.type == REDIS_REPLY_ARRAY {
                for index in 0..<third.pointee.elements {
                    if let item = third.pointee.element[index], let id = StreamID(replyString(item)) { deleted.append(id) }
                }
            }
            return AutoClaimResult(next: nextID, entries: claimed, deleted: deleted)
        }[0]
    }

    /// `XPENDING key group`: the summary form.
    public func xpending(_ key: String, group: String) async throws -> PendingSummary {
        let reply = try await command("XPENDING", key, group)
        guard let parts = reply.array, parts.count >= 4, let count = parts[0].int else {
            throw RedisError(.unexpectedReply, "XPENDING summary: \(reply)")
        }
        var consumers: [String: Int] = [:]
        for item in parts[3].array ?? [] {
            if let pair = item.array, pair.count == 2, let name = pair[0].string, let pending = pair[1].int {
                consumers[name] = pending
            }
        }
        return PendingSummary(
            count: count,
            smallest: parts[1].string.flatMap(StreamID.init),
            largest: parts[2].string.flatMap(StreamID.init),
            consumers: consumers
        )
    }

    /// `XPENDING key group [IDLE ms] start end count [consumer]`: the extended form.
    public func xpending(
        _ key: String, group: String, start: String = "-", end: String = "+", count: Int,
        consumer: String? = nil, minIdle: Duration? = nil
    ) async throws -> [PendingEntry] {
        var arguments = ["XPENDING", key, group]
        if let minIdle { arguments += ["IDLE", String(minIdle.milliseconds)] }
        arguments += [start, end, String(count)]
        if let consumer { arguments.append(consumer) }
        let reply = try await command(arguments)
        guard let items = reply.array else { throw RedisError(.unexpectedReply, "XPENDING: \(reply)") }
        return try items.map { item in
            guard let fields = item.array, fields.count == 4, let id = fields[0].string.flatMap(StreamID.init),
                  let consumer = fields[1].string, let idle = fields[2].int, let deliveries = fields[3].int
            else { throw RedisError(.unexpectedReply, "XPENDING entry: \(item)") }
            return PendingEntry(id: id, consumer: consumer, idle: .milliseconds(idle), deliveries: deliveries)
        }
    }

    /// `XINFO GROUPS key`.
    public func xinfoGroups(_ key: String) async throws -> [StreamGroupInfo] {
        let reply = try await command("XINFO", "GROUPS", key)
        return try (reply.array ?? []).map { item in
            let map = try fieldMap(item, "XINFO GROUPS")
            guard let name = map["name"]?.string, let consumers = map["consumers"]?.int,
                  let pending = map["pending"]?.int,
                  let last = map["last-delivered-id"]?.string.flatMap(StreamID.init)
            else { throw RedisError(.unexpectedReply, "XINFO GROUPS entry: \(item)") }
            return StreamGroupInfo(
                name: name, consumers: consumers, pending: pending, lastDeliveredID: last,
                entriesRead: map["entries-read"]?.int, lag: map["lag"]?.int
            )
        }
    }

    /// `XINFO STREAM key`.
    public func xinfoStream(_ key: String) async throws -> StreamInfo {
        let reply = try await command("XINFO", "STREAM", key)
        let map = try fieldMap(reply, "XINFO STREAM")
        guard let length = map["length"]?.int, let groups = map["groups"]?.int,
              let last = map["last-generated-id"]?.string.flatMap(StreamID.init)
        else { throw RedisError(.unexpectedReply, "XINFO STREAM: \(reply)") }
        return StreamInfo(
            length: length, groups: groups, lastGeneratedID: last,
            firstEntry: map["first-entry"].flatMap(Self.entry(from:)),
            lastEntry: map["last-entry"].flatMap(Self.entry(from:)),
            entriesAdded: map["entries-added"]?.int
        )
    }

    /// `XINFO CONSUMERS key group`.
    public func xinfoConsumers(_ key: String, group: String) async throws -> [StreamConsumerInfo] {
        let reply = try await command("XINFO", "CONSUMERS", key, group)
        return try (reply.array ?? []).map { item in
            let map = try fieldMap(item, "XINFO CONSUMERS")
            guard let name = map["name"]?.string, let pending = map["pending"]?.int, let idle = map["idle"]?.int
            else { throw RedisError(.unexpectedReply, "XINFO CONSUMERS entry: \(item)") }
            return StreamConsumerInfo(
                name: name, pending: pending, idle: .milliseconds(idle),
                inactive: map["inactive"]?.int.map { .milliseconds($0) }
            )
        }
    }

    /// Every key matching `pattern` (SCAN … MATCH [TYPE]), each once, sorted; on a cluster, of
    /// every primary.
    public func scanKeys(match pattern: String, type: String? = nil) async throws -> [String] {
        var keys: Set<String> = []
        for node in try await primaryAddresses() {
            keys.formUnion(try await scanKeys(match: pattern, type: type, node: node))
        }
        return keys.sorted()
    }

    private func scanKeys(match pattern: String, type: String?, node: String) async throws -> Set<String> {
        var keys: Set<String> = []
        var cursor = "0"
        repeat {
            var arguments = ["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"]
            if let type { arguments += ["TYPE", type] }
            var batch = RedisCommandBuffer()
            batch.append(arguments)
            let reply = try await send(batch, toNode: node)[0].throwingServerError()
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string else {
                throw RedisError(.unexpectedReply, "SCAN: \(reply)")
            }
            for key in parts[1].array ?? [] { if let key = key.string { keys.insert(key) } }
            cursor = next
        } while cursor != "0"
        return keys
    }

    /// One page of a hash's fields and values (`HSCAN key cursor COUNT count`), and the cursor
    /// of the next ("0" after the last): a hash of millions of fields is never read, nor held,
    /// whole. A field may come twice, and one written during the scan may not come at all.
    public func hscan(_ key: String, cursor: String, count: Int = 10_000) async throws -> (next: String, page: [(field: [UInt8], value: [UInt8])]) {
        try Self.scanPage(try await command("HSCAN", key, cursor, "COUNT", String(count)), of: "HSCAN \(key)")
    }

    /// The next cursor and the pairs (field and value, or member and score) of an HSCAN or ZSCAN
    /// reply.
    public static func scanPage(_ reply: RedisReply, of what: String) throws -> (next: String, page: [(field: [UInt8], value: [UInt8])]) {
        guard let parts = try reply.throwingServerError().array, parts.count == 2, let next = parts[0].string, let items = parts[1].array else {
            throw RedisError(.unexpectedReply, what)
        }
        var page: [(field: [UInt8], value: [UInt8])] = []
        page.reserveCapacity(items.count / 2)
        var index = 1
        while index < items.count {
            if let field = items[index - 1].bytes, let value = items[index].bytes { page.append((field, value)) }
            index += 2
        }
        return (next, page)
    }

    /// `XRANGE key start end [COUNT n]` (`-` and `+` for the ends; `(id` for exclusive).
    public func xrange(_ key: String, start: String = "-", end: String = "+", count: Int? = nil) async throws -> [StreamEntry] {
        try await range("XRANGE", key, start, end, count)
    }

    /// The id of each stream's newest entry (`XREVRANGE key + - COUNT 1`, pipelined); a stream
    /// that is empty or absent is left out.
    public func lastEntryIDs(_ keys: [String]) async throws -> [String: StreamID] {
        var batch = RedisCommandBuffer()
        for key in keys { batch.append("XREVRANGE", key, "+", "-", "COUNT", "1") }
        var out: [String: StreamID] = [:]
        for (key, reply) in zip(keys, try await send(batch)) {
            if let last = try reply.throwingServerError().array?.first?.array?.first?.string.flatMap(StreamID.init) { out[key] = last }
        }
        return out
    }

    /// `XREVRANGE key end start [COUNT n]`: newest first.
    public func xrevrange(_ key: String, end: String = "+", start: String = "-", count: Int? = nil) async throws -> [StreamEntry] {
        try await range("XREVRANGE", key, end, start, count)
    }

    /// `XLEN key`.
    public func xlen(_ key: String) async throws -> Int {
        var batch = RedisCommandBuffer()
        batch.append("XLEN", key)
        return try await integer(batch)
    }

    /// `XTRIM key MAXLEN|MINID [~] n`: returns how many entries were removed.
    @discardableResult
    public func xtrim(_ key: String, _ trim: StreamTrim) async throws -> Int {
        var batch = RedisCommandBuffer()
        batch.begin(arguments: 2 + batch.trimArgumentCount(trim))
        batch.add("XTRIM"); batch.add(key)
        batch.addTrim(trim)
        return try await integer(batch)
    }

    /// `XDEL key id…`: returns how many were deleted.
    @discardableResult
    public func xdel(_ key: String, ids: [StreamID]) async throws -> Int {
        if ids.isEmpty { return 0 }
        var batch = RedisCommandBuffer()
        batch.append(["XDEL", key] + ids.map(\.description))
        return try await integer(batch)
    }

    // MARK: - Helpers

    private func range(_ name: String, _ key: String, _ from: String, _ to: String, _ count: Int?) async throws -> [StreamEntry] {
        var batch = RedisCommandBuffer()
        var arguments = [name, key, from, to]
        if let count { arguments += ["COUNT", String(count)] }
        batch.append(arguments)
        try await ensureConnected()
        return try roundTrip(batch) { reply -> [StreamEntry] in
            let r = reply.pointee
            if r.type == REDIS_REPLY_ERROR { throw RedisError(.server, replyString(reply)) }
            guard r.type == REDIS_REPLY_ARRAY else { throw RedisError(.unexpectedReply, "\(name) did not return an array") }
            var entries: [StreamEntry] = []
            entries.reserveCapacity(r.elements)
            for index in 0..<r.elements {
                if let item = r.element[index], let entry = try decodeEntry(item) { entries.append(entry) }
            }
            return entries
        }[0]
    }

    private func integer(_ batch: RedisCommandBuffer) async throws -> Int {
        let reply = try await single(batch)
        guard case .integer(let value) = reply else { throw RedisError(.unexpectedReply, "expected an integer, got \(reply)") }
        return Int(value)
    }

    private func fieldMap(_ reply: RedisReply, _ what: String) throws -> [String: RedisReply] {
        guard let items = reply.array, items.count % 2 == 0 else {
            throw RedisError(.unexpectedReply, "\(what) is not a field list: \(reply)")
        }
        var map: [String: RedisReply] = [:]
        for index in stride(from: 0, to: items.count, by: 2) {
            if let name = items[index].string { map[name] = items[index + 1] }
        }
        return map
    }

    private static func entry(from reply: RedisReply) -> StreamEntry? {
        guard let parts = reply.array, parts.count == 2, let id = parts[0].string.flatMap(StreamID.init) else { return nil }
        let fields = (parts[1].array ?? []).map { $0.string ?? "" }
        return fields.count % 2 == 0 ? StreamEntry(id: id, fields: fields) : nil
    }
}

/// Decodes `[id, [f, v, …]]`. Returns nil for an entry whose fields are nil (deleted while pending).
func decodeEntry(_ item: UnsafeMutablePointer<redisReply>) throws -> StreamEntry? {
    let r = item.pointee
    guard r.type == REDIS_REPLY_ARRAY, r.elements == 2, let idReply = r.element[0] else {
        throw RedisError(.unexpectedReply, "stream entry is not [id, fields]")
    }
    guard let id = idReply.pointee.str.flatMap({ str in
        str.withMemoryRebound(to: UInt8.self, capacity: idReply.pointee.len) {
            StreamID.parse(UnsafeBufferPointer(start: $0, count: idReply.pointee.len))
        }
    }) else { throw RedisError(.unexpectedReply, "bad stream id \(replyString(idReply))") }
    guard let fieldsReply = r.element[1], fieldsReply.pointee.type == REDIS_REPLY_ARRAY else { return nil }
    let count = fieldsReply.pointee.elements
    guard count % 2 == 0 else { throw RedisError(.unexpectedReply, "odd number of fields in entry \(id)") }
    var size = 0
    for index in 0..<count { size += (fieldsReply.pointee.element[index]?.pointee.len ?? 0) + 2 }
    var packed: [UInt8] = []
    packed.reserveCapacity(size)
    for index in 0..<count {
        if let element = fieldsReply.pointee.element[index], let str = element.pointee.str {
            StreamEntry.append(UnsafeRawBufferPointer(start: str, count: element.pointee.len), to: &packed)
        } else {
            packed.append(0)
        }
    }
    return StreamEntry(id: id, packed: packed)
}
