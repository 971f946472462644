import Foundation
import Testing
@testable import Contract
@testable import KPIModel
@testable import StreamRuntime
@testable import WarehouseSink
@testable import KPIStore
@testable import DataGenerator
@testable import RedisWire
import RedisClient
import PostgresClient

@Suite struct PacerTests {
    @Test func mapsEventTimeOntoWallTime() {
        let clock = ContinuousClock()
        let start = clock.now
        var pacer = Pacer(speed: 3600)
        let t0 = Timestamp(iso8601: "2024-03-01T00:00:00Z")!
        #expect(pacer.delay(for: t0, now: start) == .zero, "the first event sets the origin")
        let oneHourLater = Timestamp(microseconds: t0.microseconds + 3_600_000_000)
        #expect(pacer.delay(for: oneHourLater, now: start) == .seconds(1))
        #expect(pacer.delay(for: oneHourLater, now: start + .milliseconds(400)) == .milliseconds(600))
        #expect(pacer.delay(for: oneHourLater, now: start + .seconds(2)) == .zero, "late events go at once")
        var max = Pacer(speed: nil)
        #expect(max.delay(for: t0, now: start) == .zero)
        #expect(max.delay(for: oneHourLater, now: start) == .zero)
    }

    @Test func parsesSpeeds() {
        #expect(Pacer.parseSpeed("max") == .some(nil))
        #expect(Pacer.parseSpeed("3600") == .some(3600))
        #expect(Pacer.parseSpeed("0.5") == .some(0.5))
        #expect(Pacer.parseSpeed("0") == nil)
        #expect(Pacer.parseSpeed("-1") == nil)
        #expect(Pacer.parseSpeed("fast") == nil)
    }
}

@Suite struct ExternalSorterTests {
    private struct Record: Equatable {
        var header: SortedRecord
        var payload: [UInt8]
    }

    private func records(_ count: Int, seed: UInt64) -> [Record] {
        var random = SplitMix64(seed: seed)
        return (0..<count).map { index in
            // Few distinct times, so ties are common and broken by event id.
            let time = Timestamp(microseconds: Int64(random.next() % 50) * 1_000_000)
            let id = EventID.of(entity: .orders, values: [String(index % (count / 2))])   // every id twice: duplicates
            let payload = Array("payload \(index % (count / 2)) é,\"\n".utf8)
            return Record(header: SortedRecord(time: time, id: id, entity: Entity.allCases[index % 6], line: index + 2), payload: payload)
        }
    }

    private func drain(_ sorted: SortedRows) throws -> [Record] {
        var out: [Record] = []
        while let header = try sorted.advance() { out.append(Record(header: header, payload: sorted.withPayload { Array($0) })) }
        return out
    }

    private func add(_ records: [Record], to sorter: ExternalSorter) throws {
        for record in records {
            try sorter.add(time: record.header.time, id: record.header.id, entity: record.header.entity, line: record.header.line,
                           payload: record.payload)
        }
    }

    @Test func mergesSpilledRunsIntoTheSameOrder() throws {
        let input = records(5000, seed: 7)
        let expected = input.sorted { ($0.header.time, $0.header.id) < ($1.header.time, $1.header.id) }
        let memory = try ExternalSorter(memoryBudget: 1 << 30)
        try add(input, to: memory)
        let inMemory = try drain(try memory.finish())
        #expect(memory.spilledRuns == 0)
        let spilling = try ExternalSorter(memoryBudget: 16 << 10)
        try add(input, to: spilling)
        let merged = try drain(try spilling.finish())
        #expect(spilling.spilledRuns > 10)
        #expect(inMemory.map { [$0.header.time.microseconds, Int64(bitPattern: $0.header.id.high)] }
            == expected.map { [$0.header.time.microseconds, Int64(bitPattern: $0.header.id.high)] })
        #expect(merged.map(\.header.id) == inMemory.map(\.header.id))
        #expect(merged.map(\.header.time) == inMemory.map(\.header.time))
        // Records survive the trip to disk intact, and duplicates sit side by side.
        #expect(Set(merged.map(\.payload)) == Set(input.map(\.payload)))
        #expect(merged.count == input.count)
        for (a, b) in zip(merged, merged.dropFirst()) where a.header.id == b.header.id && a.header.time == b.header.time {
            #expect(a.payload == b.payload)
        }
        spilling.cleanUp()
        #expect(!FileManager.default.fileExists(atPath: spilling.directory))
    }

    @Test func eventIDsDependOnEntityAndContent() throws {
        let values = ["O-1", "1", "C-1", "P-1", "2", "19.99", "0", "placed", "2024-03-01T14:05:00Z", "2024-03-01T14:05:00Z"]
        let header = ["order_id", "line_number", "customer_id", "product_id", "quantity", "unit_price", "discount", "status",
                      "order_ts", "updated_at"]
        let row = try RowValidator(entity: .orders, header: header).validate(values, line: 2).get()
        #expect(EventID.of(entity: .orders, values: row.values) == row.eventID)
        #expect(EventID.of(entity: .customers, values: row.values) != row.eventID)
        // Concatenation cannot make two rows collide: values are length-prefixed.
        #expect(EventID.of(entity: .orders, values: ["ab", "c"]) != EventID.of(entity: .orders, values: ["a", "bc"]))
        #expect(EventID(row.eventID.description) == row.eventID)
    }
}

