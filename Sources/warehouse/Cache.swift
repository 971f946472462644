import ArgumentParser
import Dashboard
import Foundation
import RedisClient
import RedisWire
import StreamRuntime
import WarehouseSink

extension Warehouse {
    /// `warehouse cache …`: the analytics cache the dashboard's API answers from.
    struct Cache: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The dashboard's analytics cache (answers from PostgreSQL kept in Redis until the loader commits again).",
            subcommands: [Warm.self])
    }
}

extension Warehouse.Cache {
    struct Warm: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compute every analytics report (or those named) into the cache, so the next dashboard reader is answered from Redis.",
            discussion: """
                A report already cached at the current generation is left as it is (hit: true). An answer lives until the \\
                warehouse loader commits again, or --ttl-s at most.
                """)

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var streams: StreamOptions

        @Argument(help: "Reports to warm (default: all of them).")
        var reports: [String] = []

        @Option(help: "Seconds a warmed answer may live without a loader commit.")
        var ttlS = 3600

        @Option(help: "A folder whose analytics/ holds the queries to run instead of the built-in ones (default: $WAREHOUSE_SQL_DIR).")
        var sqlDir: String?

        @Flag(help: #"Print {"warmed": [{"report", "hit", "rows", "generation"}]}."#)
        var json = false

        func validate() throws {
            guard ttlS >= 1 else { throw ValidationError("--ttl-s must be positive") }
            for report in reports where AnalyticsCache.reports[report] == nil {
                throw ValidationError("no analytics report \(report): known are \(AnalyticsCache.reports.keys.sorted().joined(separator: ", "))")
            }
        }

        func run() async throws {
            let redis = try await connectRedis(connection)
            let cache = AnalyticsCache(
                layout: streams.layout(), folder: AnalyticsReport.overrideFolder(sqlDir),
                databaseURL: connection.servers.databaseURL, ttl: .seconds(ttlS))
            var warmed: [[String: Any]] = []
            for name in reports.isEmpty ? AnalyticsCache.reports.keys.sorted() : reports {
                let started = ContinuousClock.now
                let answer = try await cache.answer(name, redis: redis)
                let body = (try? JSONSerialization.jsonObject(with: Data(answer.body))) as? [String: Any] ?? [:]
                let rows = (body["rows"] as? [Any])?.count ?? 0
                let seconds = (ContinuousClock.now - started).seconds
                warmed.append(["report": name, "hit": answer.hit, "rows": rows, "generation": body["generation"] ?? 0,
                               "seconds": (seconds * 1000).rounded() / 1000])
                if !json { print("\(name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(answer.hit ? "already cached" : "computed") \(rows) rows in \(String(format: "%.3f", seconds)) s") }
            }
            if json { printJSON(["warmed": warmed]) }
        }
    }
}
