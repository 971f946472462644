import Foundation
import PostgresClient
import RedisClient
import Testing
import Contract
import KPIModel
import StreamRuntime
import WarehouseSink
import KPIStore
import DataGenerator
import RedisWire
import Dashboard

/// Servers killed with -9 at random moments while both groups load a 200,000-event history, on
/// servers configured as a user runs them (Redis with the append-only file, `appendfsync
/// everysec`; PostgreSQL with `fsync` and `synchronous_commit` on). No consumer process may exit
/// on its own, and the warehouse and the KPIs must equal an uninterrupted run's.
///
/// `SW_FAULT_CYCLES` sets the kill-and-restart cycles per server (6 by default; the opt-in soak
/// in scripts/soak-faults.sh runs 20 or more).
@Suite(.serialized) struct ServerCrashTests {
    static var cycles: Int {
        ProcessInfo.processInfo.environment["SW_FAULT_CYCLES"].flatMap(Int.init) ?? 6
    }

    /// Redis killed with -9 and restarted from its append-only file, the file's tail cut off first
    /// (what a machine crash loses with `appendfsync everysec`), while the history is replayed and
    /// both groups load it; now and then a consumer is killed too while Redis is down. After the
    /// last restart `replay --resume` publishes again what the lost tail took away (its checkpoint
    /// lives in the same file, written after the entries it covers, so it never claims more than
    /// survived).
    @Test(.timeLimit(.minutes(15)))
    func redisKilledNineWithItsFileTailLost() async throws {
        let reference = try await ReferenceRun.shared.result()
        try await Self.withServers { redis, postgres in
            let namespace = TestServers.unique("swfr")
            var run = try await FaultRun.start(reference: reference, redis: redis, postgres: postgres, namespace: namespace)
            defer { run.killAll() }
            var lostBytes: [Int] = []
            for cycle in 0..<Self.cycles {
                try await Task.sleep(for: .milliseconds(Int.random(in: 1500...4000)))
                try await redis.killNine()
                lostBytes.append(try redis.cutAppendOnlyFileTail(upTo: 2 << 20))
                try await run.maybeKillAConsumer(cycle: cycle)
                try await Task.sleep(for: .milliseconds(Int.random(in: 1000...3000)))
                try await redis.startAgain()
                try run.checkNoConsumerExited(after: "Redis restart \(cycle + 1)")
                try run.resumeReplayIfItStopped()
            }
            try await run.finishReplay()
            try await run.drainAndCompare()
            #expect(lostBytes.contains { $0 > 0 }, "the append-only file's tail was cut at least once: \(lostBytes)")
            print("redis kill -9: \(Self.cycles) cycles, append-only file tail cut by \(lostBytes) bytes; replay runs: \(run.replayRuns)")
        }
    }

    /// PostgreSQL killed with -9 (every process of the server, as a power cut would) and restarted
    /// through crash recovery, while both groups load; now and then a consumer is killed too while
    /// PostgreSQL is down.
    @Test(.timeLimit(.minutes(15)))
    func postgresKilledNine() async throws {
        let reference = try await ReferenceRun.shared.result()
        try await Self.withServers { redis, postgres in
            let namespace = TestServers.unique("swfp")
            var run = try await FaultRun.start(reference: reference, redis: redis, postgres: postgres, namespace: namespace)
            defer { run.killAll() }
            for cycle in 0..<Self.cycles {
                try await Task.sleep(for: .milliseconds(Int.random(in: 1500...4000)))
                try await postgres.killNine()
                try await run.maybeKillAConsumer(cycle: cycle)
                try await Task.sleep(for: .milliseconds(Int.random(in: 1000...3000)))
                try await postgres.startAgain()
                try run.checkNoConsumerExited(after: "PostgreSQL restart \(cycle + 1)")
            }
            try await run.finishReplay()
            try await run.drainAndCompare()
            let recoveries = try String(contentsOfFile: postgres.directory + "/pg/postgres.log", encoding: .utf8)
                .components(separatedBy: "database system was interrupted").count - 1
            #expect(recoveries >= Self.cycles, "each restart went through crash recovery (\(recoveries) of \(Self.cycles))")
            print("postgres kill -9: \(Self.cycles) cycles, \(recoveries) crash recoveries")
        }
    }

    /// A durable Redis and PostgreSQL of the test's own, removed afterwards (also when it fails).
    static func withServers(_ body: (PrivateRedis, PrivatePostgres) async throws -> Void) async throws {
        let redis = try await PrivateRedis.start(durable: true)
        let postgres = try await PrivatePostgres.start(durable: true)
        do {
            try await body(redis, postgres)
        } catch {
            await redis.destroy()
            await postgres.destroy()
            throw error
        }
        await redis.destroy()
        await postgres.destroy()
    }
}

