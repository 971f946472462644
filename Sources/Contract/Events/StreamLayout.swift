/// Where events live in Redis: one stream per entity and partition, named with one Redis Cluster
/// hash tag per partition shared by every entity (`sw:{p0}:orders`, `sw:{p0}:customers`), so a
/// partition's streams, and any state kept for them (`sw:{p0}:orders:kpi`, the replay checkpoint
/// `sw:{p0}:replay:checkpoint`), share one hash slot: one blocking XREADGROUP reads a whole
/// partition, and one script commits a partition's effects with their acknowledgements, on a
/// Redis Cluster too.
///
/// The partition count is recorded in Redis (`sw:layout`, `LayoutRegistry`) by the first command
/// that writes or consumes, and read by every later one.
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

    /// The version of the key scheme (recorded with the layout): 2 is one hash tag per partition
    /// (`sw:{p0}:orders`); 1 was one per entity and partition (`sw:{orders:0}`).
    public static let keyScheme = 2

    /// The stream of `entity`'s partition `partition`.
    public func streamKey(_ entity: Entity, partition: Int) -> String {
        "\(partitionPrefix(partition)):\(entity.rawValue)"
    }

    /// `sw:{p3}`: the start of every key of partition 3 (its hash tag).
    public func partitionPrefix(_ partition: Int) -> String {
        "\(namespace):{p\(partition)}"
    }

    /// Every entity's stream of one partition (one hash slot), in entity order.
    public func partitionStreams(_ partition: Int) -> [String] {
        Entity.allCases.map { streamKey($0, partition: partition) }
    }

    /// Every stream, partition by partition.
    public var allStreams: [String] {
        (0..<partitions).flatMap { partitionStreams($0) }
    }

    /// The stream of `entity`'s partition 0 in the key scheme before this one (`sw:{orders:0}`), to
    /// notice a namespace written by an older version.
    public func legacyStreamKey(_ entity: Entity) -> String {
        "\(namespace):{\(entity.rawValue):0}"
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

    /// Where `replay --resume` keeps partition `partition`'s checkpoint: in the partition's slot,
    /// written after its entries, so a failover that loses entries loses the checkpoint past them.
    public func replayCheckpointKey(partition: Int) -> String { "\(partitionPrefix(partition)):replay:checkpoint" }

    /// Where the layout is recorded (`LayoutRegistry`).
    public var layoutKey: String { "\(namespace):layout" }

    /// The SCAN pattern matching every stream of this namespace (with `TYPE stream`).
    public var streamPattern: String { "\(namespace):{p*}:*" }

    /// Reads `sw:{p3}:orders` back as (orders, 3); nil for other keys.
    public func parse(streamKey key: String) -> (entity: Entity, partition: Int)? {
        let prefix = "\(namespace):{p"
        guard key.hasPrefix(prefix) else { return nil }
        let rest = key.dropFirst(prefix.count)
        guard let close = rest.firstIndex(of: "}"), let partition = Int(rest[..<close]), partition >= 0,
              rest[close...].hasPrefix("}:"), let entity = Entity(rawValue: String(rest[rest.index(close, offsetBy: 2)...]))
        else { return nil }
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
