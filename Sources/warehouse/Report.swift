import ArgumentParser
import Foundation
import Pipeline
import PostgresClient

extension Warehouse {
    /// `warehouse report NAME`: analytics computed by SQL over the star schema.
    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Analytics from PostgreSQL. summary: the headline figures (the shape `kpis` prints from Redis).")

        @OptionGroup var connection: ConnectionOptions

        @Argument(help: "The report: summary.")
        var name: String

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            guard name == "summary" else { throw ValidationError("unknown report \(name) (known: summary)") }
        }

        func run() async throws {
            let postgres = try await PostgresConnection(connection.servers.databaseURL)
            let summary = try await Summary.fromWarehouse(postgres)
            if json {
                try printEncodedJSON(summary)
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
