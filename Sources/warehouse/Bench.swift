import ArgumentParser
import Foundation
import Benchmarks
import StreamRuntime

extension Warehouse {
    /// `warehouse bench …`: benchmarks that print figures (build with -c release first).
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Benchmarks that print their figures (run a release build).",
            subcommands: [Clients.self, ReplayBench.self, LoadBench.self, KPIBench.self, DashboardBench.self, ClusterBench.self]
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
            try await runBenchmark(json: json, { progress in try await benchmark.run(progress: progress) }) { result in
                """
                    bench clients (median of \(result.repeats))
                      XADD, 10 fields, pipelined 1000     \(grouped(result.xaddEntriesPerSecond)) entries/s
                      XREADGROUP COUNT 1000 + XACK        \(grouped(result.xreadgroupXackEntriesPerSecond)) entries/s
                      COPY, 11 columns, 3 indexes         \(grouped(result.copyRowsPerSecond)) rows/s
                      unnest upsert, fresh keys           \(grouped(result.upsertFreshRowsPerSecond)) rows/s
                      unnest upsert, all conflicting      \(grouped(result.upsertConflictRowsPerSecond)) rows/s
                    """
            }
        }

    }
}

extension Warehouse.Bench {
    /// `warehouse bench replay`: parse+validate and replay throughput on a generated data set.
    struct ReplayBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "replay",
            abstract: "Parse+validate rows/s (one core), replay events/s (CSV to XADD, --speed max) and peak RSS on generated data.")

        @OptionGroup var connection: ConnectionOptions

        @Option(help: "Order lines in the generated set (it is kept in the temporary folder for the next run).")
        var orders = 1_000_000

        @Option(help: "Sort memory before spilling, in MiB.")
        var memoryMb = 256

        @Flag(help: "Print one JSON object.")
        var json = false

        func run() async throws {
            try await runBenchmark(json: json, { progress in try await ReplayBenchmark(configuration: connection.servers, orderLines: orders, memoryBudget: memoryMb << 20).run(progress: progress) }) { result in
                """
                    bench replay (\(result.orderLines) order lines, \(result.inputRows) input rows; Redis AOF \(result.redisAppendOnly ? "on" : "off"))
                      parse+validate, one core      \(Int(result.parseValidateRowsPerSecond)) rows/s
                      replay, CSV to XADD           \(Int(result.replayEventsPerSecond)) events/s overall, \(Int(result.replayPublishEventsPerSecond)) events/s while publishing
                      events published              \(result.events) in \(String(format: "%.1f", result.replaySeconds)) s, sort spilled \(result.spilledRuns) run(s)
                      peak RSS                      \(Int(result.peakRSSMegabytes)) MB
                    """
            }
        }
    }
}

extension Warehouse.Bench {
    /// `warehouse bench load`: the loader's throughput into PostgreSQL.
    struct LoadBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "load",
            abstract: "Loader events/s into an empty warehouse with 1, 2 and 4 consumers (median of 3 interleaved rounds), then with every row already there; peak RSS.")

        @OptionGroup var connection: ConnectionOptions

        @Option(help: "Order lines in the generated set (about 3.2 events each).")
        var orders = 330_000

        @Option(help: "Consumer counts to measure, comma-separated (each consumer its own Redis and PostgreSQL connections).")
        var consumers = "1,2,4"

        @Option(help: "Rounds; each measures every count once, in turn; the median is reported.")
        var runs = 3

        @Option(help: "Entries per XREADGROUP, per stream.")
        var batch = 2000

        @Flag(help: "Print one JSON object.")
        var json = false

        var counts: [Int] { consumers.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

        func validate() throws {
            guard !counts.isEmpty, counts.allSatisfy({ $0 >= 1 }), runs >= 1, batch >= 1 else {
                throw ValidationError("--consumers takes positive counts such as 1,2,4; --runs and --batch must be positive")
            }
        }

        func run() async throws {
            let benchmark = LoadBenchmark(configuration: connection.servers, orderLines: orders, consumers: counts, runs: runs, batch: batch)
            try await runBenchmark(json: json, { progress in try await benchmark.run(progress: progress) }) { result in
                var lines = ["bench load (\(result.events) events, batch \(result.batch), median of \(runs) interleaved rounds)"]
                for row in result.consumers {
                    let runs = row.runs.map { grouped($0, width: 0) }.joined(separator: ", ")
                    lines.append("  \(row.consumers) consumer\(row.consumers == 1 ? " " : "s")   \(grouped(row.medianEventsPerSecond)) events/s   "
                                 + String(format: "%.2f× one consumer", row.versusOne) + "   (runs: \(runs))")
                }
                lines.append("  every row already there, \(result.workers) consumers   \(grouped(result.existingRowsEventsPerSecond)) events/s")
                lines.append("  peak RSS                  \(Int(result.peakRSSMegabytes)) MB")
                return lines.joined(separator: "\n")
            }
        }
    }
}

