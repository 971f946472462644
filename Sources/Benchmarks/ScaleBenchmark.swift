import Foundation
#if canImport(Glibc)
import Glibc
#endif
public import StreamRuntime
import Contract
import DataGenerator
import PostgresClient
import RedisClient
import RedisWire

/// `warehouse bench scale`: the whole pipeline at sizes a decade apart, each stage a real
/// `warehouse` process as a user runs it (so each has its own peak RSS, read exactly with
/// `wait4`):
///
/// 1. `replay --speed max` into a fresh namespace;
/// 2. `consume --group warehouse --until-drained` alone into a fresh schema, its progress sampled
///    every second (entries read by the group), so the first and the last tenth of the load can be
///    compared;
/// 3. `consume --group kpi --until-drained` alone over the same streams, then once more on the
///    drained streams: a restart (the state rebuilt from Redis, the merge stage started);
/// 4. end to end: a second fresh namespace and schema, both consumers started and left running,
///    then the replay; from its start until both groups have read everything and hold nothing
///    pending;
/// 5. the baseline, in the same window: a batched Python consumer (redis-py and psycopg,
///    `bench/python-baseline/consumer.py`) over the order-line streams of stage 1, with one and
///    two processes.
///
/// Then Redis's used_memory and the schema's size on disk. Sizes are order lines of
/// `warehouse generate` (about 3.2 events each).
public struct ScaleBenchmark: Sendable {
    public struct Stage: Sendable, Codable {
        public var events: Int
        public var seconds: Double
        public var eventsPerSecond: Double
        public var peakRSSMegabytes: Double
        /// Events/s over the first and the last tenth of the events (sampled every second).
        public var firstTenthEventsPerSecond: Double?
        public var lastTenthEventsPerSecond: Double?
        /// Seconds per event over the smallest size's.
        public var costVersusSmallest: Double?

        enum CodingKeys: String, CodingKey {
            case events, seconds
            case eventsPerSecond = "events_per_s"
            case peakRSSMegabytes = "peak_rss_mb"
            case firstTenthEventsPerSecond = "first_tenth_events_per_s"
            case lastTenthEventsPerSecond = "last_tenth_events_per_s"
            case costVersusSmallest = "cost_vs_smallest"
        }
    }

    public struct EndToEnd: Sendable, Codable {
        public var events: Int
        public var seconds: Double
        public var eventsPerSecond: Double
        public var loaderPeakRSSMegabytes: Double
        public var aggregatorPeakRSSMegabytes: Double
        public var replayPeakRSSMegabytes: Double
        enum CodingKeys: String, CodingKey {
            case events, seconds
            case eventsPerSecond = "events_per_s"
            case loaderPeakRSSMegabytes = "loader_peak_rss_mb"
            case aggregatorPeakRSSMegabytes = "aggregator_peak_rss_mb"
            case replayPeakRSSMegabytes = "replay_peak_rss_mb"
        }
    }

    /// A `consume --group kpi --until-drained` on drained streams: what a restart costs.
    public struct Restart: Sendable, Codable {
        public var seconds: Double
        public var peakRSSMegabytes: Double
        enum CodingKeys: String, CodingKey {
            case seconds
            case peakRSSMegabytes = "peak_rss_mb"
        }
    }

    public struct Baseline: Sendable, Codable {
        public var consumers: Int
        public var events: Int
        public var seconds: Double
        public var eventsPerSecond: Double
        enum CodingKeys: String, CodingKey {
            case consumers, events, seconds
            case eventsPerSecond = "events_per_s"
        }
    }

    public struct Size: Sendable, Codable {
        public var orderLines: Int
        public var events: Int
        public var replay: Stage
        public var loader: Stage
        public var aggregator: Stage
        public var aggregatorRestart: Restart
        /// nil when the live stage was left out (`--no-live`).
        public var endToEnd: EndToEnd?
        public var baseline: [Baseline]
        /// End to end events/s over the best baseline's.
        public var endToEndVersusBaseline: Double?
        public var redisUsedMemoryMegabytes: Double
        public var postgresMegabytes: Double

