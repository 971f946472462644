import ArgumentParser
import Foundation
import Benchmarks
import StreamRuntime

extension Warehouse {
    /// `warehouse bench …`: benchmarks that print figures (build with -c release first).
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Benchmarks that print their figures (run a release build).",
            subcommands: [Clients.self, ReplayBench.self, LoadBench.self, KPIBench.self, DashboardBench.self, ClusterBench.self, ScaleBench.self]
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

        @Option(help: "Requests/s of the open-loop run after the closed-loop one (0: none).")
        var rate = 10_000

        @Flag(help: "Print one JSON object.")
        var json = false

        func validate() throws {
            guard orders > 0, connections > 0, seconds > 0, sqlRuns > 0, rate >= 0 else { throw ValidationError("every figure must be positive") }
        }

        func run() async throws {
            var benchmark = DashboardBenchmark(servers: connection.servers)
            benchmark.orderLines = orders
            benchmark.connections = connections
            benchmark.seconds = seconds
            benchmark.sqlRuns = sqlRuns
            benchmark.openLoopRate = rate
            try await runBenchmark(json: json, { progress in try await benchmark.run(progress: progress) }) { r in
                func ms(_ l: DashboardBenchmark.Latency) -> String { String(format: "p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms", l.p50, l.p90, l.p99, l.max) }
                return """
                    bench dashboard (\(r.events) events in the warehouse)
                      /api/kpis, \(r.connections) connections, \(String(format: "%.1f", r.seconds)) s   \(grouped(r.requestsPerSecond)) requests/s, \(r.requests) requests, \(r.errors) errors
                        latency                        \(ms(r.latencyMilliseconds))
                    \(r.openLoop.map { o in "  /api/kpis, open loop at \(grouped(Double(o.rate), width: 0)) requests/s   \(grouped(o.achievedPerSecond, width: 0)) achieved, \(o.errors) errors\n    latency (from the scheduled send)  \(ms(o.latencyMilliseconds))\n" } ?? "")  the same KPIs by SQL (\(r.sqlRuns) runs)  \(ms(r.sqlSummaryMilliseconds))
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

extension Warehouse.Bench {
    /// `warehouse bench scale`: every stage, as separate processes, at sizes a decade apart.
    struct ScaleBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "scale",
            abstract: "Replay, the loader alone, the aggregator alone and both live, at sizes a decade apart, beside a batched Python consumer.",
            discussion: """
                Each stage runs this executable as a user would (replay --speed max; consume --until-drained), in a fresh \
                namespace and schema, and reports events/s, the cost per event against the smallest size, the first and the \
                last tenth of each group's run, peak RSS (wait4), Redis used_memory and the schema's size. The baseline \
                (bench/python-baseline/consumer.py) runs in the same window when --python names an interpreter with its \
                requirements; scripts/bench.sh scale makes that venv.
                """)

        @OptionGroup var connection: ConnectionOptions

        @Option(help: "Sizes, in order lines of `warehouse generate` (about 3.2 events each), comma-separated.")
        var orderLines = "82000,820000"

        @Flag(help: "Add the largest size, 8,200,000 order lines (about 26 million events; an hour or more).")
        var large = false

        @Option(help: "Stream partitions.")
        var partitions = 1

        @Flag(name: .customLong("no-live"), help: "Leave out the end-to-end stage (both groups live on a second replay), the longest at 26 million events.")
        var noLive = false

        @Option(help: "Consumers in the loader process (consume --workers).")
        var loaderWorkers = 1

        @Option(help: "The Python interpreter for the baseline (default: $SW_BENCH_PYTHON; none: no baseline).")
        var python: String?

        @Option(help: "Write an SVG chart of events/s against size here.")
        var chart: String?

        @Flag(help: "Print one JSON object.")
        var json = false

        func validate() throws {
            guard !sizes.isEmpty, sizes.allSatisfy({ $0 > 0 }) else { throw ValidationError("--order-lines takes positive counts, comma-separated") }
            guard partitions > 0 else { throw ValidationError("--partitions must be positive") }
        }

        var sizes: [Int] {
            orderLines.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")) }
                + (large ? [8_200_000] : [])
        }

        func run() async throws {
            let interpreter = python ?? ProcessInfo.processInfo.environment["SW_BENCH_PYTHON"]
            let script = locateFolder("bench") + "/python-baseline/consumer.py"
            var bench = ScaleBenchmark(configuration: connection.servers, orderLines: sizes, partitions: partitions,
                                       python: interpreter, baselineScript: script, chartPath: chart)
            bench.loaderWorkers = loaderWorkers
            bench.live = !noLive
            try await runBenchmark(json: json, { progress in
                if interpreter == nil { progress("no baseline: give --python (a venv with bench/python-baseline/requirements.txt)") }
                return try await bench.run(progress: progress)
            }) { result in Self.table(result) }
        }

        static func table(_ result: ScaleBenchmark.Result) -> String {
            func rate(_ value: Double?) -> String { value.map { grouped($0, width: 0) } ?? "-" }
            func cost(_ value: Double?) -> String { value.map { String(format: "%.2f×", $0) } ?? "-" }
            var lines = ["bench scale (\(result.partitions) partition\(result.partitions == 1 ? "" : "s"), \(result.loaderWorkers) loader consumer\(result.loaderWorkers == 1 ? "" : "s"); events/s; cost = seconds per event over the smallest size's)"]
            for size in result.sizes {
                lines.append("")
                lines.append("\(grouped(Double(size.events))) events (\(grouped(Double(size.orderLines))) order lines)")
                lines.append("  replay                 \(rate(size.replay.eventsPerSecond).padded(10))   cost \(cost(size.replay.costVersusSmallest))   peak RSS \(Int(size.replay.peakRSSMegabytes)) MB")
                lines.append("  loader alone           \(rate(size.loader.eventsPerSecond).padded(10))   cost \(cost(size.loader.costVersusSmallest))   first tenth \(rate(size.loader.firstTenthEventsPerSecond)), last tenth \(rate(size.loader.lastTenthEventsPerSecond))   peak RSS \(Int(size.loader.peakRSSMegabytes)) MB")
                lines.append("  aggregator alone       \(rate(size.aggregator.eventsPerSecond).padded(10))   cost \(cost(size.aggregator.costVersusSmallest))   first tenth \(rate(size.aggregator.firstTenthEventsPerSecond)), last tenth \(rate(size.aggregator.lastTenthEventsPerSecond))   peak RSS \(Int(size.aggregator.peakRSSMegabytes)) MB")
                lines.append("  aggregator restart     \(String(format: "%.1f s", size.aggregatorRestart.seconds).padded(10))   peak RSS \(Int(size.aggregatorRestart.peakRSSMegabytes)) MB")
                if let live = size.endToEnd {
                    lines.append("  end to end, both live  \(rate(live.eventsPerSecond).padded(10))   peak RSS loader \(Int(live.loaderPeakRSSMegabytes)) MB, aggregator \(Int(live.aggregatorPeakRSSMegabytes)) MB, replay \(Int(live.replayPeakRSSMegabytes)) MB")
                } else {
                    lines.append("  end to end, both live  (left out: --no-live)")
                }
                for baseline in size.baseline {
                    lines.append("  Python, \(baseline.consumers) consumer\(baseline.consumers == 1 ? " " : "s")     \(rate(baseline.eventsPerSecond).padded(10))   (order-line events only: one table, no SCD2)")
                }
                if let ratio = size.endToEndVersusBaseline {
                    lines.append(String(format: "  end to end / best Python: %.2f×", ratio))
                }
                lines.append(String(format: "  Redis used_memory after replay %.0f MB; warehouse schema %.0f MB", size.redisUsedMemoryMegabytes, size.postgresMegabytes))
            }
            if let chart = result.chart { lines.append(""); lines.append("chart: \(chart)") }
            return lines.joined(separator: "\n")
        }
    }
}

extension String {
    /// Right-aligned in `width` characters.
    fileprivate func padded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
