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

/// The sample's expected answers (Tests/Fixtures/sample-expected.json, made by expected_answers.py).
enum SampleExpectations {
    static var json: [String: Any] {
        get throws {
            let url = TestServers.packageRoot.appendingPathComponent("Tests/Fixtures/sample-expected.json")
            return try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        }
    }

    static var replayFiles: [String: [String: Int]] {
        get throws { try #require((try json["replay"] as? [String: Any])?["files"] as? [String: [String: Int]]) }
    }

    static var rejected: [String] {
        get throws { try #require((try json["replay"] as? [String: Any])?["rejected"] as? [String]) }
    }

    static var dataFolder: String { TestServers.packageRoot.appendingPathComponent("data").path }
}

@Suite struct ReplayTests {
    private func allEntries(_ redis: RedisConnection, _ key: String) async throws -> [StreamEntry] {
        var entries: [StreamEntry] = []
        var start = "-"
        while true {
            let page = try await redis.xrange(key, start: start, count: 500)
            entries += page
            guard let last = page.last, page.count == 500 else { return entries }
            start = "(" + last.id.description
        }
    }

    @Test func replayingTheSamplePublishesEveryGoodRowAndDeadLettersTheRest() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swr"))
        var options = Replayer.Options(dataDirectory: SampleExpectations.dataFolder)
        options.layout = layout
        let report = try await Replayer(options: options).run(redis: redis)

        let expectedFiles = try SampleExpectations.replayFiles
        for entity in Entity.allCases {
            let expected = try #require(expectedFiles[entity.fileName])
            let stats = try #require(report.files[entity.fileName])
            #expect(stats.read == expected["read"], "\(entity.fileName) read")
            #expect(stats.published == expected["published"], "\(entity.fileName) published")
            #expect(stats.duplicates == expected["duplicates"], "\(entity.fileName) duplicates")
            #expect(stats.rejected == expected["rejected"], "\(entity.fileName) rejected")
            #expect(try await redis.xlen(layout.streamKey(entity, partition: 0)) == expected["published"],
                    "\(entity.fileName): the stream holds exactly the good rows")
        }

        // The dead-letter stream holds exactly the malformed rows, each with file:line and a reason.
        let dead = try await allEntries(redis, layout.deadLetterKey)
        #expect(dead.map { $0["source"] ?? "" }.sorted() == (try SampleExpectations.rejected))
        for entry in dead {
            #expect(!(entry["reason"] ?? "").isEmpty)
            #expect(!(entry["raw"] ?? "").isEmpty)
            #expect(entry["line"].flatMap(Int.init) != nil)
        }
        let quantityZero = try #require(dead.first { $0["reason"]?.hasPrefix("quantity") == true })
        #expect(quantityZero["column"] == "quantity")
        #expect(quantityZero["raw"]?.hasPrefix("O9001,1,C001,P001,0,") == true)

        // Events carry the envelope, and are in event-time order within each stream.
        let orders = try await allEntries(redis, layout.streamKey(.orders, partition: 0))
        let times = orders.compactMap { $0["event_time"].flatMap { Timestamp(iso8601: $0) } }
        #expect(times.count == orders.count)
        #expect(times == times.sorted())
        let first = try #require(orders.first)
        #expect(first["type"] == "order_line")
        #expect(first["schema_version"] == "1")
        #expect(first["event_id"]?.count == 32)
        #expect(first["source"]?.hasPrefix("orders.csv:") == true)
        let customers = try await allEntries(redis, layout.streamKey(.customers, partition: 0))
        #expect(customers.contains { $0["first_name"] == "Mary, \"Mae\"\nAnn" }, "a quoted newline survives the trip")
        #expect(customers.contains { $0["first_name"] == "Zoë" && $0["last_name"] == "Åström" })

        // A second replay publishes the same event ids and adds nothing to the dead-letter stream.
        let idsBefore = Set(orders.compactMap { $0["event_id"] })
        _ = try await Replayer(options: options).run(redis: redis)
        let ordersAfter = try await allEntries(redis, layout.streamKey(.orders, partition: 0))
        #expect(ordersAfter.count == orders.count * 2)
        #expect(Set(ordersAfter.compactMap { $0["event_id"] }) == idsBefore)
        #expect(try await redis.xlen(layout.deadLetterKey) == dead.count)
        let stats = try await DeadLetterQueue(layout: layout).stats(on: redis)
        #expect(stats.total == dead.count)
        #expect(stats.byFile["orders.csv"] == 4)
    }

