public import RedisWire
#if canImport(Glibc)
import Glibc
#endif

/// The one reader of stream entries, for every consumer (the loader and the KPI aggregator).
///
/// One pass over an entry's packed fields finds each column of the entity's contract and the event
/// id; each value is then checked by the contract's own rule for its column (`RowValidator.pack`:
/// required, type, bounds, allowed values, text that is UTF-8 without NUL), plus one rule of the
/// warehouse's: integers fit PostgreSQL's `integer`. An entry that fails is unreadable, whoever
/// reads it, with the column and the reason. Fields the contract does not name are ignored.
public enum EventDecoder {
    /// Why an entry cannot be read as an event: `column: reason`.
    public struct Unreadable: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// What reading one entity's entries needs, built once: the names to look for (the contract's
    /// columns in order, then `event_id`), their specs and the allowed values of `oneOf` columns.
    struct Plan: Sendable {
        let names: [[UInt8]]
        let columns: [ColumnSpec]
        let allowed: [[[UInt8]]]

        init(_ schema: EntitySchema) {
            columns = schema.columns
            names = schema.columns.map { Array($0.name.utf8) } + [Array(EventEnvelope.eventID.utf8)]
            allowed = schema.columns.map { column in
                if case .oneOf(let values) = column.kind { return values.map { Array($0.lowercased().utf8) } }
                return []
            }
        }
    }

    static let plans: [Plan] = Entity.allCases.map { Plan($0.schema) }

    /// Reads `entry` as an event of `entity` and hands its checked fields to `body` (valid only
    /// inside it).
    public static func withFields<R>(
        _ entry: StreamEntry, entity: Entity, _ body: (EventFields) throws(Unreadable) -> R
    ) throws(Unreadable) -> R {
        let plan = plans[entity.index]
        let result: Result<R, Unreadable> = entry.packed.withUnsafeBytes { raw in
            withUnsafeTemporaryAllocation(of: (offset: Int, count: Int, time: Int64).self, capacity: plan.names.count) { found in
                found.initialize(repeating: (-1, 0, 0))
                var slot = -1
                StreamEntry.forEachPacked(raw) { index, bytes in
                    if index % 2 == 0 {
                        slot = -1
                        for (candidate, name) in plan.names.enumerated() where name.count == bytes.count && found[candidate].offset < 0 {
                            if bytes.count == 0 || name.withUnsafeBytes({ memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0 }) {
                                slot = candidate
                                break
                            }
                        }
                    } else if slot >= 0 {
                        found[slot] = (bytes.baseAddress.map { $0 - raw.baseAddress! } ?? 0, bytes.count, 0)
                    }
                    return true
                }
                let fields = EventFields(raw: raw, plan: plan, found: found)
                do throws(Unreadable) {
                    try fields.check()
                    return .success(try body(fields))
                } catch {
                    return .failure(error)
                }
            }
        }
        return try result.get()
    }
}

/// The checked fields of one entry, by the contract's column order (`EventColumn`); valid only
/// inside `EventDecoder.withFields`. Values come back as the producer wrote them (its canonical
/// text) or typed.
public struct EventFields {
    let raw: UnsafeRawBufferPointer
    let plan: EventDecoder.Plan
    /// Where each name's value is in `raw`; for a timestamp column, its instant once checked.
    let found: UnsafeMutableBufferPointer<(offset: Int, count: Int, time: Int64)>

    typealias Unreadable = EventDecoder.Unreadable

    /// Checks every column by the contract's rule, and the event id.
    func check() throws(Unreadable) {
        var scratch: [UInt8] = []
        scratch.reserveCapacity(64)
        let empty: [UInt8] = []
        for (index, column) in plan.columns.enumerated() {
            scratch.removeAll(keepingCapacity: true)
            let outcome: Result<Timestamp?, RowValidator.Reason> = if let value = bytes(index) {
                RowValidator.pack(value, column, allowed: plan.allowed[index], into: &scratch)
            } else {
                empty.withUnsafeBufferPointer { RowValidator.pack($0, column, allowed: plan.allowed[index], into: &scratch) }
            }
            switch outcome {
            case .failure(let reason):
                throw Unreadable(description: "\(column.name): \(bytes(index) == nil ? "missing from the event" : reason.message)")
            case .success(let time?):
                found[index].time = time.microseconds   // parsed once: `time(_:)` reads it
            case .success(nil):
                break
            }
            if case .integer = column.kind, let value = bytes(index), let number = RowValidator.parseInteger(trimmed(value)),
               Int32(exactly: number) == nil {
                throw Unreadable(description: "\(column.name): \(number) does not fit a PostgreSQL integer")
            }
        }
        guard bytes(plan.columns.count) != nil else { throw Unreadable(description: "\(EventEnvelope.eventID): missing from the event") }
    }

    func bytes(_ index: Int) -> UnsafeBufferPointer<UInt8>? {
        let (offset, count, _) = found[index]
        guard offset >= 0, count > 0 else { return nil }
        return UnsafeBufferPointer(rebasing: raw.bindMemory(to: UInt8.self)[offset..<(offset + count)])
    }

