/// A row that passed the contract: canonical values in the schema's column order.
public struct ValidatedRow: Sendable, Equatable {
    public var entity: Entity
    /// Where the record starts in its file.
    public var line: Int
    /// Canonical text of every schema column (the default, often "", for an empty optional one).
    public var values: [String]
    /// The version (event) time.
    public var eventTime: Timestamp
    /// A deterministic id: a hash of the entity and the canonical values.
    public var eventID: EventID

    public func value(_ column: String) -> String? {
        entity.schema.position(of: column).map { values[$0] }
    }

    /// The natural key (key columns joined with `|`).
    public var key: String {
        entity.schema.keyColumns.map { value($0) ?? "" }.joined(separator: "|")
    }

    /// The value that decides the stream partition.
    public var partitionKey: String { value(entity.schema.partitionColumn) ?? "" }
}

/// A row that broke the contract, with where and why.
public struct Rejection: Sendable, Equatable, Error, CustomStringConvertible {
    public var file: String
    public var line: Int
    /// The column at fault; nil for whole-record problems (wrong number of fields).
    public var column: String?
    public var reason: String
    /// A short, stable name of the rule that was broken (`not_integer`, `required`, …), for grouping.
    public var code: String
    /// The record as CSV text.
    public var raw: String

    public var description: String {
        "\(file):\(line)" + (column.map { " [\($0)]" } ?? "") + ": \(reason)"
    }
}

/// Input that cannot be used at all (missing file, no header, a required column absent from the header).
public struct ContractError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Maps a file's header onto an entity's schema and validates each record against it.
public struct RowValidator: Sendable {
    public let schema: EntitySchema
    public let file: String
    /// For each schema column, its position in the CSV record (nil: not in the file).
    public let positions: [Int?]
    /// Header columns that are not in the contract (ignored).
    public let unknownColumns: [String]
    private let headerCount: Int
    private let versionPosition: Int

    /// Matches columns by name, in any order (case-insensitive, surrounding spaces ignored).
    public init(entity: Entity, header: [String], file: String? = nil) throws {
        let schema = entity.schema
        let fileName = file ?? entity.fileName
        self.schema = schema
        self.file = fileName
        let normalized = header.map { $0.trimmingSpaces().lowercased() }
        var positions: [Int?] = []
        for column in schema.columns {
            let found = normalized.firstIndex(of: column.name)
            if found == nil, column.required {
                throw ContractError("\(fileName): the header has no \(column.name) column (required); columns found: \(header.joined(separator: ", "))")
            }
            positions.append(found)
        }
        let duplicates = Dictionary(grouping: normalized, by: { $0 }).filter { $0.value.count > 1 && !$0.key.isEmpty }.keys
        if let duplicate = duplicates.sorted().first(where: { schema.columnNames.contains($0) }) {
            throw ContractError("\(fileName): the header names \(duplicate) twice")
        }
        self.positions = positions
        unknownColumns = header.enumerated().filter { !schema.columnNames.contains(normalized[$0.offset]) }.map(\.element)
        headerCount = header.count
        versionPosition = schema.position(of: schema.versionColumn)!
    }

    /// Validates one record; `fields` as the reader returned them.
    public func validate(_ fields: [String], line: Int) -> Result<ValidatedRow, Rejection> {
        var scratch: [UInt8] = []
        return validate(fields, line: line, scratch: &scratch)
    }

    /// Validates one record, hashing its event id in `scratch` (reuse it across rows: no allocation).
    public func validate(_ fields: [String], line: Int, scratch: inout [UInt8]) -> Result<ValidatedRow, Rejection> {
        if fields.count != headerCount {
            return .failure(reject(fields, line, nil, "field_count", "expected \(headerCount) fields as in the header, found \(fields.count)"))
        }
        var values: [String] = []
        values.reserveCapacity(schema.columns.count)
        var eventTime = Timestamp(microseconds: 0)
        for (index, column) in schema.columns.enumerated() {
            let raw = positions[index].map { fields[$0] } ?? ""
            switch canonical(raw, column) {
            case .success(let (text, timestamp)):
                values.append(text)
                if index == versionPosition, let timestamp { eventTime = timestamp }
            case .failure(let reason):
                return .failure(reject(fields, line, column.name, reason.code, reason.message))
            }
        }
        let eventID = EventID.of(entity: schema.entity.rawValue, values: values, scratch: &scratch)
        return .success(ValidatedRow(entity: schema.entity, line: line, values: values, eventTime: eventTime, eventID: eventID))
    }

    struct Reason: Error {
        var code: String
        var message: String
        init(_ code: String, _ message: String) {
            self.code = code
            self.message = message
        }
    }

