import CHiredis
import RedisWire

/// Stream reads without hiredis's reply tree: while a stream read's reply is parsed, the reader's
/// object functions append each element to one flat buffer (a tag, then a LEB128 length and the
/// bytes for strings) instead of allocating a `redisReply` per element, and the entries are then
/// cut from that buffer with one allocation each. For a read of thousands of 15-field entries
/// that is tens of thousands fewer allocations and frees per batch.
final class FlatReply {
    static let array: UInt8 = 1, string: UInt8 = 2, integer: UInt8 = 3, null: UInt8 = 4, status: UInt8 = 5, error: UInt8 = 6

    @exclusivity(unchecked) var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(1 << 20) }

    func reset() { bytes.removeAll(keepingCapacity: true) }

    func appendLength(_ value: Int) {
        var length = value
        while length >= 0x80 {
            bytes.append(UInt8(length & 0x7F) | 0x80)
            length >>= 7
        }
        bytes.append(UInt8(length))
    }

    /// The object functions; every created "object" is the builder itself (hiredis only needs a
    /// non-null pointer, and links nothing: linking is the functions' job).
    nonisolated(unsafe) static var functions = redisReplyObjectFunctions(
        createString: { task, str, len in
            guard let task, let privdata = task.pointee.privdata else { return nil }
            let reply = Unmanaged<FlatReply>.fromOpaque(privdata).takeUnretainedValue()
            let type = task.pointee.type
            reply.bytes.append(type == REDIS_REPLY_ERROR ? FlatReply.error : type == REDIS_REPLY_STATUS ? FlatReply.status : FlatReply.string)
            reply.appendLength(len)
            if len > 0, let str { reply.bytes.append(contentsOf: UnsafeRawBufferPointer(start: str, count: len)) }
            return privdata
        },
        createArray: { task, elements in
            guard let task, let privdata = task.pointee.privdata else { return nil }
            let reply = Unmanaged<FlatReply>.fromOpaque(privdata).takeUnretainedValue()
            reply.bytes.append(FlatReply.array)
            reply.appendLength(Int(elements))
            return privdata
        },
        createInteger: { task, value in
            guard let task, let privdata = task.pointee.privdata else { return nil }
            let reply = Unmanaged<FlatReply>.fromOpaque(privdata).takeUnretainedValue()
            reply.bytes.append(FlatReply.integer)
            withUnsafeBytes(of: value.littleEndian) { reply.bytes.append(contentsOf: $0) }
            return privdata
        },
        createNil: { task in
            guard let task, let privdata = task.pointee.privdata else { return nil }
            Unmanaged<FlatReply>.fromOpaque(privdata).takeUnretainedValue().bytes.append(FlatReply.null)
            return privdata
        },
        freeObject: { _ in }
    )

    /// A cursor over the buffer.
    struct Cursor {
        let raw: UnsafeRawBufferPointer
        var offset = 0

        mutating func tag() throws(RedisError) -> UInt8 {
            guard offset < raw.count else { throw RedisError(.protocolError, "truncated flat reply") }
            defer { offset += 1 }
            return raw[offset]
        }

        mutating func length() throws(RedisError) -> Int {
            var value = 0, shift = 0
            while true {
                guard offset < raw.count else { throw RedisError(.protocolError, "truncated flat reply") }
                let byte = raw[offset]
                offset += 1
                value |= Int(byte & 0x7F) << shift
                if byte < 0x80 { return value }
                shift += 7
            }
        }

        /// The next element as a string's bytes (after its tag).
        mutating func stringBody() throws(RedisError) -> UnsafeRawBufferPointer {
            let count = try length()
            guard offset + count <= raw.count else { throw RedisError(.protocolError, "truncated flat reply") }
            defer { offset += count }
            return UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + count)])
        }

        /// The next string element (its length prefix and bytes, for copying into a packed entry).
        mutating func packedString() throws(RedisError) -> UnsafeRawBufferPointer {
            guard try tag() == FlatReply.string else { throw RedisError(.unexpectedReply, "stream field is not a string") }
            let start = offset
            _ = try stringBody()
            return UnsafeRawBufferPointer(rebasing: raw[start..<offset])
        }

        mutating func string() throws(RedisError) -> String {
            guard try tag() == FlatReply.string else { throw RedisError(.unexpectedReply, "expected a string") }
            return String(decoding: try stringBody(), as: UTF8.self)
        }
    }

    /// Decodes an XREAD/XREADGROUP reply: `[[key, [[id, [f, v, …]], …]], …]` or nil.
    func streamReads() throws -> [StreamRead] {
        try bytes.withUnsafeBytes { raw throws -> [StreamRead] in
            var cursor = Cursor(raw: raw)
            switch try cursor.tag() {
            case FlatReply.null: return []
            case FlatReply.error: throw RedisError(.server, String(decoding: try cursor.stringBody(), as: UTF8.self))
            case FlatReply.array: break
            default: throw RedisError(.unexpectedReply, "stream read returned no array")
            }
            let streams = try cursor.length()
            var reads: [StreamRead] = []
            reads.reserveCapacity(streams)
            for _ in 0..<streams {
                guard try cursor.tag() == FlatReply.array, try cursor.length() == 2 else {
                    throw RedisError(.unexpectedReply, "stream read item is not [key, entries]")
                }
                let key = try cursor.string()
                guard try cursor.tag() == FlatReply.array else { throw RedisError(.unexpectedReply, "stream entries are not an array") }
                let count = try cursor.length()
                var entries: [StreamEntry] = []
                entries.reserveCapacity(count)
                for _ in 0..<count {
                    guard try cursor.tag() == FlatReply.array, try cursor.length() == 2 else {
                        throw RedisError(.unexpectedReply, "stream entry is not [id, fields]")
                    }
                    guard try cursor.tag() == FlatReply.string else { throw RedisError(.unexpectedReply, "stream id is not a string") }
                    let idBytes = try cursor.stringBody()
                    guard let id = StreamID.parse(idBytes.bindMemory(to: UInt8.self)) else {
                        throw RedisError(.unexpectedReply, "bad stream id \(String(decoding: idBytes, as: UTF8.self))")
                    }
                    // An entry deleted while pending has nil fields: skipped, as before.
                    guard try cursor.tag() == FlatReply.array else { continue }
                    let fields = try cursor.length()
                    guard fields % 2 == 0 else { throw RedisError(.unexpectedReply, "odd number of fields in entry \(id)") }
                    let start = cursor.offset
                    for _ in 0..<fields {
                        guard try cursor.tag() == FlatReply.string else { throw RedisError(.unexpectedReply, "stream field is not a string") }
                        _ = try cursor.stringBody()
                    }
                    // The fields' bytes minus their tags: copy each length-prefixed run.
                    var packed: [UInt8] = []
                    packed.reserveCapacity(cursor.offset - start - fields)
                    var inner = Cursor(raw: raw, offset: start)
                    for _ in 0..<fields {
                        let run = try inner.packedString()
                        packed.append(contentsOf: run)
                    }
                    entries.append(StreamEntry(id: id, packed: packed))
                }
                reads.append(StreamRead(key: key, entries: entries))
            }
            return reads
        }
    }
}
