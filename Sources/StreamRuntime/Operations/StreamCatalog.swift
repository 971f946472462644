public import RedisClient
public import Contract
public import RedisWire

/// Lists the entity streams of a namespace.
public struct StreamCatalog: Sendable {
    /// One entity stream partition.
    public struct Item: Sendable, Equatable {
        public var key: String
        public var entity: Entity
        public var partition: Int
        public var length: Int
        public var firstID: StreamID?
        public var lastID: StreamID?
    }

    public let layout: StreamLayout

    public init(layout: StreamLayout) {
        self.layout = layout
    }

    /// Every stream of the namespace (found with SCAN … TYPE stream), by entity then partition.
    public func items(on redis: RedisConnection) async throws -> [Item] {
        let keys = try await redis.scanKeys(match: layout.streamPattern, type: "stream")
        var items: [Item] = []
        for key in keys {
            guard let (entity, partition) = layout.parse(streamKey: key) else { continue }
            let info = try await redis.xinfoStream(key)
            items.append(Item(key: key, entity: entity, partition: partition, length: info.length,
                              firstID: info.firstEntry?.id, lastID: info.lastEntry?.id))
        }
        return items.sorted { ($0.entity, $0.partition) < ($1.entity, $1.partition) }
    }
}
