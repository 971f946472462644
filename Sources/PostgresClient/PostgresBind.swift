/// One bind parameter (`$1`, `$2`, …): sent apart from the SQL text, so no value is ever parsed as SQL.
///
/// Scalars travel in text form and the server casts them to the column's type; `bytea` travels in
/// binary form; arrays travel as array literals (for `unnest($1::int8[], $2::text[])` batches).
public enum PostgresBind: Sendable, Hashable {
    case null
    case text(String)
    /// Raw bytes, sent in binary format as `bytea`.
    case bytea([UInt8])
    /// An array, sent as a text array literal; `nil` elements are SQL NULL.
    case array([String?])

    public init(_ value: String?) { self = value.map(PostgresBind.text) ?? .null }
    public init(_ value: Int) { self = .text(String(value)) }
    public init(_ value: Int64) { self = .text(String(value)) }
    public init(_ value: Int32) { self = .text(String(value)) }
    public init(_ value: Double) { self = .text(value.description) }
    public init(_ value: Bool) { self = .text(value ? "t" : "f") }
    public init(_ values: [Int]) { self = .array(values.map { String($0) }) }
    public init(_ values: [Int64]) { self = .array(values.map { String($0) }) }
    public init(_ values: [Int?]) { self = .array(values.map { $0.map { String($0) } }) }
    public init(_ values: [String]) { self = .array(values) }
    public init(_ values: [String?]) { self = .array(values) }
    public init(_ values: [Double]) { self = .array(values.map(\.description)) }
    public init(_ values: [Bool]) { self = .array(values.map { $0 ? "t" : "f" }) }

    /// Appends the NUL-terminated text form of an array literal (`{"a","b\"c",NULL}`) to `out`.
    static func appendArrayLiteral(_ elements: [String?], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        for (index, element) in elements.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            guard let element else {
                out.append(contentsOf: [UInt8(ascii: "N"), UInt8(ascii: "U"), UInt8(ascii: "L"), UInt8(ascii: "L")])
                continue
            }
            out.append(UInt8(ascii: "\""))
            for byte in element.utf8 {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
                out.append(byte)
            }
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
    }

    /// The array literal as text (for tests and logs of the shape, never of real data).
    public static func arrayLiteral(_ elements: [String?]) -> String {
        var out: [UInt8] = []
        appendArrayLiteral(elements, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

extension PostgresBind: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral,
    ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral
{
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int) { self.init(value) }
    public init(nilLiteral: ()) { self = .null }
    public init(floatLiteral value: Double) { self.init(value) }
    public init(booleanLiteral value: Bool) { self.init(value) }
}