extension Warehouse.Bench {
    /// `warehouse bench kpi`: the KPI aggregator.
    struct KPIBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "kpi",
            abstract: "KPI aggregator events/s from pre-filled streams; restart rebuild time; freshness under a steady producer; kpis read latency.")

        @OptionGroup var connection: ConnectionOptions

        @Option(help: "Order lines in the generated set (about 3.2 events each; the default gives over 1,000,000 events).")
        var orders = 330_000

        @Option(help: "Entries per XREADGROUP, per stream.")
        var batch = 2000

        @Option(help: "Producer rate for the freshness measurement, events/s.")
        var rate = 5000

        @Option(help: "Seconds the producer runs.")
        var seconds = 10.0

        @Option(help: "kpis reads timed.")
        var reads = 10_000

        @Flag(help: "Print one JSON object.")
        var json = false

        func validate() throws {
            guard orders > 0, batch > 0, rate > 0, seconds > 0, reads > 0 else { throw ValidationError("every figure must be positive") }
        }

        func run() async throws {
            let benchmark = KPIBenchmark(
                configuration: connection.servers, orderLines: orders, batch: batch, rate: rate, freshnessSeconds: seconds, reads: reads)
            try await runBenchmark(json: json, { progress in try await benchmark.run(progress: progress) }) { r in
                func ms(_ value: Double) -> String { String(format: "%.2f ms", value) }
                return """
                    bench kpi (\(r.events) events, batch \(r.batch); Redis AOF \(r.redisAppendOnly ? "on" : "off"))
                      aggregator, pre-filled streams    \(grouped(r.eventsPerSecond)) events/s
                      rebuild after a restart           \(String(format: "%.2f", r.rebuildSeconds)) s
                      freshness at \(r.freshness.rate)/s (\(r.freshness.events) events)  p50 \(ms(r.freshness.p50Milliseconds)), p99 \(ms(r.freshness.p99Milliseconds)), max \(ms(r.freshness.maxMilliseconds))
                      kpis read (\(r.kpisRead.reads) reads)          p50 \(String(format: "%.3f ms", r.kpisRead.p50Milliseconds)), p99 \(String(format: "%.3f ms", r.kpisRead.p99Milliseconds))
                      peak RSS                          \(Int(r.peakRSSMegabytes)) MB
                    """
            }
        }
    }
}

