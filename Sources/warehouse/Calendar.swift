import ArgumentParser
import Contract
import Foundation
import PostgresClient
import StreamRuntime

extension Warehouse {
    /// `warehouse calendar …`: the business calendar (dim_dates).
    struct Calendar: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The business calendar (dim_dates): extend it ahead of today.",
            subcommands: [Extend.self])
    }
}

extension Warehouse.Calendar {
    struct Extend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make dim_dates cover today and the next --days-ahead days (the loader adds the days its events need; this keeps the calendar ahead of them for reports and joins).",
            discussion: "Idempotent: a calendar that already covers the range is left as it is (added 0). It stays one contiguous range.")

        @OptionGroup var connection: ConnectionOptions

        @Option(help: "Days after today (UTC) the calendar must cover.")
        var daysAhead = 400

        @Flag(help: #"Print {"added": n, "first": "YYYY-MM-DD", "last": "YYYY-MM-DD", "days": n}."#)
        var json = false

        func validate() throws {
            guard (0...36_500).contains(daysAhead) else { throw ValidationError("--days-ahead must be between 0 and 36500") }
        }

        func run() async throws {
            let postgres = try await PostgresConnection(connection.servers.databaseURL)
            let today = Timestamp.now.microseconds / 86_400_000_000
            let first = CivilDate.format(days: today)
            let last = CivilDate.format(days: today + Int64(daysAhead))
            let added = try await postgres.query("SELECT ensure_dim_dates($1::date, $2::date)", [.text(first), .text(last)])
            let range = try await postgres.query("SELECT min(date)::text, max(date)::text, count(*)::bigint FROM dim_dates")
            let row = range.first
            let result: [String: Any] = [
                "added": Int(added.first?[0] ?? "") ?? 0,
                "first": row?[0] ?? "", "last": row?[1] ?? "",
                "days": Int(row?[2] ?? "") ?? 0,
            ]
            if json {
                printJSON(result)
            } else {
                print("dim_dates covers \(result["first"]!) to \(result["last"]!) (\(result["days"]!) days; \(result["added"]!) added)")
            }
        }
    }
}
