import Foundation

/// The rule table (`Tests/Fixtures/rules.json`), loaded for both sides: `RuleTableTests` runs it through
/// the Swift rules and the KPI state that uses them; `RuleTableSQLTests` runs the same cases
/// through the warehouse's SQL.
public struct RuleTable: Decodable, Sendable {
    public struct Version: Decodable, Sendable {
        public var time: String, event: String, segment: String, state: String, city: String
    }
    public struct Arrival: Decodable, Sendable {
        public var version: Version?
        public var fact: String?
    }
    public struct ValidAtCase: Decodable, Sendable {
        public var `case`: String
        public var arrivals: [Arrival]
        public var expect: [String: AnyScalar]
    }
    public struct AmountCase: Decodable, Sendable {
        public var `case`: String
        public var quantity: Int64
        public var unit_price: String, discount: String, gross: String, net: String, discount_amount: String
    }
    public struct StatusCase: Decodable, Sendable {
        public var `case`: String
        public var arrivals: [[String]]
        public var final: String
        public var counts: Bool
    }
    /// A JSON string or number, as text.
    public struct AnyScalar: Decodable, Sendable, CustomStringConvertible {
        public var description: String
        public init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let text = try? container.decode(String.self) { description = text } else { description = String(try container.decode(Int.self)) }
        }
    }

    public var valid_at: [ValidAtCase]
    public var line_amounts: [AmountCase]
    public var status: [StatusCase]

    public static func load(_ testFile: String = #filePath) throws -> RuleTable {
        let root = URL(fileURLWithPath: testFile).deletingLastPathComponent().deletingLastPathComponent()
        return try JSONDecoder().decode(RuleTable.self, from: Data(contentsOf: root.appendingPathComponent("Fixtures/rules.json")))
    }

    public static let shared: RuleTable = try! load()

    /// The customer of valid-at case `index`, and the order line of status case `index`.
    public static func customer(_ index: Int) -> String { "RC\(index)" }
    public static func order(_ index: Int) -> String { "RO\(index)" }
}

