import ArgumentParser
import Foundation
import PostgresClient
import WarehouseSink
import StreamRuntime

extension Warehouse {
    /// `warehouse migrate`: applies the numbered SQL files of sql/ that are not applied yet.
    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply the numbered SQL files in sql/ in order, each once, in a transaction.",
            discussion: "Safe to run twice and from several processes at once (an advisory lock serialises them)."
        )

        @OptionGroup var connection: ConnectionOptions

        @Option(help: "A migrations folder to apply instead of the ones built in (default: $WAREHOUSE_SQL_DIR, else the built-in ones).")
        var sqlDir: String?

        @Flag(help: "Print a JSON object instead of text.")
        var json = false

        func run() async throws {
            let migrations = try Migration.resolve(folder: sqlDir)
            let servers = connection.servers
            let postgres: PostgresConnection
            do {
                postgres = try await PostgresConnection(servers.databaseURL)
            } catch {
                throw CLIError("cannot connect to PostgreSQL at \(servers.redactedDatabaseURL): \(error)")
            }
            let report = try await Migrator(migrations: migrations).run(on: postgres)
            if json {
                printJSON(["applied": report.applied, "already_applied": report.alreadyApplied])
            } else {
                for version in report.applied {
                    let name = migrations.first { $0.version == version }?.name ?? "?"
                    print("applied \(String(format: "%04d", version)) \(name)")
                }
                print("migrations: \(report.applied.count) applied, \(report.alreadyApplied.count) already applied (\(Migration.overrideFolder(sqlDir) ?? "built in"))")
            }
        }
    }
}
