import Foundation
import RedisClient
import Testing
import Contract
import KPIModel
import StreamRuntime
import WarehouseSink
import KPIStore
import DataGenerator
import RedisWire
import PostgresClient
import Dashboard

/// The partition leases are fenced: an aggregator paused past its lease (SIGSTOP) while a second
/// one took over cannot write once it resumes; it lets the partition go and stays a member.
@Suite(.serialized) struct KPILeaseTests {
    /// Aggregator A starts with a 2-second lease and is stopped (SIGSTOP) 0.8 s in; B starts 4 s
    /// later (A's lease has expired), takes the lease, raises the fences and rebuilds; A resumes
    /// 1.5 s after that. A's commits are refused (or its renewal fails first) and it lets the
    /// partition go, saying so; B drains. The KPIs equal an uninterrupted run's, and so do those a
    /// third aggregator rebuilds from the persisted records alone.
    @Test(.timeLimit(.minutes(5)))
    func anAggregatorPausedPastItsLeaseCannotWrite() async throws {
        let redis = try await TestServers.redis()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.unique("sw-lease")).path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try DataGenerator(options: DataGenerator.Options(orders: 40_000, seed: 43)).write(to: folder)
        let reference = StreamLayout(namespace: TestServers.unique("swlr"))
        let contested = StreamLayout(namespace: TestServers.unique("swlc"))
        for layout in [reference, contested] { _ = try await TestServers.replay(folder, into: layout, redis: redis) }
        try await KPITests.aggregate(reference)
        let expected = try await KPISnapshot.read(KPIKeys(layout: reference), on: redis)

        let arguments = ["consume", "--group", "kpi", "--namespace", contested.namespace, "--batch", "200", "--block-ms", "100",
                         "--lease-ms", "2000", "--min-idle-ms", "2000", "--until-drained"]
        let logA = folder + "/a.log", logB = folder + "/b.log"
        let a = try TestServers.startWarehouse(arguments, stderrPath: logA)
        try await Task.sleep(for: .milliseconds(800))
        #expect(a.isRunning, "A is still aggregating when it is paused")
        kill(a.processIdentifier, SIGSTOP)
        try await Task.sleep(for: .seconds(4))
        let b = try TestServers.startWarehouse(arguments, stderrPath: logB)
        try await Task.sleep(for: .milliseconds(1500))
        kill(a.processIdentifier, SIGCONT)
        await TestServers.waitForExit(a)
        await TestServers.waitForExit(b)
        let textA = (try? String(contentsOfFile: logA, encoding: .utf8)) ?? ""
        let textB = (try? String(contentsOfFile: logB, encoding: .utf8)) ?? ""
        #expect(a.terminationStatus == 0, "A lets go and stays a member until the group is drained: \(textA)")
        #expect(textA.contains("letting it go"), "A says it let the partition go: \(textA)")
        #expect(b.terminationStatus == 0, "B drains: \(textB)")
        #expect(textB.contains("partition 0, epoch 2"), "B took the partition's lease at the next epoch: \(textB)")

        let keys = KPIKeys(layout: contested)
        // Every commit since B's take carried epoch 2 or later. Later is legitimate: when A's name
        // sorts first the partition is A's by assignment, and A takes it back (epoch 3) once B,
        // draining, lets go.
        let fence = Int(try await redis.command("GET", keys.fence(partition: 0)).string ?? "") ?? 0
        #expect(fence >= 2, "the fence is at B's epoch or a later owner's (\(fence))")
        if fence > 2 { #expect(textA.contains("took partition 0 (epoch \(fence))"), "A took the partition back after B: \(textA)") }
        let actual = try await KPISnapshot.read(keys, on: redis)
        let differing = KPITests.differences(actual, expected)
        #expect(differing.isEmpty, "KPIs that differ from the uninterrupted run's: \(differing.prefix(10))")
        for entity in Entity.allCases {
            #expect(try await redis.xpending(contested.streamKey(entity, partition: 0), group: "kpi").count == 0, "\(entity) has pending entries")
        }

        // A third aggregator rebuilds from the persisted records alone: the same figures.
        _ = try await redis.command("DEL", keys.totals)
        let rebuilt = try await TestServers.runWarehouse(arguments)
        #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
        let again = try await KPISnapshot.read(keys, on: redis)
        let differingAgain = KPITests.differences(again, expected)
        #expect(differingAgain.isEmpty, "KPIs rebuilt from the records differ: \(differingAgain.prefix(10))")
    }
}
