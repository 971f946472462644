import ArgumentParser
import Foundation
import Contract
import DataGenerator

extension Warehouse {
    /// `warehouse generate`: a deterministic data set of any size in the input contract.
    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a deterministic data set in the input contract, with the sample's kinds of traps at realistic rates.")

        @Option(help: "Order lines to generate (orders hold 1-4 lines).")
        var orders: Int

        @Option(help: "Random seed: the same seed and options give the same files.")
        var seed: UInt64 = 1

        @Option(help: "The folder to write the six CSV files to (created if needed).")
        var out: String

        @Option(help: "Days the orders spread over.")
        var days = 730

        @Option(help: "The first instant (ISO-8601).")
        var start = "2023-01-01T00:00:00Z"

        func validate() throws {
            guard orders > 0 else { throw ValidationError("--orders must be positive") }
            guard days > 0 else { throw ValidationError("--days must be positive") }
            guard Timestamp(iso8601: start) != nil else { throw ValidationError("--start must be ISO-8601 with an offset") }
        }

        func run() async throws {
            var options = DataGenerator.Options(orders: orders, seed: seed)
            options.days = days
            options.start = start
            let summary = try DataGenerator(options: options).write(to: out)
            for entity in Entity.allCases {
                print("\(entity.fileName.padding(toLength: 25, withPad: " ", startingAt: 0)) \(summary.rows[entity.fileName] ?? 0) rows")
            }
            print("\(summary.orderLines) order lines in \(out)")
        }
    }
}