@Suite struct ScenarioAndLayoutTests {
    @Test func parsesScenarios() throws {
        let scenario = try ReplayScenario.parse("""
            # comment
            data = ../data
            speed = 3600   # an hour a second
            from = 2024-01-01T00:00:00Z
            duplicate_rate = 0.2
            shuffle_window = 50
            seed = 9
            """, name: "t")
        #expect(scenario.data == "../data")
        #expect(scenario.speed == "3600")
        #expect(scenario.duplicateRate == 0.2)
        #expect(scenario.shuffleWindow == 50)
        #expect(scenario.seed == 9)
        #expect(throws: ContractError.self) { try ReplayScenario.parse("speed = warp", name: "t") }
        #expect(throws: ContractError.self) { try ReplayScenario.parse("colour = blue", name: "t") }
        #expect(throws: ContractError.self) { try ReplayScenario.parse("just words", name: "t") }
    }

    @Test func theShippedScenariosParse() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("replay").path
        for name in ["history", "live-day", "chaos"] {
            let scenario = try ReplayScenario.load(name, searchFolder: folder)
            #expect(scenario.data?.hasSuffix("/data") == true, "\(name)")
        }
    }

    @Test func streamKeysCarryAHashTagPerPartition() {
        let layout = StreamLayout(namespace: "sw", partitions: 4)
        #expect(layout.streamKey(.orders, partition: 3) == "sw:{p3}:orders")
        #expect(layout.parse(streamKey: "sw:{p3}:orders")! == (Entity.orders, 3))
        #expect(layout.parse(streamKey: "sw:{p12}:inventory")! == (Entity.inventory, 12))
        for other in ["sw:{dlq}", "other:{p3}:orders", "sw:{p3}:orders:kpi", "sw:{p3}:nope", "sw:{px}:orders", "sw:{orders:3}",
                      "sw:{p3}orders", "sw:{p-1}:orders"] {
            #expect(layout.parse(streamKey: other) == nil, "\(other)")
        }
        // A partition's streams, its KPI state and its replay checkpoint share one hash slot;
        // partitions spread over slots.
        let slot = HashSlot.of(layout.streamKey(.orders, partition: 3))
        #expect(layout.partitionStreams(3).allSatisfy { HashSlot.of($0) == slot })
        #expect(HashSlot.of(layout.replayCheckpointKey(partition: 3)) == slot)
        #expect(HashSlot.of(layout.streamKey(.orders, partition: 3) + ":kpi") == slot)
        #expect(Set((0..<4).map { HashSlot.of(layout.streamKey(.orders, partition: $0)) }).count == 4)
        #expect(layout.allStreams.count == 24 && Set(layout.allStreams).count == 24)
        let partitions = Set((0..<200).map { layout.partition(for: "O\($0)") })
        #expect(partitions == [0, 1, 2, 3])
        #expect(layout.partition(for: "O17") == layout.partition(for: "O17"))
        #expect(StreamLayout().partition(for: "anything") == 0)
    }
}
