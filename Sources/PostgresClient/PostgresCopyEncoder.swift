/// Builds COPY … FROM STDIN data in PostgreSQL's text format: tab-separated columns, one row per
/// line, `\N` for NULL, backslash escapes for backslash, tab, newline and carriage return.
///
/// ```swift
/// var copy = PostgresCopyEncoder()
/// copy.add("o-1"); copy.add(1); copy.addNull(); copy.endRow()
/// try await connection.copyIn("COPY t (a, b, c) FROM STDIN", data: copy.bytes)
/// ```
public struct PostgresCopyEncoder: Sendable {
    public private(set) var bytes: [UInt8] = []
    /// Rows completed with `endRow()`.
    public private(set) var rows = 0
    private var columnsInRow = 0

    public init(reservingCapacity capacity: Int = 0) {
        bytes.reserveCapacity(capacity)
    }

    /// Adds a text column, escaping what the text format requires.
    public mutating func add(_ text: String) {
        separate()
        var text = text
        text.withUTF8 { utf8 in
            for byte in utf8 {
                switch byte {
                case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "\\"))
                case 9: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "t"))
                case 10: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "n"))
                case 13: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "r"))
                default: bytes.append(byte)
                }
            }
        }
    }

    /// Adds an integer column.
    public mutating func add(_ value: Int) {
        separate()
        bytes.append(contentsOf: String(value).utf8)
    }

    /// Adds a column of text that is known to need no escaping (numbers, dates, decimals).
    public mutating func addVerbatim(_ text: String) {
        separate()
        bytes.append(contentsOf: text.utf8)
    }

    public mutating func addNull() {
        separate()
        bytes.append(UInt8(ascii: "\\"))
        bytes.append(UInt8(ascii: "N"))
    }

    public mutating func add(_ text: String?) {
        if let text { add(text) } else { addNull() }
    }

    public mutating func endRow() {
        bytes.append(10)
        rows += 1
        columnsInRow = 0
    }

    public mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        rows = 0
        columnsInRow = 0
    }

    @inline(__always)
    private mutating func separate() {
        if columnsInRow > 0 { bytes.append(9) }
        columnsInRow += 1
    }
}
