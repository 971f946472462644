import Contract
import KPIModel
import RedisWire
import StreamRuntime
import WarehouseSink

/// What each fuzz target does with one input: parse it the way the product does, and check the
/// properties that must hold for any input (no crash, no hang, round trips, and a row the contract
/// accepts is an event both consumer groups can read). A violated property traps, which the fuzzer
/// reports as a crash; the unit tests run the seed corpus and every past crash through the same
/// functions (`Fuzz/corpus`, `Fuzz/regressions`).
public enum FuzzChecks {
    public static let targets: [String: @Sendable ([UInt8]) -> Void] = [
        "csv": csv,
        "entry": entry,
        "timestamp": timestamp,
        "decimal": decimal,
        "streamid": streamID,
        "jsonl": jsonLines,
        "query": query,
        "kpirecord": kpiRecord,
    ]

    static let layout = StreamLayout(namespace: "fuzz")

    /// A contract file: read with a small record limit, every row validated under the first
    /// entity whose header it is; an accepted row is encoded as its event and decoded by the
    /// loader and by the KPI aggregator, which must both accept it.
    public static func csv(_ input: [UInt8]) {
        var reader = CSVReader(bytes: input, file: "fuzz.csv", maxRecordBytes: 4096)
        var header: [String]?
        while header == nil {
            do {
                guard let record = try reader.next() else { return }
                header = record.fields
            } catch {
                continue
            }
        }
        guard let header, let validator = Entity.allCases.lazy.compactMap({ try? RowValidator(entity: $0, header: header) }).first else { return }
        let encoder = EventEncoder(layout: layout)
        var fields: [String] = []
        var rows = 0
        var entries: [(StreamEntry, Entity, String)] = []
        while rows < 200 {
            let line: Int?
            do {
                line = try reader.next(into: &fields)
            } catch {
                continue
            }
            guard let line else { break }
            rows += 1
            guard case .success(let row) = validator.validate(fields, line: line) else { continue }
            let entry = StreamEntry(id: StreamID(milliseconds: 1, sequence: UInt64(rows)), fields: encoder.fields(row, source: "fuzz.csv:\(line)"))
            entries.append((entry, row.entity, encoder.streamKey(for: row)))
            do {
                _ = try KPIRecord.event(entry, entity: row.entity)
            } catch {
                preconditionFailure("the KPI aggregator refused an event the contract accepted: \(error)")
            }
        }
        guard let first = entries.first else { return }
        let batch = LoaderBatch([StreamRead(key: first.2, entries: entries.map(\.0))], layout: layout)
        precondition(batch.rejects.isEmpty, "the loader refused an event the contract accepted: \(batch.rejects.map(\.reason))")
    }

    /// A stream entry written by someone else: fields split at NUL bytes, the first byte choosing
    /// the stream's entity; both decoders must answer (accept or refuse), never crash.
    public static func entry(_ input: [UInt8]) {
        guard let first = input.first else { return }
        let entity = Entity.allCases[Int(first) % Entity.allCases.count]
        var parts = input.dropFirst().split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if parts.count % 2 == 1 { parts.append("") }
        let entry = StreamEntry(id: StreamID(milliseconds: 1), fields: parts)
        _ = LoaderBatch([StreamRead(key: layout.streamKey(entity, partition: 0), entries: [entry])], layout: layout)
        _ = try? KPIRecord.event(entry, entity: entity)
    }

    /// A timestamp that parses prints as one that parses to the same instant.
    public static func timestamp(_ input: [UInt8]) {
        guard let text = String(validating: input, as: UTF8.self), let parsed = Timestamp(iso8601: text) else { return }
        precondition(Timestamp(iso8601: parsed.description) == parsed, "\(text) → \(parsed.description) does not round-trip")
    }

    /// A decimal that parses prints as one that parses to the same value.
    public static func decimal(_ input: [UInt8]) {
        guard let text = String(validating: input, as: UTF8.self), let parsed = DecimalValue(text) else { return }
        precondition(DecimalValue(parsed.description) == parsed, "\(text) → \(parsed.description) does not round-trip")
    }

    /// A stream id that parses prints as itself (canonically) and parses back.
    public static func streamID(_ input: [UInt8]) {
        guard let text = String(validating: input, as: UTF8.self), let parsed = StreamID(text) else { return }
        precondition(StreamID(parsed.description) == parsed, "\(text) → \(parsed.description) does not round-trip")
    }

    /// `produce --stdin --format jsonl`: bounded lines, each a JSON object or refused, objects
    /// validated as order lines.
    public static func jsonLines(_ input: [UInt8]) {
        var reader = LineReader(bytes: input, maxLineBytes: 4096)
        let columns = Entity.orders.schema.columns.map(\.name)
        guard let validator = try? RowValidator(entity: .orders, header: columns) else { return }
        var count = 0
        while count < 1000, let line = try? reader.next() {
            count += 1
            guard case .text(let number, let text) = line, let object = Producer.object(jsonLine: text) else { continue }
            _ = validator.validate(columns.map { object[$0] ?? "" }, line: number)
        }
    }

    /// The dashboard's query options.
    public static func query(_ input: [UInt8]) {
        let text = String(decoding: input, as: UTF8.self)
        _ = QueryString.parameters(text)
        if case .success(let top) = QueryString.int(text, "top", default: 10, range: 1...1000) {
            precondition((1...1000).contains(top))
        }
    }

    /// A persisted KPI record (the aggregator reads them back from Redis after a restart): split at
    /// the first NUL into field and value.
    public static func kpiRecord(_ input: [UInt8]) {
        let split = input.firstIndex(of: 0) ?? input.endIndex
        let field = Array(input[..<split]), value = Array(input[min(split + 1, input.endIndex)...])
        _ = KPIRecord.decode(field: field, value: value)
        // The archive's formats, read back from Redis on a revival: never a trap, and what
        // decodes encodes back to the same bytes.
        if let lines = KPIRecord.decodeArchivedOrder(orderID: "O", value: value) {
            let again = KPIRecord.decodeArchivedOrder(orderID: "O", value: KPIRecord.archivedOrder(lines))
            precondition(again?.map(\.line) == lines.map(\.line) && again?.map(\.attribution) == lines.map(\.attribution),
                         "an archived order does not round-trip")
        }
        _ = KPIRecord.indexedOrders(value, from: field.count.isMultiple(of: 2) ? .min : Int64(field.count))
    }
}
