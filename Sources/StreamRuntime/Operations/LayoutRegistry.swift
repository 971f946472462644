public import RedisClient
public import Contract
import RedisWire

/// The layout of a namespace is recorded in Redis, not repeated on every command line: the first
/// command that writes or consumes (`replay`, `produce`, `consume`) records the partition count and
/// the key scheme in `sw:layout`; every later command reads it. A command given a `--partitions`
/// that differs refuses, since a mismatch would split one key's events over two partitions
/// silently. Changing it is an explicit operation (`warehouse streams layout --set-partitions N`),
/// allowed only while every stream of the namespace is empty.
public enum LayoutRegistry {
    /// What is recorded.
    public struct Record: Sendable, Equatable {
        public var partitions: Int
        public var keyScheme: Int
        public var createdAt: String?
        public var createdBy: String?
    }

    /// The record of `layout`'s namespace; nil when none was written yet.
    public static func read(_ layout: StreamLayout, on redis: RedisConnection) async throws -> Record? {
        let fields = (try await redis.command("HGETALL", layout.layoutKey).array ?? []).compactMap(\.string)
        guard !fields.isEmpty else { return nil }
        let map = Dictionary(stride(from: 0, to: fields.count - 1, by: 2).map { (fields[$0], fields[$0 + 1]) }) { $1 }
        guard let partitions = map["partitions"].flatMap(Int.init), partitions >= 1 else {
            throw LayoutError(
                cause: "\(layout.layoutKey) holds no valid partition count (\(map))",
                advice: "set it with `warehouse streams layout --set-partitions N` (N as the streams were written), or delete the key if the namespace is empty")
        }
        return Record(partitions: partitions, keyScheme: map["key_scheme"].flatMap(Int.init) ?? 0,
                      createdAt: map["created_at"], createdBy: map["created_by"])
    }

    /// The layout a command runs with: `base` with the recorded partition count. `requested` is
    /// the command's `--partitions` (nil when not given). With `record`, a namespace with no record
    /// gets one (`requested` or 1; of two commands racing, the first write wins and the other
    /// follows it or refuses). Without, nothing is written and an unrecorded namespace uses
    /// `requested` or 1.
    public static func resolve(
        _ base: StreamLayout, requested: Int?, record: Bool, by command: String, on redis: RedisConnection
    ) async throws -> StreamLayout {
        var layout = base
        var recorded = try await read(base, on: redis)
        if recorded == nil {
            guard record else {
                layout.partitions = requested ?? 1
                return layout
            }
            try await refuseLegacyKeys(base, on: redis)
            var batch = RedisCommandBuffer()
            batch.append("HSETNX", base.layoutKey, "partitions", String(requested ?? 1))
            batch.append("HSETNX", base.layoutKey, "key_scheme", String(StreamLayout.keyScheme))
            batch.append("HSETNX", base.layoutKey, "created_at", Timestamp.now.description)
            batch.append("HSETNX", base.layoutKey, "created_by", command)
            for reply in try await redis.send(batch) { _ = try reply.throwingServerError() }
            recorded = try await read(base, on: redis)
        }
        guard let recorded else { throw RedisError(.unexpectedReply, "\(base.layoutKey) vanished right after it was written") }
        guard recorded.keyScheme == StreamLayout.keyScheme else {
            throw LayoutError(
                cause: "namespace \(base.namespace) was written with key scheme \(recorded.keyScheme); this version uses \(StreamLayout.keyScheme)",
                advice: "replay the history into a new namespace (--namespace), or run the version that wrote it")
        }
        if let requested, requested != recorded.partitions {
            throw LayoutError(
                cause: "namespace \(base.namespace) is laid out in \(recorded.partitions) partition(s) (recorded in \(base.layoutKey)"
                    + (recorded.createdAt.map { " on \($0)" } ?? "") + (recorded.createdBy.map { " by \($0)" } ?? "")
                    + "), not the \(requested) given by --partitions; running would split the events of one key over two partitions",
                advice: "leave out --partitions (every command reads the recorded layout), or change it while the streams are empty "
                    + "with `warehouse streams layout --set-partitions \(requested)` (see the README, Changing the partition count)")
        }
        layout.partitions = recorded.partitions
        return layout
    }

    /// Changes the recorded partition count; refuses while any stream of the namespace holds an
    /// entry (events already written sit in the partition their key hashed to under the old count).
    public static func setPartitions(_ partitions: Int, _ base: StreamLayout, on redis: RedisConnection) async throws {
        precondition(partitions >= 1)
        let nonEmpty = try await StreamCatalog(layout: base).items(on: redis).filter { $0.length > 0 }
        guard nonEmpty.isEmpty else {
            throw LayoutError(
                cause: "\(nonEmpty.count) stream(s) of namespace \(base.namespace) still hold entries (\(nonEmpty.prefix(3).map(\.key).joined(separator: ", "))…)",
                advice: "drain the consumers (`consume --until-drained`), delete the streams (`warehouse streams delete`), then set the partition count and replay")
        }
        var batch = RedisCommandBuffer()
        batch.append("HSET", base.layoutKey, "partitions", String(partitions), "key_scheme", String(StreamLayout.keyScheme),
                     "changed_at", Timestamp.now.description)
        for reply in try await redis.send(batch) { _ = try reply.throwingServerError() }
    }

    /// A namespace holding streams of the key scheme before this one (`sw:{orders:0}`) is refused
    /// rather than silently left behind.
    static func refuseLegacyKeys(_ layout: StreamLayout, on redis: RedisConnection) async throws {
        var batch = RedisCommandBuffer()
        for entity in Entity.allCases { batch.append("EXISTS", layout.legacyStreamKey(entity)) }
        let found = zip(Entity.allCases, try await redis.send(batch)).filter { $0.1.int == 1 }.map { layout.legacyStreamKey($0.0) }
        guard found.isEmpty else {
            throw LayoutError(
                cause: "namespace \(layout.namespace) holds streams of the previous key scheme (\(found.joined(separator: ", "))), "
                    + "which this version does not read (one hash tag per partition now: \(layout.streamKey(.orders, partition: 0)))",
                advice: "replay the history into a new namespace (--namespace) or after deleting the old streams; see the README, Upgrading")
        }
    }
}

/// A layout the command refuses to run with; `advice` says what to do.
public struct LayoutError: Error, CustomStringConvertible, Sendable {
    public var cause: String
    public var advice: String
    public var description: String { "\(cause). What to do: \(advice)." }
}