    /// The canonical text of one value (and the instant, for timestamps), or why it is refused.
    private func canonical(_ raw: String, _ column: ColumnSpec) -> Result<(String, Timestamp?), Reason> {
        if column.kind == .text {
            if raw.isEmpty || raw.allSatisfy({ $0 == " " || $0 == "\t" }) {
                return column.required ? .failure(Reason("required", "is required but empty")) : .success((column.defaultValue, nil))
            }
            return .success((raw, nil))
        }
        let text = raw.trimmingSpaces()
        if text.isEmpty {
            return column.required ? .failure(Reason("required", "is required but empty")) : .success((column.defaultValue, nil))
        }
        switch column.kind {
        case .text:
            return .success((text, nil))
        case .integer(let minimum, let nonZero):
            guard let value = Int64(text.hasPrefix("+") ? String(text.dropFirst()) : text) else {
                return .failure(Reason("not_integer", "\(quoted(text)) is not an integer"))
            }
            if let minimum, value < minimum {
                return .failure(Reason("below_minimum", "\(value) is below the minimum \(minimum)"))
            }
            if nonZero && value == 0 { return .failure(Reason("zero", "must not be 0")) }
            return .success((Self.isCanonicalInteger(text) ? text : String(value), nil))
        case .decimal(let minimum, let maximumExclusive):
            guard let value = DecimalValue(text) else {
                return .failure(Reason("not_decimal", "\(quoted(text)) is not a decimal number (digits, one '.', no exponent)"))
            }
            if let minimum, value < minimum { return .failure(Reason("below_minimum", "\(text) is below the minimum \(minimum)")) }
            if let maximumExclusive, value >= maximumExclusive {
                return .failure(Reason("above_maximum", "\(text) must be less than \(maximumExclusive)"))
            }
            return .success((Self.isCanonicalDecimal(text) ? text : value.normalized().description, nil))
        case .date:
            guard let days = CivilDate.parse(text) else {
                return .failure(Reason("not_date", "\(quoted(text)) is not a date (YYYY-MM-DD)"))
            }
            return .success((CivilDate.format(days: days), nil))
        case .timestamp:
            var utf8 = text
            let parsed = utf8.withUTF8 { bytes in Timestamp.parse(bytes).map { ($0, Timestamp.isCanonicalShape(bytes)) } }
            guard let (timestamp, canonical) = parsed else {
                return .failure(Reason("not_timestamp", "\(quoted(text)) is not an ISO-8601 timestamp with an offset or Z"))
            }
            return .success((canonical ? text : timestamp.description, timestamp))
        case .oneOf(let allowed):
            if allowed.contains(text) { return .success((text, nil)) }
            let lower = text.lowercased()
            guard allowed.contains(lower) else {
                return .failure(Reason("unknown_value", "\(quoted(text)) is not one of \(allowed.joined(separator: ", "))"))
            }
            return .success((lower, nil))
        case .currency:
            guard text.utf8.count == 3, text.utf8.allSatisfy({ ($0 | 0x20) >= UInt8(ascii: "a") && ($0 | 0x20) <= UInt8(ascii: "z") }) else {
                return .failure(Reason("not_currency", "\(quoted(text)) is not a 3-letter currency code"))
            }
            return .success((text.uppercased(), nil))
        }
    }

    private func reject(_ fields: [String], _ line: Int, _ column: String?, _ code: String, _ reason: String) -> Rejection {
        Rejection(
            file: file, line: line, column: column, reason: column.map { "\($0): \(reason)" } ?? reason, code: code,
            raw: CSVWriter.line(fields))
    }

    /// Digits with an optional `-`, no `+`, no leading zero, not `-0`: what `String(Int64)` prints.
    static func isCanonicalInteger(_ text: String) -> Bool {
        let utf8 = text.utf8
        var index = utf8.startIndex
        if utf8[index] == UInt8(ascii: "-") { index = utf8.index(after: index) }
        guard index < utf8.endIndex else { return false }
        if utf8[index] == UInt8(ascii: "0") { return utf8.index(after: index) == utf8.endIndex && index == utf8.startIndex }
        return utf8[index] != UInt8(ascii: "+")
    }

    /// What `DecimalValue.normalized().description` prints: no `+`, no leading zeros but a single
    /// `0` before the point, no trailing zeros after it, not negative zero. Call after parsing.
    static func isCanonicalDecimal(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { isCanonicalDecimal($0) }
    }

    static func isCanonicalDecimal(_ utf8: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        let negative = utf8[0] == UInt8(ascii: "-")
        if negative { index = 1 }
        if utf8[0] == UInt8(ascii: "+") { return false }
        let point = utf8.firstIndex(of: UInt8(ascii: "."))
        let integerEnd = point ?? utf8.count
        if integerEnd - index > 1 && utf8[index] == UInt8(ascii: "0") { return false }
        if let point, utf8.last == UInt8(ascii: "0") || point == utf8.count - 1 { return false }
        if negative && utf8[index...].allSatisfy({ $0 == UInt8(ascii: "0") || $0 == UInt8(ascii: ".") }) { return false }
        return true
    }

    private func quoted(_ text: String) -> String {
        let short = text.count > 40 ? String(text.prefix(40)) + "…" : text
        return "'\(short)'"
    }
}

extension String {
    /// Without leading and trailing spaces and tabs.
    func trimmingSpaces() -> String {
        let utf8 = self.utf8
        if let first = utf8.first, let last = utf8.last, first != 32, first != 9, last != 32, last != 9 { return self }
        guard let first = utf8.firstIndex(where: { $0 != 32 && $0 != 9 }) else { return "" }
        let last = utf8.lastIndex(where: { $0 != 32 && $0 != 9 })!
        if first == utf8.startIndex && last == utf8.index(before: utf8.endIndex) { return self }
        return String(self[first...last])
    }
}

/// Writes RFC 4180 CSV.
public enum CSVWriter {
    /// One record, quoting fields that need it; no line ending.
    public static func line(_ fields: [String]) -> String {
        fields.map(field).joined(separator: ",")
    }

    public static func field(_ value: String) -> String {
        if value.utf8.contains(where: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 10 || $0 == 13 })
            || value.hasPrefix(" ") || value.hasSuffix(" ") {
            return "\"" + value.replacingAll("\"", with: "\"\"") + "\""
        }
        return value
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        guard contains(target) else { return self }
        var out = ""
        out.reserveCapacity(utf8.count + 8)
        for character in self {
            if character == target { out += replacement } else { out.append(character) }
        }
        return out
    }
}