    private func trimmed(_ value: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        var lower = 0, upper = value.count
        while lower < upper, value[lower] == 32 || value[lower] == 9 { lower += 1 }
        while upper > lower, value[upper - 1] == 32 || value[upper - 1] == 9 { upper -= 1 }
        return UnsafeBufferPointer(rebasing: value[lower..<upper])
    }

    /// The column's value as text, in the contract's canonical form (what replay and produce
    /// write: an allowed value in lower case, a currency in upper case, numbers and times as the
    /// contract prints them); nil when the entry has none (empty or absent).
    public func text<Column: EventColumn>(_ column: Column) -> String? {
        let index = column.rawValue
        guard let value = bytes(index) else { return nil }
        if isCanonical(value, plan.columns[index].kind) { return String(decoding: value, as: UTF8.self) }
        var packed: [UInt8] = []
        guard case .success = RowValidator.pack(value, plan.columns[index], allowed: plan.allowed[index], into: &packed) else {
            return String(decoding: value, as: UTF8.self)   // not reached: check() refused such entries
        }
        // Skip the LEB128 length `pack` writes first.
        var start = 0
        while start < packed.count, packed[start] & 0x80 != 0 { start += 1 }
        return String(decoding: packed[(start + 1)...], as: UTF8.self)
    }

    /// True when `value` is already what `RowValidator.pack` would write for its kind (what
    /// replay and produce always write), so it needs no second pass.
    private func isCanonical(_ value: UnsafeBufferPointer<UInt8>, _ kind: ColumnKind) -> Bool {
        switch kind {
        case .text: !value.allSatisfy { $0 == 32 || $0 == 9 }
        case .date: value.count == 10
        case .integer: RowValidator.isCanonicalInteger(value)
        case .decimal: RowValidator.isCanonicalDecimal(value)
        case .timestamp: Timestamp.isCanonicalShape(value)
        case .oneOf: !value.contains { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") || $0 == 32 || $0 == 9 }
        case .currency: value.count == 3 && value.allSatisfy { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }
        }
    }

    /// The value of a column the contract requires (present once checked).
    public func string<Column: EventColumn>(_ column: Column) -> String {
        text(column) ?? ""
    }

    /// An order line's status.
    public var status: OrderStatus { OrderStatus(rawValue: string(Columns.OrderLine.status)) ?? .placed }

    /// An integer column's value (checked: it fits Int32); `fallback` when the entry has none.
    public func int<Column: EventColumn>(_ column: Column, fallback: Int64 = 0) -> Int64 {
        bytes(column.rawValue).flatMap { RowValidator.parseInteger(trimmed($0)) } ?? fallback
    }

    /// A decimal column's value; its default (or zero) when the entry has none.
    public func decimal<Column: EventColumn>(_ column: Column) -> DecimalValue {
        bytes(column.rawValue).flatMap { DecimalValue.parse(trimmed($0)) }
            ?? DecimalValue(plan.columns[column.rawValue].defaultValue) ?? .zero
    }

    /// A timestamp column's value (the epoch when the entry has none: only optional columns).
    public func time<Column: EventColumn>(_ column: Column) -> Timestamp {
        Timestamp(microseconds: bytes(column.rawValue) == nil ? 0 : found[column.rawValue].time)
    }

    /// The event id.
    public var eventID: String { bytes(plan.columns.count).map { String(decoding: $0, as: UTF8.self) } ?? "" }

    /// The row's version: its version column, then its event id.
    public func version<Column: EventColumn>(_ column: Column) -> Version {
        guard let id = bytes(plan.columns.count) else { return Version(time: time(column), eventID: "") }
        return Version(time: time(column), eventIDBytes: id)
    }
}

/// A column of an entity's contract, by its position in `EntitySchema.columns` (a unit test
/// checks each enum against the schema's names).
public protocol EventColumn: RawRepresentable where RawValue == Int {}

/// The contract's columns, entity by entity, in schema order.
public enum Columns {
    public enum Customer: Int, EventColumn, CaseIterable {
        case customerID, firstName, lastName, email, city, state, country, segment, signupDate, updatedAt
    }
    public enum Supplier: Int, EventColumn, CaseIterable {
        case supplierID, name, country, contactEmail, contractStart, contractEnd, leadTimeDays, rating, updatedAt
    }
    public enum Product: Int, EventColumn, CaseIterable {
        case productID, name, category, supplierID, unitPrice, unitCost, updatedAt
    }
    public enum OrderLine: Int, EventColumn, CaseIterable {
        case orderID, lineNumber, customerID, productID, quantity, unitPrice, discount, status, orderTS, updatedAt
    }
    public enum Payment: Int, EventColumn, CaseIterable {
        case paymentID, orderID, method, processor, amount, currency, status, paidAt
    }
    public enum Movement: Int, EventColumn, CaseIterable {
        case movementID, productID, movementType, quantity, unitCost, movedAt, reference
    }
}
