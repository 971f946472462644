/// Maps a file's header onto an entity's schema and validates each record against it.
public struct RowValidator: Sendable {
    public let schema: EntitySchema
    public let file: String
    /// For each schema column, its position in the CSV record (nil: not in the file).
    public let positions: [Int?]
    /// Header columns that are not in the contract (ignored).
    public let unknownColumns: [String]
    private let headerCount: Int
    /// The header as CSV text (what a rejection carries, so its row can be read back).
    public let headerLine: String
    private let versionPosition: Int
    private let partitionPosition: Int
    private let columns: [ColumnSpec]
    /// For enumerated columns, the allowed values as bytes.
    private let allowedBytes: [[[UInt8]]]
    /// Event ids hash the packed values under seeds derived from the entity.
    private let idSeeds: (UInt64, UInt64)

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
        headerLine = CSVWriter.line(header)
        versionPosition = schema.position(of: schema.versionColumn)!
        partitionPosition = schema.position(of: schema.partitionColumn)!
        columns = schema.columns
        allowedBytes = schema.columns.map { column in
            if case .oneOf(let names) = column.kind { return names.map { Array($0.utf8) } }
            return []
        }
        idSeeds = EventID.seeds(for: entity)
    }

    /// What `validateRaw` found.
    public enum RawOutcome {
        /// The row's canonical values were packed into `out`.
        case valid(eventTime: Timestamp, eventID: EventID, partitionHash: UInt64)
        case rejected(Rejection)
    }

    /// Validates one record; `fields` as the reader returned them.
    public func validate(_ fields: [String], line: Int) -> Result<ValidatedRow, Rejection> {
        var scratch: [UInt8] = []
        return validate(fields, line: line, scratch: &scratch)
    }

    /// Validates one record, using `scratch` for the packed values (reuse it across rows).
    public func validate(_ fields: [String], line: Int, scratch: inout [UInt8]) -> Result<ValidatedRow, Rejection> {
        // The byte path is the one implementation; strings are laid out contiguously for it.
        var joined: [UInt8] = []
        var bounds: [Range<Int>] = []
        for field in fields {
            let lower = joined.count
            joined.append(contentsOf: field.utf8)
            bounds.append(lower..<joined.count)
        }
        let outcome = joined.withUnsafeBufferPointer { bytes in
            validateRaw(bounds.map { UnsafeBufferPointer(rebasing: bytes[$0]) }, line: line, packInto: &scratch)
        }
        switch outcome {
        case .rejected(let rejection):
            return .failure(rejection)
        case .valid(let eventTime, let eventID, _):
            let values = scratch.withUnsafeBytes { EventEncoder.unpack(UnsafeRawBufferPointer($0)) }
            return .success(ValidatedRow(entity: schema.entity, line: line, values: values, eventTime: eventTime, eventID: eventID))
        }
    }

    /// Validates one record given as bytes (as `CSVReader.nextRaw` lends them) and packs its
    /// canonical values into `out` (replacing its contents): no string is made for a good row.
    public func validateRaw(_ fields: [UnsafeBufferPointer<UInt8>], line: Int, packInto out: inout [UInt8]) -> RawOutcome {
        out.removeAll(keepingCapacity: true)
        if fields.count != headerCount {
            return .rejected(reject(fields, line, nil, "field_count", "expected \(headerCount) fields as in the header, found \(fields.count)"))
        }
        var eventTime = Timestamp(microseconds: 0)
        var partitionRange = 0..<0
        let empty = UnsafeBufferPointer<UInt8>(start: nil, count: 0)
        for index in 0..<columns.count {
            let column = columns[index]
            let raw = positions[index].map { fields[$0] } ?? empty
            let valueStart = out.count
            switch Self.pack(raw, column, allowed: allowedBytes[index], into: &out) {
            case .success(let timestamp):
                if index == versionPosition, let timestamp { eventTime = timestamp }
            case .failure(let reason):
                return .rejected(reject(fields, line, column.name, reason.code, reason.message))
            }
            if index == partitionPosition { partitionRange = valueStart..<out.count }
        }
        return out.withUnsafeBufferPointer { packed in
            let (high, low) = XXHash64.hash2(packed, seeds: idSeeds)
            // The partition key's bytes follow its length prefix.
            var keyStart = partitionRange.lowerBound
            while packed[keyStart] >= 0x80 { keyStart += 1 }
            keyStart += 1
            let key = UnsafeBufferPointer(rebasing: packed[keyStart..<partitionRange.upperBound])
            return .valid(eventTime: eventTime, eventID: EventID(high: high, low: low), partitionHash: XXHash64.hash(key))
        }
    }

    struct Reason: Error {
        var code: String
        var message: String
        init(_ code: String, _ message: String) {
            self.code = code
            self.message = message
        }
    }

    /// Appends the packed canonical form of one value (LEB128 length, bytes) to `out`, or says why
    /// the value is refused. Values already canonical are copied as they are.
    /// Why a text value cannot be stored as it is: a NUL byte (PostgreSQL's text cannot hold one)
    /// or bytes that are not UTF-8 (decoding them would replace them, changing the value). Text
    /// is otherwise stored byte for byte: quotes, commas, newlines, SQL or Lua, right-to-left marks.
    static func textProblem(_ raw: UnsafeBufferPointer<UInt8>) -> Reason? {
        var ascii = true
        for (offset, byte) in raw.enumerated() {
            if byte == 0 { return Reason("nul_byte", "holds a NUL byte at byte \(offset + 1), which text cannot store") }
            if byte >= 0x80 { ascii = false }
        }
        if ascii || String(validating: raw, as: UTF8.self) != nil { return nil }
        return Reason("invalid_utf8", "is not valid UTF-8 (the file must be UTF-8; convert it with iconv)")
    }

    static func pack(
        _ raw: UnsafeBufferPointer<UInt8>, _ column: ColumnSpec, allowed: [[UInt8]], into out: inout [UInt8]
    ) -> Result<Timestamp?, Reason> {
        if case .text = column.kind {
            if let problem = textProblem(raw) { return .failure(problem) }
            if raw.allSatisfy({ $0 == 32 || $0 == 9 }) {
                if column.required { return .failure(Reason("required", "is required but empty")) }
                packString(column.defaultValue, into: &out)
                return .success(nil)
            }
            packBytes(raw, into: &out)
            return .success(nil)
        }
        var lower = 0, upper = raw.count
        while lower < upper, raw[lower] == 32 || raw[lower] == 9 { lower += 1 }
        while upper > lower, raw[upper - 1] == 32 || raw[upper - 1] == 9 { upper -= 1 }
        let text = UnsafeBufferPointer(rebasing: raw[lower..<upper])
        if text.isEmpty {
            if column.required { return .failure(Reason("required", "is required but empty")) }
            packString(column.defaultValue, into: &out)
            return .success(nil)
        }
        switch column.kind {
        case .text:
            return .success(nil)
        case .integer(let minimum, let nonZero):
            guard let value = parseInteger(text) else {
                return .failure(Reason("not_integer", "\(quoted(text)) is not an integer"))
            }
            if let minimum, value < minimum {
                return .failure(Reason("below_minimum", "\(value) is below the minimum \(minimum)"))
            }
            if nonZero && value == 0 { return .failure(Reason("zero", "must not be 0")) }
            if isCanonicalInteger(text) { packBytes(text, into: &out) } else { packString(String(value), into: &out) }
            return .success(nil)
        case .decimal(let minimum, let maximumExclusive):
            guard let value = DecimalValue.parse(text) else {
                return .failure(Reason("not_decimal", "\(quoted(text)) is not a decimal number (digits, one '.', no exponent)"))
            }
            if let minimum, value < minimum {
                return .failure(Reason("below_minimum", "\(string(text)) is below the minimum \(minimum)"))
            }
            if let maximumExclusive, value >= maximumExclusive {
                return .failure(Reason("above_maximum", "\(string(text)) must be less than \(maximumExclusive)"))
            }
            if isCanonicalDecimal(text) { packBytes(text, into: &out) } else { packString(value.normalized().description, into: &out) }
            return .success(nil)
        case .date:
            guard text.count == 10, CivilDate.parseDate(text, 0) != nil else {
                return .failure(Reason("not_date", "\(quoted(text)) is not a date (YYYY-MM-DD)"))
            }
            packBytes(text, into: &out)
            return .success(nil)
        case .timestamp:
            guard let timestamp = Timestamp.parse(text) else {
                return .failure(Reason("not_timestamp", "\(quoted(text)) is not an ISO-8601 timestamp with an offset or Z, in years 0000–9999 UTC"))
            }
            if Timestamp.isCanonicalShape(text) { packBytes(text, into: &out) } else { packString(timestamp.description, into: &out) }
            return .success(timestamp)
        case .oneOf(let names):
            for candidate in allowed where candidate.count == text.count {
                var same = true
                for index in 0..<text.count {
                    let byte = text[index]
                    let folded = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
                    if folded != candidate[index] { same = false; break }
                }
                if same {
                    candidate.withUnsafeBufferPointer { packBytes($0, into: &out) }
                    return .success(nil)
                }
            }
            return .failure(Reason("unknown_value", "\(quoted(text)) is not one of \(names.joined(separator: ", "))"))
        case .currency:
            guard text.count == 3, text.allSatisfy({ ($0 | 0x20) >= UInt8(ascii: "a") && ($0 | 0x20) <= UInt8(ascii: "z") }) else {
                return .failure(Reason("not_currency", "\(quoted(text)) is not a 3-letter currency code"))
            }
            writeLength(3, into: &out)
            for byte in text { out.append(byte & ~0x20) }
            return .success(nil)
        }
    }

    @inline(__always)
    static func writeLength(_ length: Int, into out: inout [UInt8]) {
        var length = length
        while length >= 0x80 {
            out.append(UInt8(length & 0x7F) | 0x80)
            length >>= 7
        }
        out.append(UInt8(length))
    }

    @inline(__always)
    static func packBytes(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        writeLength(bytes.count, into: &out)
        out.append(contentsOf: bytes)
    }

    static func packString(_ text: String, into out: inout [UInt8]) {
        var text = text
        text.withUTF8 { packBytes($0, into: &out) }
    }

    /// `[-+]digits` as an Int64 (nil on overflow or anything else).
    package static func parseInteger(_ text: UnsafeBufferPointer<UInt8>) -> Int64? {
        var index = 0
        var negative = false
        if text[0] == UInt8(ascii: "-") || text[0] == UInt8(ascii: "+") {
            negative = text[0] == UInt8(ascii: "-")
            index = 1
        }
        guard index < text.count else { return nil }
        var value: Int64 = 0
        while index < text.count {
            let digit = text[index] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = negative ? times.subtractingReportingOverflow(Int64(digit)) : times.addingReportingOverflow(Int64(digit))
            guard !o1, !o2 else { return nil }
            value = sum
            index += 1
        }
        return value
    }

    static func string(_ bytes: UnsafeBufferPointer<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }

    static func quoted(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        let text = string(bytes)
        let short = text.count > 40 ? String(text.prefix(40)) + "…" : text
        return "'\(short)'"
    }

    private func reject(_ fields: [UnsafeBufferPointer<UInt8>], _ line: Int, _ column: String?, _ code: String, _ reason: String) -> Rejection {
        Rejection(
            file: file, line: line, column: column, reason: column.map { "\($0): \(reason)" } ?? reason, code: code,
            raw: CSVWriter.line(fields.map(Self.string)), header: headerLine)
    }

    /// Digits with an optional `-`, no `+`, no leading zero, not `-0`: what `String(Int64)` prints.
    static func isCanonicalInteger(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { isCanonicalInteger($0) }
    }

    static func isCanonicalInteger(_ utf8: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        if utf8[index] == UInt8(ascii: "-") { index += 1 }
        guard index < utf8.count else { return false }
        if utf8[index] == UInt8(ascii: "0") { return utf8.count == 1 }
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
}