        enum CodingKeys: String, CodingKey {
            case events, replay, loader, aggregator, baseline
            case orderLines = "order_lines"
            case aggregatorRestart = "aggregator_restart"
            case endToEnd = "end_to_end"
            case endToEndVersusBaseline = "end_to_end_vs_baseline"
            case redisUsedMemoryMegabytes = "redis_used_memory_mb"
            case postgresMegabytes = "postgres_mb"
        }
    }

    public struct Result: Sendable, Codable {
        public var partitions: Int
        public var loaderWorkers: Int
        public var sizes: [Size]
        public var chart: String?
    }

    public var configuration: ServerConfiguration
    public var orderLines: [Int]
    public var partitions: Int
    /// Consumers in the loader process (`consume --workers`).
    public var loaderWorkers = 1
    /// The Python interpreter of a venv with the baseline's requirements (nil: no baseline).
    public var python: String?
    public var baselineScript: String
    /// Where the SVG chart goes (nil: none).
    public var chartPath: String?
    /// Whether stage 4 (both groups live on a second replay) runs: at 26 million events it is
    /// the longest stage, and the goals at that size are the other stages'.
    public var live = true

    public init(configuration: ServerConfiguration, orderLines: [Int], partitions: Int = 1, python: String?, baselineScript: String,
                chartPath: String?) {
        self.configuration = configuration
        self.orderLines = orderLines
        self.partitions = partitions
        self.python = python
        self.baselineScript = baselineScript
        self.chartPath = chartPath
    }

    public func run(progress: @escaping @Sendable (String) -> Void = { _ in }) async throws -> Result {
        let logs = (NSTemporaryDirectory() as NSString).appendingPathComponent("sw-bench-scale-\(getpid())")
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        progress("process logs in \(logs)")
        var sizes: [Size] = []
        for (index, lines) in orderLines.enumerated() {
            var size = try await measure(orderLines: lines, tag: "\(getpid())s\(index)", logs: logs, progress: progress)
            let smallest = sizes.first ?? size
            func cost(_ stage: Stage, _ base: Stage) -> Double { base.eventsPerSecond / stage.eventsPerSecond }
            size.replay.costVersusSmallest = cost(size.replay, smallest.replay)
            size.loader.costVersusSmallest = cost(size.loader, smallest.loader)
            size.aggregator.costVersusSmallest = cost(size.aggregator, smallest.aggregator)
            sizes.append(size)
        }
        var result = Result(partitions: partitions, loaderWorkers: loaderWorkers, sizes: sizes)
        if let chartPath {
            try Self.chart(sizes).write(toFile: chartPath, atomically: true, encoding: .utf8)
            result.chart = chartPath
        }
        return result
    }

    private func measure(orderLines: Int, tag: String, logs: String, progress: @escaping @Sendable (String) -> Void) async throws -> Size {
        let folder = try DataGenerator.benchmarkDataSet(orderLines: orderLines, name: "sw-bench-load-\(orderLines)", progress: progress)
        let first = StreamLayout(namespace: "swbenchscale\(tag)a", partitions: partitions)
        let second = StreamLayout(namespace: "swbenchscale\(tag)b", partitions: partitions)
        let schemas = ["sw_bench_scale_\(tag)a", "sw_bench_scale_\(tag)b"]
        // Cleaned up whether the stages succeed or fail (best effort: a failure to clean up leaves
        // keys and schemas under these names).
        do {
            let size = try await stages(orderLines: orderLines, folder: folder, first: first, second: second, schemas: schemas,
                                        tag: tag, logs: logs, progress: progress)
            await cleanUp([first, second], schemas: schemas)
            return size
        } catch {
            await cleanUp([first, second], schemas: schemas)
            throw error
        }
    }

    private func cleanUp(_ layouts: [StreamLayout], schemas: [String]) async {
        for layout in layouts { try? await KPIBenchmark.cleanUp(layout, url: configuration.redisURL) }
        if let admin = try? await PostgresConnection(configuration.databaseURL) {
            for schema in schemas { try? await admin.executeScript("DROP SCHEMA IF EXISTS \(schema) CASCADE") }
        }
    }

