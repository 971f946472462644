/// A column of a result: its name and its type's OID.
public struct PostgresColumn: Sendable, Hashable {
    public var name: String
    public var typeOID: UInt32
}

/// The result of one statement: its columns, its rows (values in PostgreSQL's text form) and,
/// for INSERT/UPDATE/DELETE/COPY, how many rows it touched.
public struct PostgresRows: Sendable {
    public var columns: [PostgresColumn]
    public var rows: [PostgresRow]
    public var affectedRows: Int

    public var count: Int { rows.count }
    public var first: PostgresRow? { rows.first }
}

/// One row. Read values with `decode(_:at:)` or `decode(_:column:)`; NULL decodes to nil for
/// optional types and throws for non-optional ones.
public struct PostgresRow: Sendable {
    public var values: [String?]
    let index: ColumnIndex

    /// The raw text of column `position` (nil for NULL).
    public subscript(position: Int) -> String? { values[position] }

    /// The raw text of the column called `name` (nil for NULL or no such column).
    public subscript(name: String) -> String? {
        index.positions[name].flatMap { values[$0] }
    }

    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, at position: Int) throws -> T {
        guard values.indices.contains(position) else {
            throw PostgresError(.decoding, "no column at position \(position)")
        }
        return try T.decode(values[position], column: index.columns[position])
    }

    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, column name: String) throws -> T {
        guard let position = index.positions[name] else {
            throw PostgresError(.decoding, "no column named \(name)")
        }
        return try decode(type, at: position)
    }
}

/// Column names shared by every row of one result.
final class ColumnIndex: Sendable {
    let columns: [PostgresColumn]
    let positions: [String: Int]
    init(_ columns: [PostgresColumn]) {
        self.columns = columns
        var positions: [String: Int] = [:]
        for (position, column) in columns.enumerated() where positions[column.name] == nil {
            positions[column.name] = position
        }
        self.positions = positions
    }
}

/// A Swift type that can be read from PostgreSQL's text form of a value.
public protocol PostgresDecodable {
    static func decode(_ text: String?, column: PostgresColumn) throws -> Self
}

extension PostgresDecodable {
    static func require(_ text: String?, _ column: PostgresColumn) throws -> String {
        guard let text else { throw PostgresError(.decoding, "column \(column.name) is NULL") }
        return text
    }
    static func mismatch(_ column: PostgresColumn) -> PostgresError {
        PostgresError(.decoding, "column \(column.name) (type \(column.typeOID)) is not a \(Self.self)")
    }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public static func decode(_ text: String?, column: PostgresColumn) throws -> Wrapped? {
        guard let text else { return nil }
        return try Wrapped.decode(text, column: column)
    }
}

extension String: PostgresDecodable {
    public static func decode(_ text: String?, column: PostgresColumn) throws -> String { try require(text, column) }
}

extension Int: PostgresDecodable {
    public static func decode(_ text: String?, column: PostgresColumn) throws -> Int {
        guard let value = Int(try require(text, column)) else { throw mismatch(column) }
        return value
    }
}

extension Int64: PostgresDecodable {
    public static func decode(_ text: String?, column: PostgresColumn) throws -> Int64 {
        guard let value = Int64(try require(text, column)) else { throw mismatch(column) }
        return value
    }
}

extension Int32: PostgresDecodable {
    public static func decode(_ text: String?, column: PostgresColumn) throws -> Int32 {
        guard let value = Int32(try require(text, column)) else { throw mismatch(column) }
        return value
    }
}

extension Double: PostgresDecodable {
    public static func decode(_ text: String?, column: PostgresColumn) throws -> Double {
        guard let value = Double(try require(text, column)) else { throw mismatch(column) }
        return value
    }
}

extension Bool: PostgresDecodable {
    public static func decode(_ text: String?, column: PostgresColumn) throws -> Bool {
        switch try require(text, column) {
        case "t", "true": return true
        case "f", "false": return false
        default: throw mismatch(column)
        }
    }
}

extension Array: PostgresDecodable where Element == UInt8 {
    /// Reads `bytea` in PostgreSQL's hex output form (`\x0a1b…`).
    public static func decode(_ text: String?, column: PostgresColumn) throws -> [UInt8] {
        let text = try require(text, column)
        let utf8 = Array(text.utf8)
        guard utf8.count >= 2, utf8[0] == UInt8(ascii: "\\"), utf8[1] == UInt8(ascii: "x"), utf8.count % 2 == 0 else {
            throw mismatch(column)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity((utf8.count - 2) / 2)
        var index = 2
        while index < utf8.count {
            guard let high = hexValue(utf8[index]), let low = hexValue(utf8[index + 1]) else { throw mismatch(column) }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
