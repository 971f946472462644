#if canImport(Glibc)
import Glibc
#endif
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

    package static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> StreamID? {
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
///
/// The fields are kept packed in one buffer (per name and value: a LEB128 length, then the
/// bytes), read straight from the reply: one allocation per entry instead of one String per
/// field, and no UTF-8 validation until a value is asked for as a String.
public struct StreamEntry: Sendable, Equatable {
    public var id: StreamID
    /// Names and values, alternating, each a LEB128 length and its bytes.
    public private(set) var packed: [UInt8]

    public init(id: StreamID, fields: [String]) {
        precondition(fields.count % 2 == 0, "fields must alternate name and value")
        self.id = id
        var packed: [UInt8] = []
        for field in fields {
            var field = field
            field.withUTF8 { Self.append(UnsafeRawBufferPointer($0), to: &packed) }
        }
        self.packed = packed
    }

    /// An entry whose fields are already packed.
    public init(id: StreamID, packed: [UInt8]) {
        self.id = id
        self.packed = packed
    }

    /// Appends one packed name or value.
    @inline(__always)
    public static func append(_ bytes: UnsafeRawBufferPointer, to packed: inout [UInt8]) {
        var length = bytes.count
        while length >= 0x80 {
            packed.append(UInt8(length & 0x7F) | 0x80)
            length >>= 7
        }
        packed.append(UInt8(length))
        packed.append(contentsOf: bytes)
    }

    /// Calls `body` with each value of a packed buffer (LEB128 length, then bytes — the format of
    /// `packed`, and of the replayer's packed rows) and its index; stops when it returns false.
    /// Bytes that are not such a buffer (a length past the end, a length of more than 8 bytes:
    /// a record in Redis damaged or written by someone else) end the walk where they start.
    @inlinable @inline(__always)
    public static func forEachPacked(_ raw: UnsafeRawBufferPointer, _ body: (_ index: Int, UnsafeRawBufferPointer) -> Bool) {
        var offset = 0, index = 0
        while offset < raw.count {
            var length = 0, shift = 0
            while true {
                guard offset < raw.count, shift <= 56 else { return }
                let byte = raw[offset]
                offset += 1
                length |= Int(byte & 0x7F) << shift
                if byte < 0x80 { break }
                shift += 7
            }
            guard length >= 0, length <= raw.count - offset else { return }
            if !body(index, UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + length)])) { return }
            offset += length
            index += 1
        }
    }

    /// Calls `body` with each name and value (alternating) as raw bytes; stops when it returns false.
    @inline(__always)
    public func forEachField(_ body: (_ index: Int, UnsafeRawBufferPointer) -> Bool) {
        packed.withUnsafeBytes { Self.forEachPacked($0, body) }
    }

    /// Field names and values, alternating: name, value, name, value, …
    public var fields: [String] {
        get {
            var out: [String] = []
            forEachField { _, bytes in
                out.append(String(decoding: bytes, as: UTF8.self))
                return true
            }
            return out
        }
        set { self = StreamEntry(id: id, fields: newValue) }
    }

    /// Calls `body` with the bytes of the first field whose name is `wanted`.
    public func withValue<R>(_ wanted: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> R) -> R? {
        var result: R?
        var matched = false
        forEachField { index, bytes in
            if index % 2 == 0 {
                matched = bytes.count == wanted.count && (bytes.count == 0 || memcmp(bytes.baseAddress!, wanted.baseAddress!, bytes.count) == 0)
                return true
            }
            if matched {
                result = body(bytes)
                return false
            }
            return true
        }
        return result
    }

    /// The value of the first field called `name`.
    public subscript(name: String) -> String? {
        var name = name
        return name.withUTF8 { utf8 in
            withValue(UnsafeRawBufferPointer(utf8)) { String(decoding: $0, as: UTF8.self) }
        }
    }

    /// The fields as (name, value) pairs.
    public var pairs: [(name: String, value: String)] {
        let fields = self.fields
        return stride(from: 0, to: fields.count - 1, by: 2).map { (fields[$0], fields[$0 + 1]) }
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