    private func stages(
        orderLines: Int, folder: String, first: StreamLayout, second: StreamLayout, schemas: [String], tag: String, logs: String,
        progress: @escaping @Sendable (String) -> Void
    ) async throws -> Size {
        let redis = try await RedisConnection(url: configuration.redisURL)
        let prefix = "\(orderLines) order lines"

        // 1. Replay.
        let replayChild = try ChildProcess(name: "\(tag)-replay", [ChildProcess.executable, "replay", "--data", folder, "--speed", "max",
                                                                   "--partitions", String(partitions), "--json"],
                                           environment: environment(first, schema: nil), logFolder: logs)
        let replayExit = try await replayChild.succeed()
        let events = try Self.publishedEvents(replayChild.stdout())
        let replay = Stage(events: events, seconds: replayExit.seconds, eventsPerSecond: Double(events) / replayExit.seconds,
                           peakRSSMegabytes: replayExit.peakRSSMegabytes)
        progress("\(prefix): replay \(events) events, \(Int(replay.eventsPerSecond)) events/s, peak RSS \(Int(replay.peakRSSMegabytes)) MB")
        let usedMemory = try await Self.usedMemory(redis)

        // 2. The loader alone.
        let (schemaURL, _) = try await BenchmarkSchema.create(schemas[0], databaseURL: configuration.databaseURL)
        let loader = try await consume(group: "warehouse", layout: first, schemaURL: schemaURL, events: events, tag: tag, logs: logs, redis: redis)
        progress("\(prefix): loader alone \(Int(loader.eventsPerSecond)) events/s (first tenth \(Int(loader.firstTenthEventsPerSecond ?? 0)), last tenth \(Int(loader.lastTenthEventsPerSecond ?? 0))), peak RSS \(Int(loader.peakRSSMegabytes)) MB")
        let postgresSize = try await Self.schemaMegabytes(schemas[0], databaseURL: configuration.databaseURL)

        // 3. The aggregator alone.
        let aggregator = try await consume(group: "kpi", layout: first, schemaURL: schemaURL, events: events, tag: tag, logs: logs, redis: redis)
        progress("\(prefix): aggregator alone \(Int(aggregator.eventsPerSecond)) events/s, peak RSS \(Int(aggregator.peakRSSMegabytes)) MB")
        let restartChild = try ChildProcess(name: "\(tag)-kpi-restart", [ChildProcess.executable, "consume", "--group", "kpi", "--until-drained",
                                                                         "--trim-every-ms", "0"],
                                            environment: environment(first, schema: schemaURL), logFolder: logs)
        let restartExit = try await restartChild.succeed()
        let restart = Restart(seconds: restartExit.seconds, peakRSSMegabytes: restartExit.peakRSSMegabytes)
        progress("\(prefix): aggregator restart \(String(format: "%.1f", restart.seconds)) s, peak RSS \(Int(restart.peakRSSMegabytes)) MB")

        // 5 (before 4, on stage 1's streams while they are there). The Python baseline.
        var baseline: [Baseline] = []
        if let python {
            for consumers in [1, 2] {
                let child = try ChildProcess(
                    name: "\(tag)-python-\(consumers)",
                    [python, baselineScript, "--redis-url", configuration.redisURL, "--database-url", schemaURL,
                     "--namespace", first.namespace, "--consumers", String(consumers)],
                    logFolder: logs)
                _ = try await child.succeed()
                let measured = try JSONDecoder().decode(Baseline.self, from: Data(child.stdout().utf8))
                baseline.append(measured)
                progress("\(prefix): Python baseline, \(consumers) consumer\(consumers == 1 ? "" : "s"): \(Int(measured.eventsPerSecond)) order-line events/s")
            }
        }
        try await KPIBenchmark.cleanUp(first, url: configuration.redisURL)

        // 4. End to end: both groups running, then the replay.
        var endToEnd: EndToEnd?
        if live {
            let (liveURL, _) = try await BenchmarkSchema.create(schemas[1], databaseURL: configuration.databaseURL)
            let measured = try await self.live(layout: second, schemaURL: liveURL, folder: folder, events: events, tag: tag, logs: logs, redis: redis)
            progress("\(prefix): end to end \(Int(measured.eventsPerSecond)) events/s, peak RSS loader \(Int(measured.loaderPeakRSSMegabytes)) MB, aggregator \(Int(measured.aggregatorPeakRSSMegabytes)) MB")
            endToEnd = measured
        }

        let best = baseline.map(\.eventsPerSecond).max()
        return Size(orderLines: orderLines, events: events, replay: replay, loader: loader, aggregator: aggregator,
                    aggregatorRestart: restart, endToEnd: endToEnd,
                    baseline: baseline, endToEndVersusBaseline: best.flatMap { best in endToEnd.map { $0.eventsPerSecond / best } },
                    redisUsedMemoryMegabytes: usedMemory, postgresMegabytes: postgresSize)
    }

