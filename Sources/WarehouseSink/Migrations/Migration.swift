import Foundation
import RedisClient
import Contract
import KPIModel
import StreamRuntime
import RedisWire
import PostgresClient

/// One numbered SQL file of `sql/`: `0001_pipeline_state.sql` is version 1, named `pipeline_state`.
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
        migrations.sort { $0.version < $1.version }
        for (previous, next) in zip(migrations, migrations.dropFirst()) where previous.version == next.version {
            throw MigrationError("two migrations are numbered \(next.version): \(previous.name) and \(next.name)")
        }
        return migrations
    }

    /// Finds the `sql/` folder: `$WAREHOUSE_SQL_DIR`, then `./sql`, then a `sql/` beside or above
    /// the executable (so `.build/release/warehouse` run from anywhere finds the checkout's).
    public static func locateDirectory(environment: [String: String]? = nil) -> String? {
        let environment = environment ?? ProcessInfo.processInfo.environment
        let manager = FileManager.default
        if let explicit = environment[ServerConfiguration.Variable.sqlDirectory.rawValue], !explicit.isEmpty {
            return explicit
        }
        let local = (manager.currentDirectoryPath as NSString).appendingPathComponent("sql")
        if isMigrationFolder(local) { return local }
        let executable = (try? manager.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var folder = (executable as NSString).deletingLastPathComponent
        while folder.count > 1 {
            let candidate = (folder as NSString).appendingPathComponent("sql")
            if isMigrationFolder(candidate) { return candidate }
            folder = (folder as NSString).deletingLastPathComponent
        }
        return nil
    }

    private static func isMigrationFolder(_ path: String) -> Bool {
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: path) else { return false }
        return files.contains { parseFileName($0) != nil }
    }
}

/// A migrations folder or history that cannot be applied as it stands.
public struct MigrationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