    @Test func partitionsSplitStreamsByKey() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swp"), partitions: 3)
        var options = Replayer.Options(dataDirectory: SampleExpectations.dataFolder)
        options.layout = layout
        let report = try await Replayer(options: options).run(redis: redis)
        var total = 0
        var orderIDsByPartition: [Int: Set<String>] = [:]
        for partition in 0..<3 {
            let key = layout.streamKey(.orders, partition: partition)
            let entries = try await redis.xrange(key, count: 1000)
            total += entries.count
            orderIDsByPartition[partition] = Set(entries.compactMap { $0["order_id"] })
        }
        #expect(total == report.files["orders.csv"]?.published)
        // All lines of an order land in one partition.
        let all = orderIDsByPartition.values.flatMap { $0 }
        #expect(all.count == Set(all).count)
        #expect(orderIDsByPartition.values.filter { !$0.isEmpty }.count == 3)
    }

    @Test func resumeContinuesFromTheCheckpoint() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swc"))
        var options = Replayer.Options(dataDirectory: SampleExpectations.dataFolder)
        options.layout = layout
        options.batchSize = 50
        let full = try await Replayer(options: options).run(redis: redis)
        // Pretend the run died after 150 events.
        _ = try await redis.command("HSET", layout.replayCheckpointKey(partition: 0), "position", "150")
        _ = try await redis.command("HDEL", layout.replayCheckpointKey(partition: 0), "finished")
        options.resume = true
        let resumed = try await Replayer(options: options).run(redis: redis)
        #expect(resumed.resumedFrom == 150)
        #expect(resumed.events == full.events - 150)
        // A resumed run that had finished publishes nothing more.
        let again = try await Replayer(options: options).run(redis: redis)
        #expect(again.events == 0)
        #expect(again.resumedFrom == full.events)
        // …and leaves the checkpoint where it was (it once wrote position 0, so a third run
        // published everything again).
        let third = try await Replayer(options: options).run(redis: redis)
        #expect(third.events == 0)
        #expect(third.resumedFrom == full.events)
    }

    @Test func speedKeepsPaceWithEventTime() async throws {
        let redis = try await TestServers.redis()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.unique("sw-pace")).path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var generator = DataGenerator.Options(orders: 3000, seed: 5)
        generator.days = 2
        try DataGenerator(options: generator).write(to: folder)
        var options = Replayer.Options(dataDirectory: folder)
        options.layout = StreamLayout(namespace: TestServers.unique("swpace"))
        // Three hours of event time at 3600x: three seconds of wall time.
        let start = try #require(Timestamp(iso8601: generator.start))
        options.from = Timestamp(microseconds: start.microseconds + 6 * 3_600_000_000)
        options.to = Timestamp(microseconds: start.microseconds + 9 * 3_600_000_000)
        options.speed = 3600
        let report = try await Replayer(options: options).run(redis: redis)
        let first = try #require(report.firstEventTime), last = try #require(report.lastEventTime)
        #expect(report.events > 100)
        let expected = Double(last.microseconds - first.microseconds) / 1e6 / 3600
        #expect(expected > 2.5)
        // Never ahead of event time (the pacer's promise); behind it only by what a busy machine
        // costs: the schedule is absolute, so a starved moment delays the events due then, not all
        // that follow (the test suite runs beside this on two cores; 0.19 s late was seen once).
        #expect(report.publishSeconds >= expected * 0.98, "published over \(report.publishSeconds) s; event time says \(expected) s")
        #expect(report.publishSeconds <= expected + 0.6, "published over \(report.publishSeconds) s; event time says \(expected) s")
    }

    @Test func cliReportsJSONAndRefusesUnusableInput() async throws {
        let namespace = TestServers.unique("swcli")
        let result = try await TestServers.runWarehouse(["replay", "--data", SampleExpectations.dataFolder, "--namespace", namespace, "--json"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(Set(json.keys) == ["files", "events", "seconds"])
        let files = try #require(json["files"] as? [String: [String: Int]])
        #expect(files == (try SampleExpectations.replayFiles))

        let streams = try await TestServers.runWarehouse(["streams", "--namespace", namespace, "--json"])
        let list = try #require(try JSONSerialization.jsonObject(with: Data(streams.stdout.utf8)) as? [[String: Any]])
        #expect(list.count == 6)
        #expect(Set(list.flatMap { $0.keys }) == ["key", "entity", "partition", "length"])
        let stats = try await TestServers.runWarehouse(["dlq", "stats", "--namespace", namespace, "--json"])
        let statsJSON = try #require(try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any])
        #expect(statsJSON["total"] as? Int == 13)
        #expect(Set(statsJSON.keys) == ["total", "by_file", "by_reason"])

        let empty = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.unique("sw-empty")).path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let missing = try await TestServers.runWarehouse(["replay", "--data", empty, "--namespace", namespace])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("customers.csv"), "the message says which file is missing: \(missing.stderr)")
        let nowhere = try await TestServers.runWarehouse(["replay", "--data", "/no/such/folder", "--dry-run"])
        #expect(nowhere.status != 0)
        #expect(nowhere.stderr.contains("not a folder"))
    }
}
