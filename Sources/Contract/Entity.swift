/// The six entities of the input contract, one CSV file and one stream family each.
public enum Entity: String, CaseIterable, Sendable, Codable, Comparable {
    case customers, suppliers, products, orders, payments, inventory

    public static func < (lhs: Entity, rhs: Entity) -> Bool { lhs.index < rhs.index }

    /// Position in `allCases` (stable: used in spill files and tie-breaks).
    /// The position in `allCases` (a switch: it is on every event's path).
    public var index: Int {
        switch self {
        case .customers: 0
        case .suppliers: 1
        case .products: 2
        case .orders: 3
        case .payments: 4
        case .inventory: 5
        }
    }

    /// The file of the contract.
    public var fileName: String {
        switch self {
        case .inventory: "inventory_movements.csv"
        default: "\(rawValue).csv"
        }
    }

    /// The event type written in each entry's `type` field.
    public var eventType: String {
        switch self {
        case .customers: "customer"
        case .suppliers: "supplier"
        case .products: "product"
        case .orders: "order_line"
        case .payments: "payment"
        case .inventory: "inventory_movement"
        }
    }

    public init?(fileName: String) {
        guard let entity = Entity.allCases.first(where: { $0.fileName == fileName }) else { return nil }
        self = entity
    }

    /// Accepts the entity name, its event type or its file name.
    public init?(name: String) {
        let lower = name.lowercased()
        guard let entity = Entity.allCases.first(where: {
            $0.rawValue == lower || $0.eventType == lower || $0.fileName == lower || $0.fileName == lower + ".csv"
        }) else { return nil }
        self = entity
    }

    public var schema: EntitySchema { EntitySchema.all[index] }
}

/// What a column holds and which values it accepts.
public enum ColumnKind: Sendable, Equatable {
    case text
    /// An integer in `minimum...`; `nonZero` forbids 0.
    case integer(minimum: Int64?, nonZero: Bool)
    /// A decimal in `minimum ..< maximumExclusive` (either bound optional).
    case decimal(minimum: DecimalValue?, maximumExclusive: DecimalValue?)
    case date
    case timestamp
    case oneOf([String])
    /// Three ASCII letters, stored upper-case.
    case currency
}

/// One column of the contract. A class: validation reads every column of every row, and a
/// reference costs one retain where a struct holding strings and arrays costs several.
public final class ColumnSpec: Sendable, Equatable {
    public let name: String
    public let required: Bool
    public let kind: ColumnKind
    /// The value used when an optional column is empty or absent.
    public let defaultValue: String

    public static func == (lhs: ColumnSpec, rhs: ColumnSpec) -> Bool {
        lhs.name == rhs.name && lhs.required == rhs.required && lhs.kind == rhs.kind && lhs.defaultValue == rhs.defaultValue
    }

    init(_ name: String, _ kind: ColumnKind = .text, required: Bool = false, default defaultValue: String = "") {
        self.name = name
        self.kind = kind
        self.required = required
        self.defaultValue = defaultValue
    }
}

/// The contract of one entity: its columns, its key and the column that orders its versions.
public struct EntitySchema: Sendable {
    public var entity: Entity
    public var columns: [ColumnSpec]
    /// Rows with the same values here are versions of one entity.
    public var keyColumns: [String]
    /// The version (event) time.
    public var versionColumn: String
    /// Decides the stream partition, so related events share one (all lines of an order; all
    /// movements of a product).
    public var partitionColumn: String

    public var columnNames: [String] { columns.map(\.name) }

    public func position(of column: String) -> Int? { columns.firstIndex { $0.name == column } }

    static let nonNegative = DecimalValue.zero

