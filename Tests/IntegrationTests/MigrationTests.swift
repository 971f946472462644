import Foundation
import PostgresClient
import Testing
import Contract
import KPIModel
import StreamRuntime
import WarehouseSink
import KPIStore
import DataGenerator
import RedisWire
import RedisClient
import Dashboard

@Suite struct MigrationTests {
    private func freshSchema() async throws -> (schema: String, url: String) {
        let schema = TestServers.unique("migrate")
        let admin = try await TestServers.postgres()
        try await admin.executeScript("CREATE SCHEMA \(schema)")
        return (schema, try TestServers.databaseURL(searchPath: schema))
    }

    private let migrations = [
        Migration(version: 1, name: "first", sql: "CREATE TABLE t1 (id int PRIMARY KEY); INSERT INTO t1 VALUES (1);"),
        Migration(version: 2, name: "second", sql: "CREATE TABLE t2 (id int); INSERT INTO t2 SELECT id + 1 FROM t1;"),
    ]

    @Test func appliesEachOnceInOrder() async throws {
        let (schema, url) = try await freshSchema()
        let connection = try await PostgresConnection(url)
        let first = try await Migrator(migrations: migrations).run(on: connection)
        #expect(first.applied == [1, 2])
        #expect(first.alreadyApplied == [])
        let second = try await Migrator(migrations: migrations).run(on: connection)
        #expect(second.applied == [])
        #expect(second.alreadyApplied == [1, 2])
        #expect(try await connection.query("SELECT id FROM t2").first?[0] == "2")
        let recorded = try await connection.query("SELECT version, name FROM \(schema).schema_migrations ORDER BY version")
        #expect(recorded.rows.map { $0[1] } == ["first", "second"])
    }

    @Test func failingMigrationRollsBackAndStops() async throws {
        let (_, url) = try await freshSchema()
        let connection = try await PostgresConnection(url)
        let broken = [
            migrations[0],
            Migration(version: 2, name: "broken", sql: "CREATE TABLE t3 (id int); SELECT * FROM no_such_table;"),
        ]
        await #expect(throws: PostgresError.self) { try await Migrator(migrations: broken).run(on: connection) }
        #expect(try await connection.query("SELECT to_regclass('t3') IS NULL").first?[0] == "t", "half a migration is never left")
        #expect(try await connection.query("SELECT count(*) FROM schema_migrations").first?[0] == "1")
        // The lock was released: a corrected run goes through.
        #expect(try await Migrator(migrations: migrations).run(on: connection).applied == [2])
    }

    @Test func editedMigrationIsRefused() async throws {
        let (_, url) = try await freshSchema()
        let connection = try await PostgresConnection(url)
        _ = try await Migrator(migrations: [migrations[0]]).run(on: connection)
        let edited = Migration(version: 1, name: "first", sql: "CREATE TABLE t1 (id bigint PRIMARY KEY);")
        await #expect(throws: MigrationError.self) { try await Migrator(migrations: [edited]).run(on: connection) }
    }

    @Test func concurrentMigratorsApplyEachMigrationOnce() async throws {
        let (schema, url) = try await freshSchema()
        let connections = try await withThrowingTaskGroup(of: PostgresConnection.self) { group in
            for _ in 0..<4 { group.addTask { try await PostgresConnection(url) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let reports = try await withThrowingTaskGroup(of: Migrator.Report.self) { group in
            for connection in connections {
                group.addTask { try await Migrator(migrations: migrations).run(on: connection) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(reports.flatMap(\.applied).sorted() == [1, 2])
        let admin = try await TestServers.postgres()
        #expect(try await admin.query("SELECT count(*) FROM \(schema).schema_migrations").first?[0] == "2")
        #expect(try await admin.query("SELECT count(*) FROM \(schema).t1").first?[0] == "1")
    }

    /// The SQL is in the binary: a copy of it alone in an empty folder, with no `WAREHOUSE_SQL_DIR`,
    /// migrates a fresh schema and runs an analytics report.
    @Test func migrateFromAnEmptyFolder() async throws {
        let (schema, url) = try await freshSchema()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sw-empty-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let binary = folder.appendingPathComponent("warehouse")
        try TestServers.copyExecutable(from: try TestServers.warehouseExecutable(), to: binary)
        let environment = ["DATABASE_URL": url, "WAREHOUSE_SQL_DIR": ""]
        let migrate = try await TestServers.run(binary, ["migrate", "--json"], environment: environment, stdin: nil, directory: folder)
        #expect(migrate.status == 0, "stderr: \(migrate.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(migrate.stdout.utf8)) as? [String: [Int]]
        #expect(json?["applied"] == (try Migration.embedded()).map(\.version))
        let admin = try await TestServers.postgres()
        #expect(try await admin.query("SELECT to_regclass($1) IS NOT NULL", [.text("\(schema).fact_sales")]).first?[0] == "t")
        let report = try await TestServers.run(binary, ["report", "monthly-revenue", "--json"], environment: environment, stdin: nil, directory: folder)
        #expect(report.status == 0, "stderr: \(report.stderr)")
        #expect(report.stdout.hasPrefix("["), "a JSON array of rows: \(report.stdout)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["warehouse"], "nothing else was needed or written")
    }

    /// `warehouse migrate` itself, twice at once from two processes, then once more.
    @Test func cliMigrateFromTwoProcesses() async throws {
        let (schema, url) = try await freshSchema()
        let environment = ["DATABASE_URL": url]
        async let first = TestServers.runWarehouse(["migrate", "--json"], environment: environment)
        async let second = TestServers.runWarehouse(["migrate", "--json"], environment: environment)
        let results = try await [first, second]
        for result in results {
            #expect(result.status == 0, "stderr: \(result.stderr)")
        }
        let projectMigrations = try Migration.embedded()
        let admin = try await TestServers.postgres()
        let count = try await admin.query("SELECT count(*) FROM \(schema).schema_migrations").first?[0]
        #expect(count == String(projectMigrations.count))
        let again = try await TestServers.runWarehouse(["migrate", "--json"], environment: environment)
        #expect(again.status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: [Int]]
        #expect(json?["applied"] == [])
        #expect(json?["already_applied"] == projectMigrations.map(\.version))
        #expect(try await admin.query("SELECT to_regclass($1) IS NOT NULL", [.text("\(schema).stream_positions")]).first?[0] == "t")
    }

    @Test func cliPingReportsBothServers() async throws {
        let result = try await TestServers.runWarehouse(["ping", "--json"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: [String: Any]]
        #expect(json?["redis"]?["ok"] as? Bool == true)
        #expect(json?["postgresql"]?["ok"] as? Bool == true)
        let down = try await TestServers.runWarehouse(["ping", "--redis-url", "redis://127.0.0.1:1/0"])
        #expect(down.status != 0, "ping fails when a server does not answer")
        #expect(down.stdout.contains("DOWN"))
    }
}
