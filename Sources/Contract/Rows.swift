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
    /// The file's header as CSV text, so the record can be read back (and redriven).
    public var header: String = ""

    public var description: String {
        "\(file):\(line)" + (column.map { " [\($0)]" } ?? "") + ": \(reason)"
    }

    public init(file: String, line: Int, column: String?, reason: String, code: String, raw: String, header: String = "") {
        self.file = file
        self.line = line
        self.column = column
        self.reason = reason
        self.code = code
        self.raw = raw
        self.header = header
    }
}

/// Input that cannot be used at all (missing file, no header, a required column absent from the header).
public struct ContractError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
