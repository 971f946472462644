import ArgumentParser
import Foundation
import KPIModel
import PostgresClient
import WarehouseSink
import StreamRuntime

extension Warehouse {
    /// `warehouse report NAME`: analytics computed by SQL over the star schema.
    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Analytics from PostgreSQL: summary (the headline figures, the shape `kpis` prints from Redis) or a query of sql/analytics/.",
            discussion: "Reports: summary, monthly-revenue, customer-analysis, top-products, payment-analysis, inventory-status.")

        @OptionGroup var connection: ConnectionOptions

        @Argument(help: "The report: summary, or the name of a file in sql/analytics/ (monthly-revenue, top-products, …).")
        var name: String

        @Option(help: "A folder whose analytics/ holds the queries to run instead of the built-in ones (default: $WAREHOUSE_SQL_DIR, else the built-in ones).")
        var sqlDir: String?

        @Flag(help: "Print JSON.")
        var json = false

        @Option(help: #"With --json: write the JSON to this file instead (atomically: a reader never sees half of it; folders are created) and print {"output": path, "bytes": n}."#)
        var output: String?

        func validate() throws {
            if output != nil && !json { throw ValidationError("--output writes the JSON form: pass --json with it") }
        }

        /// Prints `body`, or (`--output`) writes it to a temporary file beside the target and renames it over it.
        func emit(_ body: Data) throws {
            guard let output else {
                print(String(decoding: body, as: UTF8.self))
                return
            }
            let target = URL(fileURLWithPath: output)
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            let temporary = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).\(getpid()).tmp")
            try (body + Data("\n".utf8)).write(to: temporary)
            guard rename(temporary.path, target.path) == 0 else {
                try? FileManager.default.removeItem(at: temporary)
                throw CLIError("cannot write \(output): \(String(cString: strerror(errno)))")
            }
            printJSON(["output": target.path, "bytes": body.count + 1] as [String: Any])
        }

        func run() async throws {
            let postgres = try await PostgresConnection(connection.servers.databaseURL)
            guard name == "summary" else {
                let report = try AnalyticsReport(name: name, folder: AnalyticsReport.overrideFolder(sqlDir))
                let rows = try await report.run(on: postgres)
                if json { try emit(JSONSerialization.data(withJSONObject: AnalyticsReport.objects(rows), options: [.sortedKeys])) } else { print(AnalyticsReport.table(rows)) }
                return
            }
            let summary = try await Summary.fromWarehouse(postgres)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                try emit(encoder.encode(summary))
                return
            }
            print("revenue \(summary.revenue.total) over \(summary.revenue.lines) lines")
            for (month, amount) in summary.revenue.byMonth.sorted(by: { $0.key < $1.key }) { print("  \(month)  \(amount)") }
            print("by segment (as was) " + summary.revenue.bySegmentAsWas.sorted(by: { $0.key < $1.key }).map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            print("by segment (as is)  " + summary.revenue.bySegmentAsIs.sorted(by: { $0.key < $1.key }).map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            print("by category         " + summary.revenue.byCategoryAsWas.sorted(by: { $0.key < $1.key }).map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            print("top products        " + summary.topProducts.prefix(5).map { "\($0.productID) \($0.revenue)" }.joined(separator: ", "))
            print("lines by status     " + summary.linesByStatus.sorted(by: { $0.key < $1.key }).map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            print("payments by method  " + summary.payments.byMethod.sorted(by: { $0.key < $1.key }).map { "\($0.key) \($0.value.count)×\($0.value.amount)" }.joined(separator: ", "))
            print("inventory on hand   \(summary.inventory.totalOnHand)")
            let c = summary.counts
            print("counts              orders \(c.orders), lines \(c.orderLines), customers \(c.customers), products \(c.products), suppliers \(c.suppliers), payments \(c.payments), movements \(c.movements)")
        }
    }
}
