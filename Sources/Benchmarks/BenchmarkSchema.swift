public import PostgresClient
import Contract
import StreamRuntime
import WarehouseSink
import KPIStore
import Dashboard
import DataGenerator
import RedisWire
import RedisClient

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
        guard let folder = Migration.locateDirectory() else { throw MigrationError("no sql/ folder found (set WAREHOUSE_SQL_DIR)") }
        _ = try await Migrator(migrations: try Migration.load(from: folder)).run(on: connection)
        return (url, connection)
    }
}
