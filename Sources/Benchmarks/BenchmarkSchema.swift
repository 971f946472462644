public import PostgresClient
import WarehouseSink

/// A PostgreSQL schema of a benchmark's own: dropped if it is there, created, migrated.
public enum BenchmarkSchema {
    /// `base` with `schema` first on the search path.
    public static func url(_ base: String, schema: String) -> String {
        base + (base.contains("?") ? "&" : "?") + "options=-csearch_path%3D\(schema)"
    }

    /// Creates and migrates `schema`; returns its URL and a connection to it.
    public static func create(_ schema: String, databaseURL base: String) async throws -> (url: String, connection: PostgresConnection) {
        let admin = try await PostgresConnection(base)
        try await admin.executeScript("DROP SCHEMA IF EXISTS \(schema) CASCADE; CREATE SCHEMA \(schema)")
        let url = url(base, schema: schema)
        let connection = try await PostgresConnection(url)
        _ = try await Migrator(migrations: try Migration.embedded()).run(on: connection)
        return (url, connection)
    }
}