    private func environment(_ layout: StreamLayout, schema url: String?) -> [String: String] {
        var environment = ["REDIS_URL": configuration.redisURL, "WAREHOUSE_NAMESPACE": layout.namespace]
        environment["DATABASE_URL"] = url ?? configuration.databaseURL
        return environment
    }

    private func workers(_ group: String) -> [String] {
        group == "warehouse" && loaderWorkers != 1 ? ["--workers", String(loaderWorkers)] : []
    }

    /// One group alone until drained, sampled every second.
    private func consume(
        group: String, layout: StreamLayout, schemaURL: String, events: Int, tag: String, logs: String, redis: RedisConnection
    ) async throws -> Stage {
        // No trimming: the next stages read the same streams.
        let child = try ChildProcess(name: "\(tag)-\(group)", [ChildProcess.executable, "consume", "--group", group, "--until-drained",
                                                                "--trim-every-ms", "0"] + workers(group),
                                     environment: environment(layout, schema: schemaURL), logFolder: logs)
        var samples: [(seconds: Double, read: Int)] = [(0, 0)]
        let sampler = Task {
            var local: [(seconds: Double, read: Int)] = []
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if let read = try? await Self.entriesRead(group: group, layout: layout, redis: redis) {
                    local.append(((ContinuousClock.now - child.started).seconds, read))
                }
            }
            return local
        }
        let exit = try await child.succeed()
        sampler.cancel()
        samples += await sampler.value
        samples.append((exit.seconds, events))
        let (first, last) = Self.tenths(samples, total: events)
        return Stage(events: events, seconds: exit.seconds, eventsPerSecond: Double(events) / exit.seconds, peakRSSMegabytes: exit.peakRSSMegabytes,
                     firstTenthEventsPerSecond: first, lastTenthEventsPerSecond: last)
    }

    /// Both groups running, then the replay; until both have read everything and hold nothing.
    private func live(
        layout: StreamLayout, schemaURL: String, folder: String, events: Int, tag: String, logs: String, redis: RedisConnection
    ) async throws -> EndToEnd {
        let environment = environment(layout, schema: schemaURL)
        // The layout first, so the consumers find it (as `replay` would write it).
        let loader = try ChildProcess(name: "\(tag)-live-warehouse", [ChildProcess.executable, "consume", "--group", "warehouse",
                                                                     "--partitions", String(partitions)] + workers("warehouse"),
                                      environment: environment, logFolder: logs)
        let aggregator = try ChildProcess(name: "\(tag)-live-kpi", [ChildProcess.executable, "consume", "--group", "kpi",
                                                                   "--partitions", String(partitions)],
                                          environment: environment, logFolder: logs)
        do {
            // Both groups exist on every stream, and the aggregator has had time to take its partitions.
            let deadline = ContinuousClock.now + .seconds(60)
            while try await !Self.groupsExist(["warehouse", "kpi"], layout: layout, redis: redis) {
                guard ContinuousClock.now < deadline else {
                    throw ChildProcess.Failure(description: "the consumers did not create their groups within 60 s:\n\(loader.stderrTail())\n\(aggregator.stderrTail())")
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            try await Task.sleep(for: .seconds(2))
            let start = ContinuousClock.now
            let replay = try await ChildProcess(name: "\(tag)-live-replay", [ChildProcess.executable, "replay", "--data", folder, "--speed", "max"],
                                                environment: environment, logFolder: logs).succeed()
            while try await !Self.drained(["warehouse", "kpi"], layout: layout, redis: redis) {
                for child in [loader, aggregator] where child.hasExited {
                    throw ChildProcess.Failure(description: "\(child.name) exited before the groups drained:\n\(child.stderrTail())")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            let seconds = (ContinuousClock.now - start).seconds
            loader.signal(SIGTERM)
            aggregator.signal(SIGTERM)
            let loaderExit = try await loader.succeed()
            let aggregatorExit = try await aggregator.succeed()
            return EndToEnd(events: events, seconds: seconds, eventsPerSecond: Double(events) / seconds,
                            loaderPeakRSSMegabytes: loaderExit.peakRSSMegabytes, aggregatorPeakRSSMegabytes: aggregatorExit.peakRSSMegabytes,
                            replayPeakRSSMegabytes: replay.peakRSSMegabytes)
        } catch {
            loader.signal(SIGKILL)
            aggregator.signal(SIGKILL)
            _ = await loader.wait()
            _ = await aggregator.wait()
            throw error
        }
    }

    // MARK: - Readings

    static func publishedEvents(_ output: String) throws -> Int {
        guard let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], let events = object["events"] as? Int else {
            throw ChildProcess.Failure(description: "replay printed no event count: \(output.prefix(300))")
        }
        return events
    }

    static func entriesRead(group: String, layout: StreamLayout, redis: RedisConnection) async throws -> Int {
        var total = 0
        for stream in layout.allStreams where try await redis.command("EXISTS", stream).int == 1 {
            total += try await redis.xinfoGroups(stream).first { $0.name == group }?.entriesRead ?? 0
        }
        return total
    }

    static func groupsExist(_ groups: [String], layout: StreamLayout, redis: RedisConnection) async throws -> Bool {
        for stream in layout.allStreams {
            guard try await redis.command("EXISTS", stream).int == 1 else { return false }
            let names = Set(try await redis.xinfoGroups(stream).map(\.name))
            guard groups.allSatisfy(names.contains) else { return false }
        }
        return true
    }

    static func drained(_ groups: [String], layout: StreamLayout, redis: RedisConnection) async throws -> Bool {
        let lags = try await LagMonitor.groupLags(layout.allStreams, on: redis)
        return lags.filter { groups.contains($0.group) }.allSatisfy { $0.lag == 0 && $0.pending == 0 }
    }

    static func usedMemory(_ redis: RedisConnection) async throws -> Double {
        let info = try await redis.command("INFO", "memory").string ?? ""
        let line = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("used_memory:") }
        return (line.flatMap { Double($0.dropFirst("used_memory:".count)) } ?? 0) / 1_048_576
    }

    static func schemaMegabytes(_ schema: String, databaseURL: String) async throws -> Double {
        let connection = try await PostgresConnection(databaseURL)
        let rows = try await connection.query(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')",
            [.text(schema)])
        return Double(rows.first?[0].flatMap(Int.init) ?? 0) / 1_048_576
    }

    /// Events/s over the first and the last tenth of `total`, from (seconds, events) samples,
    /// interpolated linearly between samples.
    static func tenths(_ samples: [(seconds: Double, read: Int)], total: Int) -> (Double?, Double?) {
        let sorted = samples.sorted { $0.seconds < $1.seconds }
        guard sorted.count >= 3, total > 0 else { return (nil, nil) }
        func time(at events: Double) -> Double {
            for (a, b) in zip(sorted, sorted.dropFirst()) where Double(b.read) >= events {
                if b.read == a.read { return b.seconds }
                return a.seconds + (b.seconds - a.seconds) * (events - Double(a.read)) / Double(b.read - a.read)
            }
            return sorted.last!.seconds
        }
        let tenth = Double(total) / 10
        let firstSeconds = time(at: tenth) - time(at: 0)
        let lastSeconds = time(at: Double(total)) - time(at: Double(total) - tenth)
        return (firstSeconds > 0 ? tenth / firstSeconds : nil, lastSeconds > 0 ? tenth / lastSeconds : nil)
    }

    // MARK: - Chart

    /// Events/s against size (both axes logarithmic), one line per stage.
    static func chart(_ sizes: [Size]) -> String {
        let series: [(String, String, [Double])] = [
            ("replay", "#4e79a7", sizes.map(\.replay.eventsPerSecond)),
            ("aggregator alone", "#f28e2b", sizes.map(\.aggregator.eventsPerSecond)),
            ("loader alone", "#e15759", sizes.map(\.loader.eventsPerSecond)),
            ("end to end (both groups live)", "#59a14f", sizes.map { $0.endToEnd?.eventsPerSecond ?? 0 }),
            ("Python baseline (best of 1, 2)", "#9c755f", sizes.map { $0.baseline.map(\.eventsPerSecond).max() ?? 0 }),
        ]
        let width = 760.0, height = 420.0, left = 80.0, right = 230.0, top = 30.0, bottom = 60.0
        let xs = sizes.map { log10(Double(max(1, $0.events))) }
        let values = series.flatMap(\.2).filter { $0 > 0 }
        let yLow = floor(log10(max(1, values.min() ?? 1000))), yHigh = ceil(log10(max(10, values.max() ?? 1_000_000)))
        let xLow = (xs.min() ?? 5) - 0.15, xHigh = (xs.max() ?? 6) + 0.15
        func x(_ value: Double) -> Double { left + (value - xLow) / max(0.01, xHigh - xLow) * (width - left - right) }
        func y(_ value: Double) -> Double { top + (yHigh - log10(value)) / max(0.01, yHigh - yLow) * (height - top - bottom) }
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="18" font-size="14">events/s against warehouse size (warehouse bench scale)</text>

            """
        var exponent = yLow
        while exponent <= yHigh {
            for factor in [1.0, 2.0, 5.0] {
                let value = factor * pow(10, exponent)
                guard log10(value) <= yHigh else { continue }
                let label = value >= 1000 ? "\(Int(value / 1000))k" : "\(Int(value))"
                svg += "<line x1=\"\(left)\" x2=\"\(width - right)\" y1=\"\(y(value))\" y2=\"\(y(value))\" stroke=\"#ddd\"/>"
                svg += "<text x=\"\(left - 6)\" y=\"\(y(value) + 4)\" text-anchor=\"end\">\(label)</text>\n"
            }
            exponent += 1
        }
        for (size, position) in zip(sizes, xs) {
            let label = size.events >= 1_000_000 ? String(format: "%.1fM", Double(size.events) / 1e6) : "\(size.events / 1000)k"
            svg += "<line x1=\"\(x(position))\" x2=\"\(x(position))\" y1=\"\(top)\" y2=\"\(height - bottom)\" stroke=\"#eee\"/>"
            svg += "<text x=\"\(x(position))\" y=\"\(height - bottom + 18)\" text-anchor=\"middle\">\(label) events</text>\n"
        }
        svg += "<text x=\"\((left + width - right) / 2)\" y=\"\(height - 14)\" text-anchor=\"middle\">events in the data set (log)</text>\n"
        svg += "<text x=\"18\" y=\"\((top + height - bottom) / 2)\" transform=\"rotate(-90 18 \((top + height - bottom) / 2))\" text-anchor=\"middle\">events/s (log)</text>\n"
        for (index, (name, color, points)) in series.enumerated() {
            let shown = zip(xs, points).filter { $0.1 > 0 }
            guard !shown.isEmpty else { continue }
            let path = shown.map { "\(x($0.0)),\(y($0.1))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(path)\"/>"
            for point in shown { svg += "<circle cx=\"\(x(point.0))\" cy=\"\(y(point.1))\" r=\"3\" fill=\"\(color)\"/>" }
            let legendY = top + 10 + Double(index) * 20
            svg += "<line x1=\"\(width - right + 15)\" x2=\"\(width - right + 35)\" y1=\"\(legendY)\" y2=\"\(legendY)\" stroke=\"\(color)\" stroke-width=\"2\"/>"
            svg += "<text x=\"\(width - right + 40)\" y=\"\(legendY + 4)\">\(name)</text>\n"
        }
        return svg + "</svg>\n"
    }
}
