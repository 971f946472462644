import Foundation
public import PostgresClient
import StreamRuntime

/// The analytics queries (`Sources/WarehouseSink/SQL/analytics`, embedded in the binary; each
/// runnable with psql), run by `warehouse report NAME` and the dashboard's analytics API.
public struct AnalyticsReport: Sendable {
    /// The report names: the embedded files, or the files of `folder` when one is given (a `-`
    /// in a name stands for `_`).
    public static func names(in folder: String? = nil) -> [String] {
        let files = folder.map { ((try? FileManager.default.contentsOfDirectory(atPath: $0)) ?? []) } ?? EmbeddedSQL.analytics.map(\.file)
        return files.filter { $0.hasSuffix(".sql") }.map { String($0.dropLast(4)) }.sorted()
    }

    public let name: String
    public let sql: String

    /// The report `name`: embedded, or from `folder` (`--sql-dir`'s `analytics/`) when one is given.
    public init(name: String, folder: String? = nil) throws {
        let stem = name.replacingOccurrences(of: "-", with: "_")
        let text: String?
        if let folder {
            text = FileManager.default.contents(atPath: (folder as NSString).appendingPathComponent(stem + ".sql"))
                .map { String(decoding: $0, as: UTF8.self) }
        } else {
            text = EmbeddedSQL.analytics.first { $0.file == stem + ".sql" }?.text
        }
        guard let text else {
            throw MigrationError("no report \(name): known reports are summary, \(Self.names(in: folder).joined(separator: ", "))")
        }
        self.name = stem
        self.sql = text
    }

    /// The analytics folder of `sqlDir`, else of `$WAREHOUSE_SQL_DIR`; nil for the built-in queries.
    public static func overrideFolder(_ sqlDir: String?, environment: [String: String]? = nil) -> String? {
        Migration.overrideFolder(sqlDir, environment: environment).map { ($0 as NSString).appendingPathComponent("analytics") }
    }

    public func run(on db: PostgresConnection) async throws -> PostgresRows {
        try await db.query(sql)
    }

    /// Rows as JSON-ready objects: integers as numbers, everything else (money included) as text.
    public static func objects(_ rows: PostgresRows) -> [[String: Any]] {
        let integerTypes: Set<UInt32> = [20, 21, 23]
        return rows.rows.map { row in
            var object: [String: Any] = [:]
            for (index, column) in rows.columns.enumerated() {
                guard let text = row[index] else { object[column.name] = NSNull(); continue }
                object[column.name] = integerTypes.contains(column.typeOID) ? (Int(text).map { $0 as Any } ?? text) : text
            }
            return object
        }
    }

    /// Rows as an aligned text table.
    public static func table(_ rows: PostgresRows) -> String {
        let headers = rows.columns.map(\.name)
        let cells = rows.rows.map { row in headers.indices.map { row[$0] ?? "" } }
        let widths = headers.indices.map { column in ([headers[column]] + cells.map { $0[column] }).map(\.count).max() ?? 0 }
        func line(_ values: [String]) -> String {
            zip(values, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }
        return ([line(headers), line(widths.map { String(repeating: "-", count: $0) })] + cells.map(line)).joined(separator: "\n")
    }
}
