public import RedisClient

/// Writes validated rows as stream entries: the contract's columns in schema order, flat, then the
/// envelope (type, schema version, event time, event id, source). No JSON anywhere on the hot path.
public struct EventEncoder: Sendable {
    public var layout: StreamLayout

    public init(layout: StreamLayout) {
        self.layout = layout
    }

    /// The stream a row goes to.
    public func streamKey(for row: ValidatedRow) -> String {
        layout.streamKey(row.entity, partition: layout.partition(for: row.partitionKey))
    }

    /// Appends `XADD stream * column value … type … event_id … source …` to `buffer`.
    public func appendXADD(_ row: ValidatedRow, source: String, to buffer: inout RedisCommandBuffer, trim: StreamTrim? = nil) {
        let schema = row.entity.schema
        buffer.beginXADD(streamKey(for: row), trim: trim, fieldPairs: schema.columns.count + 5)
        for (column, value) in zip(schema.columns, row.values) {
            buffer.add(column.name)
            buffer.add(value)
        }
        buffer.add(EventEnvelope.type); buffer.add(row.entity.eventType)
        buffer.add(EventEnvelope.schemaVersion); buffer.add(EventEnvelope.currentSchemaVersion)
        buffer.add(EventEnvelope.eventTime); buffer.add(row.eventTime.description)
        buffer.add(EventEnvelope.eventID); buffer.add(row.eventID.description)
        buffer.add(EventEnvelope.source); buffer.add(source)
    }

    /// The fields of an event, as `appendXADD` writes them (for tests and one-off publishing).
    public func fields(_ row: ValidatedRow, source: String) -> [String] {
        var fields: [String] = []
        for (column, value) in zip(row.entity.schema.columns, row.values) {
            fields.append(column.name)
            fields.append(value)
        }
        fields += [
            EventEnvelope.type, row.entity.eventType, EventEnvelope.schemaVersion, EventEnvelope.currentSchemaVersion,
            EventEnvelope.eventTime, row.eventTime.description, EventEnvelope.eventID, row.eventID.description,
            EventEnvelope.source, source,
        ]
        return fields
    }
}
