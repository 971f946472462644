import Foundation
import RedisWire
import StreamRuntime

/// One numbered SQL file (`Sources/WarehouseSink/SQL`, embedded in the binary): `0001_pipeline_state.sql`
/// is version 1, named `pipeline_state`.
public struct Migration: Sendable, Equatable {
    public var version: Int
    public var name: String
    public var sql: String
    /// SHA-1 of the file's text, to notice a migration edited after it was applied.
    public var checksum: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
        self.checksum = SHA1.hexDigest(Array(sql.utf8))
    }

    /// Parses a file name of the form `NNNN_name.sql`; nil for anything else.
    public static func parseFileName(_ fileName: String) -> (version: Int, name: String)? {
        guard fileName.hasSuffix(".sql") else { return nil }
        let stem = fileName.dropLast(4)
        guard let underscore = stem.firstIndex(of: "_") else { return nil }
        let digits = stem[..<underscore]
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let version = Int(digits), version > 0
        else { return nil }
        let name = stem[stem.index(after: underscore)...]
        guard !name.isEmpty else { return nil }
        return (version, String(name))
    }

    /// The migrations compiled into the binary, in version order.
    public static func embedded() throws -> [Migration] {
        try ordered(EmbeddedSQL.migrations.compactMap { file, text in
            parseFileName(file).map { Migration(version: $0.version, name: $0.name, sql: text) }
        })
    }

    /// The SQL folder that overrides the built-in SQL: `sqlDir` (`--sql-dir`), else a non-empty
    /// `$WAREHOUSE_SQL_DIR`; nil for the built-in SQL. Migrations and reports both follow it.
    public static func overrideFolder(_ sqlDir: String?, environment: [String: String]? = nil) -> String? {
        let environment = environment ?? ProcessInfo.processInfo.environment
        return sqlDir ?? environment[ServerConfiguration.Variable.sqlDirectory.rawValue].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The migrations to apply: those of the override folder when there is one
    /// (`overrideFolder`), else the embedded ones.
    public static func resolve(folder: String?, environment: [String: String]? = nil) throws -> [Migration] {
        if let folder = overrideFolder(folder, environment: environment) { return try load(from: folder) }
        return try embedded()
    }

    /// Reads every `NNNN_name.sql` file of `directory` (subfolders are not migrations), in version
    /// order. Two files with the same number are an error.
    public static func load(from directory: String) throws -> [Migration] {
        let files: [String]
        do {
            files = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw MigrationError("cannot read the migrations folder \(directory): \(error.localizedDescription)")
        }
        var migrations: [Migration] = []
        for file in files {
            guard let (version, name) = parseFileName(file) else { continue }
            let path = (directory as NSString).appendingPathComponent(file)
            guard let sql = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }) else {
                throw MigrationError("cannot read \(path)")
            }
            migrations.append(Migration(version: version, name: name, sql: sql))
        }
        return try ordered(migrations)
    }

    private static func ordered(_ migrations: [Migration]) throws -> [Migration] {
        let migrations = migrations.sorted { $0.version < $1.version }
        for (previous, next) in zip(migrations, migrations.dropFirst()) where previous.version == next.version {
            throw MigrationError("two migrations are numbered \(next.version): \(previous.name) and \(next.name)")
        }
        return migrations
    }
}

/// A migrations folder or history that cannot be applied as it stands.
public struct MigrationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
