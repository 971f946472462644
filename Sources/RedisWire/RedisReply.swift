/// A reply from Redis (RESP2), converted to Swift values.
///
/// Bulk strings are bytes (binary safe); `string` decodes them as UTF-8. An error reply inside a
/// pipeline is an ordinary value (`.error`); single-command calls turn it into a thrown `RedisError`.
public enum RedisReply: Sendable, Equatable {
    case status(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    case null
    case array([RedisReply])

    /// A bulk or status reply as text.
    public var string: String? {
        switch self {
        case .bulk(let bytes): String(decoding: bytes, as: UTF8.self)
        case .status(let text): text
        default: nil
        }
    }

    /// An integer reply, or a bulk string that holds a decimal integer.
    public var int: Int? {
        switch self {
        case .integer(let value): Int(value)
        case .bulk: string.flatMap { Int($0) }
        default: nil
        }
    }

    /// The elements of an array reply.
    public var array: [RedisReply]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// The bytes of a bulk reply.
    public var bytes: [UInt8]? {
        if case .bulk(let bytes) = self { return bytes }
        return nil
    }

    public var isNull: Bool { self == .null }

    /// Throws the error reply as a `RedisError` with code `.server`; returns `self` otherwise.
    public func throwingServerError(file: String = #fileID, line: Int = #line) throws(RedisError) -> RedisReply {
        if case .error(let message) = self { throw RedisError(.server, message, file: file, line: line) }
        return self
    }
}
