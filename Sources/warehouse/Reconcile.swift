import ArgumentParser
import Foundation
import KPIStore
import PostgresClient
import RedisClient
import StreamRuntime

extension Warehouse {
    /// `warehouse reconcile`: Redis's KPIs against the same figures computed by SQL.
    struct Reconcile: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare the KPIs in Redis with the same figures computed from PostgreSQL; exit 1 on any drift.",
            discussion: """
                Every figure of the `report summary` shape is compared (money as exact decimals, to the cent). The two \
                consumer groups read the streams independently: --wait gives them time to catch up first (the lag and \
                pending entries of each group are printed with the result).
                """)

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var streams: StreamOptions

        @Option(help: "Stream partitions per entity (default: as recorded for the namespace, else 1; given, it must match the record).")
        var partitions: Int?

        @Option(help: "Seconds to wait for both groups to have no lag and nothing pending before comparing.")
        var wait: Double = 0

        @Flag(help: "Print JSON: {compared, drift: [{kpi, redis, postgres}], groups: [{group, lag, pending}]}.")
        var json = false

        func run() async throws {
            let servers = connection.servers
            let redis = try await RedisConnection(url: servers.redisURL)
            let postgres = try await PostgresConnection(servers.databaseURL)
            let result = try await Reconciliation.run(
                layout: try await streams.layout(partitions: partitions, record: false, command: "reconcile", on: redis), redis: redis, postgres: postgres, wait: .milliseconds(Int(wait * 1000)))
            if json {
                try printEncodedJSON(result)
            } else {
                let lag = result.groups.map { "\($0.group): lag \($0.lag), pending \($0.pending)" }.joined(separator: "; ")
                if result.isClean {
                    print("reconciled \(result.compared) KPIs: no drift (\(lag))")
                } else {
                    print("DRIFT in \(result.drift.count) of \(result.compared) KPIs (\(lag))")
                    let width = min(60, result.drift.map(\.kpi.count).max() ?? 0)
                    print("  " + "KPI".padding(toLength: width, withPad: " ", startingAt: 0) + "  redis            postgres")
                    for d in result.drift {
                        print("  " + d.kpi.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                              + (d.redis ?? "(none)").padding(toLength: 15, withPad: " ", startingAt: 0) + "  " + (d.postgres ?? "(none)"))
                    }
                }
            }
            if !result.isClean { throw ExitCode(1) }
        }
    }
}
