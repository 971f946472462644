/// A Lua script, named by its SHA-1 so it can be run with `EVALSHA`.
public struct RedisScript: Sendable, Hashable {
    public let source: String
    /// The lowercase hex SHA-1 of `source`, as Redis computes it.
    public let sha1: String

    public init(_ source: String) {
        self.source = source
        self.sha1 = SHA1.hexDigest(Array(source.utf8))
    }
}
