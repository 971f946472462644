import Foundation
import Testing
@testable import Contract
@testable import KPIModel
@testable import StreamRuntime
@testable import WarehouseSink
@testable import KPIStore
@testable import DataGenerator
@testable import RedisWire
import RedisClient
import PostgresClient

@Suite struct ConfigurationTests {
    @Test func flagsBeatEnvironmentBeatsDefaults() {
        let environment = ["REDIS_URL": "redis://env:1/0", "DATABASE_URL": "postgresql://env/db"]
        let fromEnvironment = ServerConfiguration.resolve(environment: environment)
        #expect(fromEnvironment.redisURL == "redis://env:1/0")
        #expect(fromEnvironment.databaseURL == "postgresql://env/db")
        let fromFlags = ServerConfiguration.resolve(redisURL: "redis://flag:2/0", environment: environment)
        #expect(fromFlags.redisURL == "redis://flag:2/0")
        #expect(fromFlags.databaseURL == "postgresql://env/db")
        let defaults = ServerConfiguration.resolve(environment: ["REDIS_URL": ""])
        #expect(defaults == ServerConfiguration())
    }

    @Test func redactsPasswords() {
        #expect(ServerConfiguration.redact("postgresql://u:hunter2@h:5/db") == "postgresql://u:***@h:5/db")
        #expect(ServerConfiguration.redact("host=h password=hunter2 dbname=d") == "host=h password=*** dbname=d")
        #expect(ServerConfiguration.redact("postgresql://u@h/db") == "postgresql://u@h/db")
        // In the query string too, in any case, with other parameters around it.
        #expect(ServerConfiguration.redact("postgresql://u@h/db?password=hunter2") == "postgresql://u@h/db?password=***")
        #expect(ServerConfiguration.redact("postgresql://h/db?sslmode=require&PASSWORD=hunter2&application_name=x")
                == "postgresql://h/db?sslmode=require&PASSWORD=***&application_name=x")
        #expect(ServerConfiguration.redact("postgresql://u:a@b@h/db?sslpassword=k1") == "postgresql://u:***@h/db?sslpassword=***")
        #expect(ServerConfiguration.redact("host=h password='two words' user=u") == "host=h password=*** user=u")
        #expect(ServerConfiguration.redact("cannot connect to redis://:s3cret@h:1/0 (auth_token=abc)") == "cannot connect to redis://:***@h:1/0 (auth_token=***)")
        // Nothing else is touched.
        #expect(ServerConfiguration.redact("status=placed quantity=2 https://example.com/a?b=c") == "status=placed quantity=2 https://example.com/a?b=c")
    }
}

@Suite struct MigrationFileTests {
    @Test func parsesNumberedFileNames() {
        #expect(Migration.parseFileName("0001_pipeline_state.sql")! == (1, "pipeline_state"))
        #expect(Migration.parseFileName("12_x.sql")! == (12, "x"))
        for bad in ["README.md", "0001.sql", "_x.sql", "abc_x.sql", "0000_zero.sql", "0001_.sql", "0001_x.sql.bak"] {
            #expect(Migration.parseFileName(bad) == nil, "\(bad)")
        }
    }

    @Test func loadsInOrderAndRejectsDuplicateNumbers() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sw-migrations-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try "SELECT 2;".write(to: folder.appendingPathComponent("0002_b.sql"), atomically: true, encoding: .utf8)
        try "SELECT 1;".write(to: folder.appendingPathComponent("0001_a.sql"), atomically: true, encoding: .utf8)
        try "notes".write(to: folder.appendingPathComponent("README.md"), atomically: true, encoding: .utf8)
        let migrations = try Migration.load(from: folder.path)
        #expect(migrations.map(\.version) == [1, 2])
        #expect(migrations[0].name == "a")
        #expect(migrations[0].checksum.count == 40)
        try "SELECT 3;".write(to: folder.appendingPathComponent("02_c.sql"), atomically: true, encoding: .utf8)
        #expect(throws: MigrationError.self) { try Migration.load(from: folder.path) }
    }

    @Test func theProjectsOwnMigrationsLoad() throws {
        let migrations = try Migration.embedded()
        #expect(!migrations.isEmpty)
        #expect(migrations.map(\.version) == Array(1...migrations.count), "migrations are numbered 1, 2, 3… without gaps")
    }

    /// Every SQL file of `Sources/WarehouseSink/SQL` is embedded, byte for byte, and nothing else is:
    /// a file added to the folder but not to `EmbeddedSQL` fails here.
    @Test func theEmbeddedSQLIsTheFolders() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let folder = root.appendingPathComponent("Sources/WarehouseSink/SQL")
        for (subfolder, embedded) in [("", EmbeddedSQL.migrations), ("analytics", EmbeddedSQL.analytics)] {
            let path = folder.appendingPathComponent(subfolder).path
            let files = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".sql") }.sorted()
            #expect(files == embedded.map(\.file).sorted(), "embedded files of \(path)")
            for (file, text) in embedded {
                let onDisk = FileManager.default.contents(atPath: (path as NSString).appendingPathComponent(file))
                #expect(onDisk == Data(text.utf8), "\(file) differs from the embedded copy")
            }
        }
        #expect(try Migration.resolve(folder: nil, environment: [:]) == (try Migration.embedded()))
        #expect(try Migration.resolve(folder: folder.path, environment: [:]) == (try Migration.embedded()))
    }
}
