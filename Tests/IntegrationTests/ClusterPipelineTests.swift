import Foundation
import PostgresClient
import RedisClient
import Testing
import Contract
import KPIModel
import StreamRuntime
import WarehouseSink
import KPIStore
import RedisWire

/// The whole pipeline on a real 6-node Redis Cluster (3 primaries, 3 replicas, AOF on): the
/// sample, and a generated history of 203,454 events in 4 partitions loaded by two loader
/// processes and two aggregator processes while a primary is killed with -9, a third aggregator
/// joins, one of the first two is killed with -9, and another primary is taken over (CLUSTER
/// FAILOVER TAKEOVER). The consumers follow the new topology by themselves and the partitions move
/// to the aggregators alive; at the end nothing is pending, the tables equal the single-node
/// load's checksums, the KPIs and the dead letters equal it, and `reconcile` exits 0.
@Suite(.serialized) struct ClusterPipelineTests {
    @Test(.timeLimit(.minutes(5)))
    func theSampleOnAClusterGivesTheExpectedAnswers() async throws {
        let cluster = try await PrivateCluster.start()
        let postgres = try await PrivatePostgres.start()
        defer { Task { await cluster.destroy(); await postgres.destroy() } }
        let environment = ["REDIS_URL": cluster.oneNodeURL, "DATABASE_URL": postgres.url]
        let namespace = TestServers.unique("swcs")
        for arguments in [["migrate"], ["replay", "--namespace", namespace, "--partitions", "8"],
                          ["consume", "--group", "warehouse", "--namespace", namespace, "--until-drained", "--block-ms", "100"],
                          ["consume", "--group", "kpi", "--namespace", namespace, "--until-drained", "--block-ms", "100"]] {
            let run = try await TestServers.runWarehouse(arguments, environment: environment)
            try #require(run.status == 0, "\(arguments.joined(separator: " ")): \(run.stderr)")
        }
        let redis = try await cluster.connect()
        let layout = StreamLayout(namespace: namespace, partitions: 8)
        // The streams really are spread over the three primaries.
        var nodes = Set<String>()
        for partition in 0..<8 { nodes.insert(try await redis.node(of: layout.streamKey(.orders, partition: partition))) }
        #expect(nodes.count == 3, "\(nodes)")
        let kpis = try await KPISnapshot.read(KPIKeys(layout: layout), on: redis)
        #expect(kpis.summary == (try KPITests.expectedSummary))
        let reconcile = try await TestServers.runWarehouse(["reconcile", "--json", "--namespace", namespace], environment: environment)
        #expect(reconcile.status == 0, "\(reconcile.stdout) \(reconcile.stderr)")
        // Every later command reads the recorded layout; a different one refuses.
        let wrong = try await TestServers.runWarehouse(["lag", "--namespace", namespace, "--partitions", "4"], environment: environment)
        #expect(wrong.status != 0 && wrong.stderr.contains("laid out in 8 partition(s)"), "\(wrong.stderr)")
    }

