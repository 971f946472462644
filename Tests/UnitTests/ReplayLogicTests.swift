import Foundation
import Testing
@testable import Pipeline

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
    private func rows(_ count: Int, seed: UInt64) -> [ValidatedRow] {
        var random = SplitMix64(seed: seed)
        return (0..<count).map { index in
            // Few distinct times, so ties are common and broken by event id.
            let time = Timestamp(microseconds: Int64(random.next() % 50) * 1_000_000)
            var hasher = EventIDHasher()
            hasher.combine(String(index % (count / 2)))   // every id appears twice: exact duplicates
            return ValidatedRow(entity: Entity.allCases[index % 6], line: index + 2, values: ["v\(index % (count / 2))", "é,\"\n"],
                                eventTime: time, eventID: hasher.finalize())
        }
    }

    private func drain(_ sorted: SortedRows) throws -> [ValidatedRow] {
        var out: [ValidatedRow] = []
        while let row = try sorted.next() { out.append(row) }
        return out
    }

    @Test func mergesSpilledRunsIntoTheSameOrder() throws {
        let input = rows(5000, seed: 7)
        let expected = input.sorted { ($0.eventTime, $0.eventID) < ($1.eventTime, $1.eventID) }
        let memory = try ExternalSorter(memoryBudget: 1 << 30)
        for row in input { try memory.add(row) }
        let inMemory = try drain(try memory.finish())
        #expect(memory.spilledRuns == 0)
        let spilling = try ExternalSorter(memoryBudget: 16 << 10)
        for row in input { try spilling.add(row) }
        let merged = try drain(try spilling.finish())
        #expect(spilling.spilledRuns > 10)
        #expect(inMemory.map { [$0.eventTime.microseconds, Int64(bitPattern: $0.eventID.high)] }
            == expected.map { [$0.eventTime.microseconds, Int64(bitPattern: $0.eventID.high)] })
        #expect(merged.map(\.eventID) == inMemory.map(\.eventID))
        #expect(merged.map(\.eventTime) == inMemory.map(\.eventTime))
        // Rows survive the trip to disk intact, and duplicates sit side by side.
        #expect(Set(merged.map { $0.values[1] }) == ["é,\"\n"])
        for (a, b) in zip(merged, merged.dropFirst()) where a.eventID == b.eventID && a.eventTime == b.eventTime {
            #expect(a.values == b.values)
        }
        spilling.cleanUp()
        #expect(!FileManager.default.fileExists(atPath: spilling.directory))
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
        #expect(layout.streamKey(.orders, partition: 3) == "sw:{orders:3}")
        #expect(layout.parse(streamKey: "sw:{orders:3}")! == (Entity.orders, 3))
        #expect(layout.parse(streamKey: "sw:{dlq}") == nil)
        #expect(layout.parse(streamKey: "other:{orders:3}") == nil)
        let partitions = Set((0..<200).map { layout.partition(for: "O\($0)") })
        #expect(partitions == [0, 1, 2, 3])
        #expect(layout.partition(for: "O17") == layout.partition(for: "O17"))
        #expect(StreamLayout().partition(for: "anything") == 0)
    }
}