    static let all: [EntitySchema] = [
        EntitySchema(
            entity: .customers,
            columns: [
                ColumnSpec("customer_id", required: true), ColumnSpec("first_name"), ColumnSpec("last_name"),
                ColumnSpec("email"), ColumnSpec("city"), ColumnSpec("state"), ColumnSpec("country", required: true),
                ColumnSpec("segment", required: true), ColumnSpec("signup_date", .date),
                ColumnSpec("updated_at", .timestamp, required: true),
            ],
            keyColumns: ["customer_id"], versionColumn: "updated_at", partitionColumn: "customer_id"),
        EntitySchema(
            entity: .suppliers,
            columns: [
                ColumnSpec("supplier_id", required: true), ColumnSpec("name", required: true), ColumnSpec("country"),
                ColumnSpec("contact_email"), ColumnSpec("contract_start", .date), ColumnSpec("contract_end", .date),
                ColumnSpec("lead_time_days", .integer(minimum: 0, nonZero: false)),
                ColumnSpec("rating", .decimal(minimum: nonNegative, maximumExclusive: nil)),
                ColumnSpec("updated_at", .timestamp, required: true),
            ],
            keyColumns: ["supplier_id"], versionColumn: "updated_at", partitionColumn: "supplier_id"),
        EntitySchema(
            entity: .products,
            columns: [
                ColumnSpec("product_id", required: true), ColumnSpec("name", required: true),
                ColumnSpec("category", required: true), ColumnSpec("supplier_id"),
                ColumnSpec("unit_price", .decimal(minimum: nonNegative, maximumExclusive: nil), required: true),
                ColumnSpec("unit_cost", .decimal(minimum: nonNegative, maximumExclusive: nil)),
                ColumnSpec("updated_at", .timestamp, required: true),
            ],
            keyColumns: ["product_id"], versionColumn: "updated_at", partitionColumn: "product_id"),
        EntitySchema(
            entity: .orders,
            columns: [
                ColumnSpec("order_id", required: true),
                ColumnSpec("line_number", .integer(minimum: 1, nonZero: true), required: true),
                ColumnSpec("customer_id", required: true), ColumnSpec("product_id", required: true),
                ColumnSpec("quantity", .integer(minimum: 1, nonZero: true), required: true),
                ColumnSpec("unit_price", .decimal(minimum: nonNegative, maximumExclusive: nil), required: true),
                ColumnSpec("discount", .decimal(minimum: nonNegative, maximumExclusive: DecimalValue(units: 1, scale: 0)), default: "0"),
                ColumnSpec("status", .oneOf(OrderStatus.allCases.map(\.rawValue)), required: true),
                ColumnSpec("order_ts", .timestamp, required: true),
                ColumnSpec("updated_at", .timestamp, required: true),
            ],
            keyColumns: ["order_id", "line_number"], versionColumn: "updated_at", partitionColumn: "order_id"),
        EntitySchema(
            entity: .payments,
            columns: [
                ColumnSpec("payment_id", required: true), ColumnSpec("order_id", required: true),
                ColumnSpec("method", required: true), ColumnSpec("processor"),
                ColumnSpec("amount", .decimal(minimum: nonNegative, maximumExclusive: nil), required: true),
                ColumnSpec("currency", .currency, required: true),
                ColumnSpec("status", .oneOf(["authorized", "captured", "failed", "refunded"]), required: true),
                ColumnSpec("paid_at", .timestamp, required: true),
            ],
            keyColumns: ["payment_id"], versionColumn: "paid_at", partitionColumn: "payment_id"),
        EntitySchema(
            entity: .inventory,
            columns: [
                ColumnSpec("movement_id", required: true), ColumnSpec("product_id", required: true),
                ColumnSpec("movement_type", .oneOf(["receipt", "sale", "return", "adjustment"]), required: true),
                ColumnSpec("quantity", .integer(minimum: nil, nonZero: true), required: true),
                ColumnSpec("unit_cost", .decimal(minimum: nonNegative, maximumExclusive: nil)),
                ColumnSpec("moved_at", .timestamp, required: true), ColumnSpec("reference"),
            ],
            keyColumns: ["movement_id"], versionColumn: "moved_at", partitionColumn: "product_id"),
    ]
}
