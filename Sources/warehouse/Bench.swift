import ArgumentParser
import Foundation
import Pipeline

extension Warehouse {
    /// `warehouse bench …`: benchmarks that print figures (build with -c release first).
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Benchmarks that print their figures (run a release build).",
            subcommands: [Clients.self]
        )
    }
}

extension Warehouse.Bench {
    /// `warehouse bench clients`: the client libraries against the real servers.
    struct Clients: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pipelined XADD, XREADGROUP+XACK, COPY and unnest upserts against the configured servers."
        )

        @OptionGroup var connection: ConnectionOptions

        @Option(help: "Stream entries written and read per round.")
        var entries = 200_000

        @Option(help: "Rows per COPY round.")
        var copyRows = 200_000

        @Option(help: "Rows per upsert round (1000 per statement).")
        var upsertRows = 100_000

        @Option(help: "Rounds of each measurement; the median is printed.")
        var repeats = 3

        @Flag(help: "Print one JSON object instead of a table.")
        var json = false

        func validate() throws {
            guard entries > 0, copyRows > 0, upsertRows > 0, repeats > 0 else {
                throw ValidationError("counts and --repeats must be positive")
            }
        }

        func run() async throws {
            var options = ClientBenchmark.Options()
            options.streamEntries = entries
            options.copyRows = copyRows
            options.upsertRows = upsertRows
            options.repeats = repeats
            let benchmark = ClientBenchmark(configuration: connection.servers, options: options)
            let quiet = json
            let result = try await benchmark.run { line in
                if !quiet { FileHandle.standardError.write(Data(("  " + line + "\n").utf8)) }
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(result), as: UTF8.self))
            } else {
                print("""
                    bench clients (median of \(result.repeats))
                      XADD, 10 fields, pipelined 1000     \(format(result.xaddEntriesPerSecond)) entries/s
                      XREADGROUP COUNT 1000 + XACK        \(format(result.xreadgroupXackEntriesPerSecond)) entries/s
                      COPY, 11 columns, 3 indexes         \(format(result.copyRowsPerSecond)) rows/s
                      unnest upsert, fresh keys           \(format(result.upsertFreshRowsPerSecond)) rows/s
                      unnest upsert, all conflicting      \(format(result.upsertConflictRowsPerSecond)) rows/s
                    """)
            }
        }

        private func format(_ value: Double) -> String {
            let text = String(Int(value.rounded()))
            var grouped = ""
            for (index, character) in text.reversed().enumerated() {
                if index > 0 && index % 3 == 0 { grouped.append(",") }
                grouped.append(character)
            }
            let number = String(grouped.reversed())
            return String(repeating: " ", count: max(0, 10 - number.count)) + number
        }
    }
}
