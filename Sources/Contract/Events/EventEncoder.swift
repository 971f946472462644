public import RedisWire

/// Writes validated rows as stream entries: the contract's columns in schema order, flat, then the
/// envelope (type, schema version, event time, event id, source). No JSON anywhere on the hot path.
///
/// Two forms: `appendXADD(_:source:to:)` from a `ValidatedRow`, and the replay form, where a row's
/// canonical values are packed once (`pack`) and each XADD is assembled from pre-encoded RESP
/// fragments (`appendPackedXADD`): no string is created per field when publishing.
public struct EventEncoder: Sendable {
    public let layout: StreamLayout
    private let templates: [Template]

    /// Pre-encoded RESP fragments of one entity's XADD.
    struct Template: Sendable {
        /// `*N\r\n$4\r\nXADD\r\n<key>$1\r\n*\r\n`, per partition.
        var heads: [[UInt8]]
        /// `$len\r\nname\r\n` per column.
        var names: [[UInt8]]
        /// The `type` and `schema_version` pairs and the `event_time` name.
        var typeAndVersion: [UInt8]
        var eventTimeName: [UInt8]
        /// `$8\r\nevent_id\r\n$32\r\n`
        var eventIDPrefix: [UInt8]
        /// `$6\r\nsource\r\n`, then `file:` for the value.
        var sourceName: [UInt8]
        var sourcePrefix: [UInt8]
        var versionIndex: Int
    }

    public init(layout: StreamLayout) {
        self.layout = layout
        templates = Entity.allCases.map { entity in
            let schema = entity.schema
            let arguments = 3 + (schema.columns.count + 5) * 2
            let heads = (0..<layout.partitions).map { partition in
                Array("*\(arguments)\r\n".utf8) + RedisCommandBuffer.encodedArgument("XADD")
                    + RedisCommandBuffer.encodedArgument(layout.streamKey(entity, partition: partition))
                    + RedisCommandBuffer.encodedArgument("*")
            }
            return Template(
                heads: heads,
                names: schema.columns.map { RedisCommandBuffer.encodedArgument($0.name) },
                typeAndVersion: RedisCommandBuffer.encodedArgument(EventEnvelope.type) + RedisCommandBuffer.encodedArgument(entity.eventType)
                    + RedisCommandBuffer.encodedArgument(EventEnvelope.schemaVersion)
                    + RedisCommandBuffer.encodedArgument(EventEnvelope.currentSchemaVersion),
                eventTimeName: RedisCommandBuffer.encodedArgument(EventEnvelope.eventTime),
                eventIDPrefix: RedisCommandBuffer.encodedArgument(EventEnvelope.eventID) + Array("$32\r\n".utf8),
                sourceName: RedisCommandBuffer.encodedArgument(EventEnvelope.source),
                sourcePrefix: Array("\(entity.fileName):".utf8),
                versionIndex: schema.position(of: schema.versionColumn)!)
        }
    }

    /// The partition of a row.
    public func partition(for row: ValidatedRow) -> Int {
        layout.partition(for: row.partitionKey)
    }

    /// Packs a row's canonical values: per value a LEB128 length and its bytes.
    public static func pack(_ values: [String], into out: inout [UInt8]) {
        for value in values {
            var value = value
            value.withUTF8 { StreamEntry.append(UnsafeRawBufferPointer($0), to: &out) }
        }
    }

    /// Calls `body` with each value of a packed row, in column order.
    @inline(__always)
    static func forEachPacked(_ packed: UnsafeRawBufferPointer, _ body: (_ column: Int, UnsafeRawBufferPointer) -> Void) {
        StreamEntry.forEachPacked(packed) { column, value in
            body(column, value)
            return true
        }
    }

    /// The values of a packed row.
    public static func unpack(_ packed: UnsafeRawBufferPointer) -> [String] {
        var values: [String] = []
        forEachPacked(packed) { _, value in values.append(String(decoding: value, as: UTF8.self)) }
        return values
    }

    /// Appends the XADD of a packed row (see `pack`) to `buffer`.
    public func appendPackedXADD(
        entity: Entity, partition: Int, line: Int, id: EventID, packed: UnsafeRawBufferPointer,
        to buffer: inout RedisCommandBuffer
    ) {
        let template = templates[entity.index]
        buffer.appendEncodedCommand { out in
            out.append(contentsOf: template.heads[partition])
            var eventTime = UnsafeRawBufferPointer(start: nil, count: 0)
            Self.forEachPacked(packed) { column, value in
                out.append(contentsOf: template.names[column])
                RedisCommandBuffer.appendArgument(value, to: &out)
                if column == template.versionIndex { eventTime = value }
            }
            out.append(contentsOf: template.typeAndVersion)
            out.append(contentsOf: template.eventTimeName)
            RedisCommandBuffer.appendArgument(eventTime, to: &out)
            out.append(contentsOf: template.eventIDPrefix)
            Self.appendHex(id.high, to: &out)
            Self.appendHex(id.low, to: &out)
            out.append(13); out.append(10)
            out.append(contentsOf: template.sourceName)
            var digits: (UInt64, UInt64) = (0, 0)
            let lineLength = withUnsafeMutableBytes(of: &digits) { raw -> Int in
                var value = line
                var count = 0
                repeat { raw[15 - count] = UInt8(ascii: "0") &+ UInt8(value % 10); value /= 10; count += 1 } while value > 0
                return count
            }
            out.append(UInt8(ascii: "$"))
            out.append(contentsOf: String(template.sourcePrefix.count + lineLength).utf8)
            out.append(13); out.append(10)
            out.append(contentsOf: template.sourcePrefix)
            withUnsafeBytes(of: &digits) { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[(16 - lineLength)..<16])) }
            out.append(13); out.append(10)
        }
    }

    @inline(__always)
    static func appendHex(_ value: UInt64, to out: inout [UInt8]) {
        for shift in stride(from: 60, through: 0, by: -4) {
            let nibble = UInt8((value >> UInt64(shift)) & 0xF)
            out.append(nibble < 10 ? UInt8(ascii: "0") &+ nibble : UInt8(ascii: "a") &+ nibble &- 10)
        }
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
