/// Where events live in Redis: one stream per entity and partition, named with a Redis Cluster
/// hash tag per partition (`sw:{orders:0}`), so that a partition's stream and any state kept for it
/// (`sw:{orders:0}:…`) share one hash slot.
public struct StreamLayout: Sendable, Equatable {
    /// The key prefix (`sw` by default).
    public var namespace: String
    /// Partitions per entity (1 by default).
    public var partitions: Int
    /// How the dead-letter stream is bounded and what it must not hold.
    public var deadLetters = DeadLetterPolicy()

    public static let defaultNamespace = "sw"

    public init(namespace: String = defaultNamespace, partitions: Int = 1) {
        precondition(partitions >= 1, "at least one partition")
        self.namespace = namespace
        self.partitions = partitions
    }

    /// The stream of `entity`'s partition `partition`.
    public func streamKey(_ entity: Entity, partition: Int) -> String {
        "\(namespace):{\(entity.rawValue):\(partition)}"
    }

    /// Every stream of `entity`.
    public func streamKeys(_ entity: Entity) -> [String] {
        (0..<partitions).map { streamKey(entity, partition: $0) }
    }

    /// The partition of a partition key (xxHash64, so every process agrees).
    public func partition(for key: String) -> Int {
        partitions == 1 ? 0 : Int(XXHash64.hash(key) % UInt64(partitions))
    }

    /// The partition of a key whose xxHash64 is `hash`.
    public func partition(forHash hash: UInt64) -> Int {
        partitions == 1 ? 0 : Int(hash % UInt64(partitions))
    }

    /// The dead-letter stream, and the set that makes dead-lettering the same reject twice a no-op.
    public var deadLetterKey: String { "\(namespace):{dlq}" }
    public var deadLetterSeenKey: String { "\(namespace):{dlq}:seen" }

    /// Where `replay --resume` keeps its checkpoint.
    public var replayCheckpointKey: String { "\(namespace):replay:checkpoint" }

    /// The SCAN pattern matching every stream of this namespace.
    public var streamPattern: String { "\(namespace):{*}" }

    /// Reads `sw:{orders:3}` back as (orders, 3); nil for other keys.
    public func parse(streamKey key: String) -> (entity: Entity, partition: Int)? {
        let prefix = "\(namespace):{"
        guard key.hasPrefix(prefix), key.hasSuffix("}") else { return nil }
        let inner = key.dropFirst(prefix.count).dropLast()
        let parts = inner.split(separator: ":")
        guard parts.count == 2, let entity = Entity(rawValue: String(parts[0])), let partition = Int(parts[1]) else { return nil }
        return (entity, partition)
    }
}

/// The envelope fields every event carries besides the contract's columns.
public enum EventEnvelope {
    public static let type = "type"
    public static let schemaVersion = "schema_version"
    public static let eventTime = "event_time"
    public static let eventID = "event_id"
    public static let source = "source"
    /// The version of the event format written today.
    public static let currentSchemaVersion = "1"
}