/// The uninterrupted run both fault tests compare with: the same generated history replayed and
/// loaded by both groups on the shared test servers, computed once.
actor ReferenceRun {
    static let shared = ReferenceRun()

    struct Result: Sendable {
        let folder: String
        let tables: [String: String]
        let kpis: KPISnapshot
        let deadLetters: Set<String>
    }

    private var cached: Result?

    func result() async throws -> Result {
        if let cached { return cached }
        let folder = "/tmp/" + TestServers.unique("sw-fault-data")
        try DataGenerator(options: DataGenerator.Options(orders: 64_000, seed: 41)).write(to: folder)
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swfref"))
        let events = try await TestServers.replay(folder, into: layout, redis: redis)
        #expect(events >= 195_000)
        let warehouse = try await WarehouseFixture.make()
        try await warehouse.load(layout, redis: redis, batch: 2000)
        try await KPITests.aggregate(layout, batch: 2000)
        let result = Result(
            folder: folder, tables: try await warehouse.checksums(),
            kpis: try await KPISnapshot.read(KPIKeys(layout: layout), on: redis),
            deadLetters: try await FaultRun.deadLetterSources(layout, redis: redis))
        cached = result
        return result
    }
}

/// One fault run: a replay with back-pressure (so it lasts as long as the load and kills land in
/// the middle of it) and one process of each group, on private servers.
struct FaultRun {
    let reference: ReferenceRun.Result
    let redis: PrivateRedis
    let postgres: PrivatePostgres
    let layout: StreamLayout
    let logs: String
    var environment: [String: String]
    var loader: Process
    var aggregator: Process
    var replay: Process
    var replayRuns = 1
    var started = 0

    static let consumerArguments = ["--batch", "500", "--block-ms", "100", "--min-idle-ms", "1000"]

    static func start(reference: ReferenceRun.Result, redis: PrivateRedis, postgres: PrivatePostgres, namespace: String) async throws -> FaultRun {
        let environment = ["REDIS_URL": redis.url, "DATABASE_URL": postgres.url]
        let migrated = try await TestServers.runWarehouse(["migrate"], environment: environment)
        try #require(migrated.status == 0, "\(migrated.stderr)")
        let logs = redis.directory + "-logs"
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        let layout = StreamLayout(namespace: namespace)
        let replay = try TestServers.startWarehouse(
            ["replay", "--data", reference.folder, "--namespace", namespace, "--max-lag", "20000"],
            environment: environment, stderrPath: logs + "/replay-1.log")
        var run = FaultRun(
            reference: reference, redis: redis, postgres: postgres, layout: layout, logs: logs, environment: environment,
            loader: replay, aggregator: replay, replay: replay)
        run.loader = try run.startConsumer("warehouse")
        run.aggregator = try run.startConsumer("kpi")
        return run
    }

    mutating func startConsumer(_ group: String) throws -> Process {
        started += 1
        var arguments = ["consume", "--group", group, "--namespace", layout.namespace] + Self.consumerArguments
        if group == "kpi" { arguments += ["--lease-ms", "2000"] }
        return try TestServers.startWarehouse(arguments, environment: environment, stderrPath: "\(logs)/\(group)-\(started).log")
    }

    /// On every other cycle, kills one consumer with -9 while the server is down and starts its
    /// replacement at once (so it starts against a server that is not there).
    mutating func maybeKillAConsumer(cycle: Int) async throws {
        guard cycle % 2 == 1 else { return }
        if cycle % 4 == 1 {
            kill(loader.processIdentifier, SIGKILL)
            await TestServers.waitForExit(loader)
            loader = try startConsumer("warehouse")
        } else {
            kill(aggregator.processIdentifier, SIGKILL)
            await TestServers.waitForExit(aggregator)
            aggregator = try startConsumer("kpi")
        }
    }

