import ArgumentParser
import Foundation
import PostgresClient
import WarehouseSink
import StreamRuntime

extension Warehouse {
    /// `warehouse check`: data-quality checks over the star schema.
    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Data-quality checks: required values, referential integrity, SCD2 integrity, business rules, inferred members.",
            discussion: "Exits 1 when a hard check fails; soft checks only warn.")

        @OptionGroup var connection: ConnectionOptions

        @Flag(help: #"Print {"passed": bool, "checks": [{"name", "status", "value", "detail"}]}."#)
        var json = false

        func run() async throws {
            let postgres = try await PostgresConnection(connection.servers.databaseURL)
            let report = try await QualityChecks().run(on: postgres)
            if json {
                try printEncodedJSON(report)
            } else {
                for check in report.checks {
                    let status = check.status == .ok ? "ok  " : check.status == .warn ? "WARN" : "FAIL"
                    print("\(status)  \(check.name.padding(toLength: 38, withPad: " ", startingAt: 0)) \(String(check.value).padding(toLength: 7, withPad: " ", startingAt: 0)) \(check.status == .ok ? "" : check.detail)")
                }
                print(report.passed ? "passed" : "FAILED")
            }
            if !report.passed { throw ExitCode(1) }
        }
    }
}
