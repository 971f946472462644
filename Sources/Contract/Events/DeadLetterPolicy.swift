/// How the dead-letter stream is bounded, and which columns it must never hold.
public struct DeadLetterPolicy: Sendable, Equatable {
    /// The default cap: a million entries.
    public static let defaultCap = 1_000_000
    /// What a masked value reads as.
    public static let mask = "***"

    /// Entries kept at most; past it the oldest are dropped (0: no cap).
    public var cap: Int
    /// Columns whose values are replaced by `***` in the raw copy and the reason (personal data
    /// such as `email`): the operator sees the row without them and sets them again on redrive.
    public var maskedColumns: Set<String>

    public init(cap: Int = defaultCap, maskedColumns: Set<String> = []) {
        self.cap = max(0, cap)
        self.maskedColumns = maskedColumns
    }

    /// `rejection` with the masked columns' values replaced in its raw CSV copy (read back under
    /// its header) and in its reason when the reason is about one of them.
    public func masked(_ rejection: Rejection) -> Rejection {
        guard !maskedColumns.isEmpty else { return rejection }
        var out = rejection
        if let column = rejection.column, maskedColumns.contains(column.lowercased()) {
            out.reason = "\(column): the value is masked (\(rejection.code))"
        }
        guard !rejection.raw.isEmpty, !rejection.header.isEmpty else { return out }
        var headerReader = CSVReader(bytes: Array(rejection.header.utf8))
        var rawReader = CSVReader(bytes: Array(rejection.raw.utf8))
        guard let header = try? headerReader.next()?.fields, var fields = try? rawReader.next()?.fields else {
            out.raw = Self.mask   // a copy that cannot be read back cannot be masked by column: hide it all
            return out
        }
        for (index, name) in header.enumerated()
            where index < fields.count && maskedColumns.contains(name.trimmingSpaces().lowercased()) {
            fields[index] = Self.mask
        }
        out.raw = CSVWriter.line(fields)
        return out
    }
}