    /// Ends every process of the run (a failed test must not leave them running).
    func killAll() {
        for process in [loader, aggregator, replay] where process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    func checkNoConsumerExited(after moment: String) throws {
        for (name, process) in [("loader", loader), ("aggregator", aggregator)] where !process.isRunning {
            Issue.record("the \(name) exited (status \(process.terminationStatus)) by \(moment): \(tail(of: process))")
            throw CancellationError()
        }
    }

    /// A replay that stopped on a lost Redis is run again with `--resume`, as an operator would.
    mutating func resumeReplayIfItStopped() throws {
        guard !replay.isRunning, replay.terminationStatus != 0 else { return }
        replayRuns += 1
        replay = try TestServers.startWarehouse(
            ["replay", "--data", reference.folder, "--namespace", layout.namespace, "--max-lag", "20000", "--resume"],
            environment: environment, stderrPath: "\(logs)/replay-\(replayRuns).log")
    }

    /// Waits for the replay in progress, then runs `replay --resume` once more: after a crash that
    /// lost the tail of Redis's file, the checkpoint may be behind what the last run printed.
    /// A consumer that exits meanwhile fails the test at once: the replay would otherwise wait
    /// for its group (back-pressure) until the time limit.
    mutating func finishReplay() async throws {
        while replay.isRunning {
            try checkNoConsumerExited(after: "the replay's end")
            try await Task.sleep(for: .milliseconds(500))
        }
        await TestServers.waitForExit(replay)
        replayRuns += 1
        let final = try await TestServers.runWarehouse(
            ["replay", "--data", reference.folder, "--namespace", layout.namespace, "--resume"], environment: environment)
        try #require(final.status == 0, "replay --resume: \(final.stderr)")
    }

    /// Waits until both groups have read and acknowledged every entry, stops both consumers with
    /// SIGTERM (each must exit 0), and compares the warehouse, the KPIs and the dead letters with
    /// the uninterrupted run.
    func drainAndCompare() async throws {
        let connection = try await redis.connect()
        let deadline = ContinuousClock.now + .seconds(400)
        var drainedTwice = 0
        while drainedTwice < 2 {
            try checkNoConsumerExited(after: "the drain")
            try #require(ContinuousClock.now < deadline, "the groups did not drain in time")
            drainedTwice = try await Self.drained(layout, redis: connection) ? drainedTwice + 1 : 0
            try await Task.sleep(for: .milliseconds(500))
        }
        for process in [loader, aggregator] {
            kill(process.processIdentifier, SIGTERM)
            await TestServers.waitForExit(process)
            #expect(process.terminationReason == .exit && process.terminationStatus == 0, "\(tail(of: process))")
        }
        let warehouse = WarehouseFixture(schema: "public", url: postgres.url, postgres: try await PostgresConnection(postgres.url))
        let tables = try await warehouse.checksums()
        for (table, expected) in reference.tables.sorted(by: { $0.key < $1.key }) {
            #expect(tables[table] == expected, "\(table) differs from the uninterrupted run's")
        }
        let kpis = try await KPISnapshot.read(KPIKeys(layout: layout), on: connection)
        let differing = KPITests.differences(kpis, reference.kpis)
        #expect(differing.isEmpty, "KPIs that differ from the uninterrupted run's: \(differing.prefix(10))")
        #expect(try await Self.deadLetterSources(layout, redis: connection) == reference.deadLetters)
        let reconcile = try await TestServers.runWarehouse(["reconcile", "--json", "--namespace", layout.namespace], environment: environment)
        #expect(reconcile.status == 0, "\(reconcile.stdout) \(reconcile.stderr)")
    }

    /// Both groups exist on every stream with nothing pending and nothing left to read (decided by
    /// the entries themselves, not by Redis's `lag`, which a restart from the file can leave off).
    static func drained(_ layout: StreamLayout, redis: RedisConnection) async throws -> Bool {
        for key in layout.allStreams {
            let groups = try await redis.xinfoGroups(key).filter { ["warehouse", "kpi"].contains($0.name) }
            guard groups.count == 2 else { return false }
            for group in groups {
                if group.pending > 0 { return false }
                if try await LagMonitor.firstUndelivered(key, after: group.lastDeliveredID, on: redis) != nil { return false }
            }
        }
        return true
    }

    /// What the dead-letter stream holds, as stage and source line (a republished event gets a new
    /// entry id, but the same line of the same file).
    static func deadLetterSources(_ layout: StreamLayout, redis: RedisConnection) async throws -> Set<String> {
        Set(try await redis.xrange(layout.deadLetterKey).map { "\($0["stage"] ?? "") \($0["file"] ?? ""):\($0["line"] ?? "") \($0["code"] ?? "")" })
    }

    func tail(of process: Process) -> String {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: logs)) ?? []
        let name = process === loader ? "warehouse" : process === aggregator ? "kpi" : "replay"
        let newest = files.filter { $0.hasPrefix(name) }.sorted { $0.localizedStandardCompare($1) == .orderedAscending }.last
        let text = newest.flatMap { try? String(contentsOfFile: "\(logs)/\($0)", encoding: .utf8) } ?? ""
        return String(text.suffix(3000))
    }
}