    @Test(.timeLimit(.minutes(12)))
    func loadersAndAggregatorsFollowFailoversAndMembershipChanges() async throws {
        let reference = try await ReferenceRun.shared.result()
        let cluster = try await PrivateCluster.start()
        let postgres = try await PrivatePostgres.start()
        var processes: [Process] = []
        defer {
            for process in processes where process.isRunning { kill(process.processIdentifier, SIGKILL) }
            Task { await cluster.destroy(); await postgres.destroy() }
        }
        let environment = ["REDIS_URL": cluster.url, "DATABASE_URL": postgres.url]
        let namespace = TestServers.unique("swcf")
        let layout = StreamLayout(namespace: namespace, partitions: 4)
        let logs = cluster.directory + "-logs"
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        let migrated = try await TestServers.runWarehouse(["migrate"], environment: environment)
        try #require(migrated.status == 0, "\(migrated.stderr)")

        let replayArguments = ["replay", "--data", reference.folder, "--namespace", namespace, "--partitions", "4", "--max-lag", "20000"]
        var replay = try TestServers.startWarehouse(replayArguments, environment: environment, stderrPath: logs + "/replay-1.log")
        processes.append(replay)
        var consumers: [(name: String, process: Process)] = []
        let consumerArguments = ["--namespace", namespace, "--partitions", "4", "--batch", "500", "--block-ms", "100", "--min-idle-ms", "2000"]
        func start(_ group: String, _ index: Int) throws {
            // One loader names a single node: it finds the rest of the cluster by itself.
            let url = index == 1 ? cluster.oneNodeURL : cluster.url
            let process = try TestServers.startWarehouse(
                ["consume", "--group", group] + consumerArguments + (group == "kpi" ? ["--lease-ms", "3000"] : []),
                environment: ["REDIS_URL": url, "DATABASE_URL": postgres.url], stderrPath: "\(logs)/\(group)-\(index).log")
            consumers.append(("\(group)-\(index)", process))
            processes.append(process)
        }
        for (index, group) in ["warehouse", "warehouse", "kpi", "kpi"].enumerated() { try start(group, index) }
        var killed: Set<String> = []
        func checkNoConsumerExited(_ moment: String) throws {
            for (name, process) in consumers where !process.isRunning && !killed.contains(name) {
                let log = (try? String(contentsOfFile: "\(logs)/\(name).log", encoding: .utf8)) ?? ""
                Issue.record("\(name) exited (status \(process.terminationStatus)) by \(moment): \(log.suffix(2000))")
                throw CancellationError()
            }
        }

        // A primary serving a partition killed with -9 mid-load; its replica takes over.
        try await Task.sleep(for: .milliseconds(Int.random(in: 3000...6000)))
        let redis = try await cluster.connect()
        let victim = ClusterRouting.split(address: try await redis.node(of: layout.streamKey(.orders, partition: Int.random(in: 0..<4))))!.port
        try await cluster.killNine(victim)
        try await Task.sleep(for: .seconds(8))
        try checkNoConsumerExited("the kill")
        try await cluster.startAgain(victim)
        try await cluster.waitUntilOK()
        // A third aggregator joins (partitions move to it), then one of the first two is killed
        // with -9 (its partitions are taken over once its lease and heartbeat expire).
        try start("kpi", 4)
        try await Task.sleep(for: .seconds(4))
        let aggregatorKilled = consumers[2]
        kill(aggregatorKilled.process.processIdentifier, SIGKILL)
        killed.insert(aggregatorKilled.name)
        await TestServers.waitForExit(aggregatorKilled.process)
        try checkNoConsumerExited("the aggregator kill")
        // Then a forced failover of another primary (its replica takes over without agreement).
        let roles = try await cluster.roles()
        let other = try #require(roles.primaries.first { roles.replicaOf[$0] != nil && $0 != victim })
        _ = try await cluster.cli(roles.replicaOf[other]!, "cluster failover takeover")
        try await Task.sleep(for: .seconds(3))
        try checkNoConsumerExited("the takeover")

        // The replay may have stopped on the lost node: run it again with --resume, as an operator
        // would; once more at the end, for entries a primary acknowledged but never replicated.
        // A consumer that exits meanwhile fails the test at once (the replay would otherwise
        // wait for its group, by back-pressure, until the time limit).
        func waitForReplay() async throws {
            while replay.isRunning {
                try checkNoConsumerExited("the replay's end")
                try await Task.sleep(for: .milliseconds(500))
            }
            await TestServers.waitForExit(replay)
        }
        try await waitForReplay()
        var replayRuns = 1
        if replay.terminationStatus != 0 {
            replayRuns += 1
            replay = try TestServers.startWarehouse(replayArguments + ["--resume"], environment: environment, stderrPath: "\(logs)/replay-2.log")
            processes.append(replay)
            try await waitForReplay()
            #expect(replay.terminationStatus == 0, "replay --resume")
        }
        let final = try await TestServers.runWarehouse(
            ["replay", "--data", reference.folder, "--namespace", namespace, "--resume", "--json"], environment: environment)
        try #require(final.status == 0, "replay --resume: \(final.stderr)")
        let republished = (try? JSONSerialization.jsonObject(with: Data(final.stdout.utf8)) as? [String: Any])?["events"] as? Int ?? -1

        // Drained twice in a row, then SIGTERM: every consumer exits 0.
        let deadline = ContinuousClock.now + .seconds(300)
        var drainedTwice = 0
        while drainedTwice < 2 {
            try checkNoConsumerExited("the drain")
            try #require(ContinuousClock.now < deadline, "the groups did not drain in time")
            drainedTwice = try await FaultRun.drained(layout, redis: redis) ? drainedTwice + 1 : 0
            try await Task.sleep(for: .milliseconds(500))
        }
        for (name, process) in consumers where !killed.contains(name) {
            kill(process.processIdentifier, SIGTERM)
            await TestServers.waitForExit(process)
            #expect(process.terminationReason == .exit && process.terminationStatus == 0, "\(name)")
        }
        let warehouse = WarehouseFixture(schema: "public", url: postgres.url, postgres: try await PostgresConnection(postgres.url))
        let tables = try await warehouse.checksums()
        for (table, expected) in reference.tables.sorted(by: { $0.key < $1.key }) {
            #expect(tables[table] == expected, "\(table) differs from the single-node load's")
        }
        let kpis = try await KPISnapshot.read(KPIKeys(layout: layout), on: redis)
        let differing = KPITests.differences(kpis, reference.kpis)
        #expect(differing.isEmpty, "KPIs that differ from the single-node load's: \(differing.prefix(10))")
        #expect(try await FaultRun.deadLetterSources(layout, redis: redis) == reference.deadLetters)
        let reconcile = try await TestServers.runWarehouse(["reconcile", "--json", "--namespace", namespace], environment: environment)
        #expect(reconcile.status == 0, "\(reconcile.stdout) \(reconcile.stderr)")
        // The partitions did move: the aggregator that joined took some, and the killed one's were taken over.
        let joined = (try? String(contentsOfFile: "\(logs)/kpi-4.log", encoding: .utf8)) ?? ""
        #expect(joined.contains("took partition"), "the aggregator that joined owns partitions: \(joined.suffix(1500))")
        let survivor = (try? String(contentsOfFile: "\(logs)/kpi-3.log", encoding: .utf8)) ?? ""
        #expect(survivor.contains("moves to another aggregator"), "partitions moved away from a first aggregator when the third joined")
        print("cluster failover: primary :\(victim) killed -9, :\(other) taken over; replay runs \(replayRuns + 1), "
              + "the last republished \(republished) events")
    }
}