extension Warehouse.Bench {
    /// `warehouse bench dashboard`: /api/kpis under concurrent clients, and the same KPIs by SQL.
    struct DashboardBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dashboard",
            abstract: "/api/kpis p50/p99 and requests/s under concurrent keep-alive clients (0 errors expected); the same KPIs by SQL.",
            discussion: "The first run loads a generated warehouse into its own namespace and schema (replay, warehouse and kpi groups); later runs reuse it.")

        @OptionGroup var connection: ConnectionOptions

        @Option(help: "Order lines in the generated warehouse (about 3.2 events each).")
        var orders = 100_000

        @Option(help: "Concurrent keep-alive connections.")
        var connections = 50

        @Option(help: "Seconds of load.")
        var seconds = 10.0

        @Option(help: "Runs of the SQL summary.")
        var sqlRuns = 5

        @Flag(help: "Print one JSON object.")
        var json = false

        func validate() throws {
            guard orders > 0, connections > 0, seconds > 0, sqlRuns > 0 else { throw ValidationError("every figure must be positive") }
        }

        func run() async throws {
            var benchmark = DashboardBenchmark(servers: connection.servers)
            benchmark.orderLines = orders
            benchmark.connections = connections
            benchmark.seconds = seconds
            benchmark.sqlRuns = sqlRuns
            try await runBenchmark(json: json, { progress in try await benchmark.run(progress: progress) }) { r in
                func ms(_ l: DashboardBenchmark.Latency) -> String { String(format: "p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms", l.p50, l.p90, l.p99, l.max) }
                return """
                    bench dashboard (\(r.events) events in the warehouse)
                      /api/kpis, \(r.connections) connections, \(String(format: "%.1f", r.seconds)) s   \(grouped(r.requestsPerSecond)) requests/s, \(r.requests) requests, \(r.errors) errors
                        latency                        \(ms(r.latencyMilliseconds))
                      the same KPIs by SQL (\(r.sqlRuns) runs)  \(ms(r.sqlSummaryMilliseconds))
                    """
            }
        }
    }
}

/// Runs a benchmark: progress lines on stderr unless `json`, then the result as one JSON object or
/// as the text `describe` makes.
func runBenchmark<Result: Encodable & Sendable>(
    json: Bool, _ body: (@escaping @Sendable (String) -> Void) async throws -> Result, describe: (Result) -> String
) async throws {
    let result = try await body { line in
        if !json { FileHandle.standardError.write(Data(("  " + line + "\n").utf8)) }
    }
    if json { try printEncodedJSON(result) } else { print(describe(result)) }

}

extension Warehouse.Bench {
    /// `warehouse bench cluster`: replay, loader and aggregators on one Redis and on a cluster.
    struct ClusterBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cluster",
            abstract: "Events/s of replay, loader (2 consumers) and aggregators (2) on a single Redis vs a Redis Cluster, and freshness on the cluster.",
            discussion: "scripts/bench-cluster.sh starts both (a throwaway single Redis and 6-node cluster) and runs it. On one machine the cluster cannot be faster: it shows what it costs here and that the same code runs and stays exact.")

        @OptionGroup var connection: ConnectionOptions

        @Option(help: "The Redis Cluster's URL (any node, or a list of seed nodes).")
        var clusterURL: String

        @Option(help: "Order lines in the generated set (about 3.2 events each).")
        var orderLines = 60_000

        @Option(help: "Stream partitions.")
        var partitions = 4

        @Option(help: "Producer rate for the freshness measurement on the cluster, events/s.")
        var rate = 5000

        @Option(help: "Seconds the producer runs.")
        var seconds: Double = 10

        @Flag(help: "Print one JSON object.")
        var json = false

        func run() async throws {
            let servers = connection.servers
            let bench = ClusterBenchmark(single: servers.redisURL, cluster: clusterURL, databaseURL: servers.databaseURL,
                                         orderLines: orderLines, partitions: partitions, rate: rate, seconds: seconds)
            let result = try await bench.run { line in if !json { print(line) } }
            if json {
                try printEncodedJSON(result)
                return
            }
            print("")
            print("target    primaries    events   replay ev/s   loader ev/s   aggregators ev/s")
            for target in result.targets {
                print(target.name.padding(toLength: 10, withPad: " ", startingAt: 0)
                      + String(format: "%9d %9d %13.0f %13.0f %18.0f", target.primaries, target.events, target.replayEventsPerSecond,
                               target.loaderEventsPerSecond, target.aggregatorsEventsPerSecond))
            }
            if let freshness = result.targets.last?.freshness {
                print(String(format: "freshness on the cluster at %d events/s: p50 %.2f ms, p99 %.2f ms, max %.2f ms",
                             freshness.rate, freshness.p50Milliseconds, freshness.p99Milliseconds, freshness.maxMilliseconds))
            }
        }
    }
}
