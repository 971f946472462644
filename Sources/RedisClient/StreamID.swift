/// A Redis stream entry id, `<milliseconds>-<sequence>`, ordered as Redis orders them.
public struct StreamID: Hashable, Comparable, Sendable, CustomStringConvertible, LosslessStringConvertible {
    /// Milliseconds since the Unix epoch (for ids that Redis generated).
    public var milliseconds: UInt64
    public var sequence: UInt64

    public init(milliseconds: UInt64, sequence: UInt64 = 0) {
        self.milliseconds = milliseconds
        self.sequence = sequence
    }

    /// Parses `1700000000000-3` or `1700000000000` (sequence 0). Returns nil for anything else.
    public init?(_ text: String) {
        var text = text
        guard let parsed = text.withUTF8({ Self.parse($0) }) else { return nil }
        self = parsed
    }

    /// The smallest id, `0-0`.
    public static let zero = StreamID(milliseconds: 0, sequence: 0)
    /// The largest id.
    public static let max = StreamID(milliseconds: .max, sequence: .max)

    /// The id right after this one (for exclusive ranges).
    public var successor: StreamID {
        sequence == .max
            ? StreamID(milliseconds: milliseconds &+ 1, sequence: 0)
            : StreamID(milliseconds: milliseconds, sequence: sequence + 1)
    }

    public static func < (lhs: StreamID, rhs: StreamID) -> Bool {
        (lhs.milliseconds, lhs.sequence) < (rhs.milliseconds, rhs.sequence)
    }

    public var description: String { "\(milliseconds)-\(sequence)" }

    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> StreamID? {
        var milliseconds: UInt64 = 0
        var sequence: UInt64 = 0
        var digits = 0
        var index = 0
        while index < bytes.count, bytes[index] != UInt8(ascii: "-") {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (times, overflow1) = milliseconds.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(UInt64(digit))
            guard !overflow1, !overflow2 else { return nil }
            milliseconds = sum
            digits += 1
            index += 1
        }
        guard digits > 0 else { return nil }
        if index == bytes.count { return StreamID(milliseconds: milliseconds, sequence: 0) }
        index += 1
        digits = 0
        while index < bytes.count {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (times, overflow1) = sequence.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(UInt64(digit))
            guard !overflow1, !overflow2 else { return nil }
            sequence = sum
            digits += 1
            index += 1
        }
        guard digits > 0 else { return nil }
        return StreamID(milliseconds: milliseconds, sequence: sequence)
    }
}

/// One entry of a stream: its id and its fields in the order they were written.
public struct StreamEntry: Sendable, Equatable {
    public var id: StreamID
    /// Field names and values, alternating: name, value, name, value, …
    public var fields: [String]

    public init(id: StreamID, fields: [String]) {
        precondition(fields.count % 2 == 0, "fields must alternate name and value")
        self.id = id
        self.fields = fields
    }

    /// The value of the first field called `name`.
    public subscript(name: String) -> String? {
        var index = 0
        while index + 1 < fields.count {
            if fields[index] == name { return fields[index + 1] }
            index += 2
        }
        return nil
    }

    /// The fields as (name, value) pairs.
    public var pairs: [(name: String, value: String)] {
        stride(from: 0, to: fields.count - 1, by: 2).map { (fields[$0], fields[$0 + 1]) }
    }
}

/// What XREAD/XREADGROUP returned for one stream.
public struct StreamRead: Sendable, Equatable {
    public var key: String
    public var entries: [StreamEntry]

    public init(key: String, entries: [StreamEntry]) {
        self.key = key
        self.entries = entries
    }
}
