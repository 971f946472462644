import Foundation
import Testing
import Contract
@testable import KPIModel

/// `RetiredKeys` (the Bloom filter of archived keys) and the archive's formats.
struct RetiredKeysTests {
    /// No false negative ever (a missed key would count a change to an archived record as new);
    /// false positives rare (under 1 in 5,000) however far it grew; the persisted hashes give the
    /// same filter.
    @Test func neverMissesAKeyAndRarelyClaimsOne() {
        var keys = RetiredKeys()
        var hashes: [UInt64] = []
        let count = 300_000  // three filters: 65,536 keys, then twice as many each time
        for index in 0..<count {
            let hash = RetiredKeys.hash("O\(index)")
            keys.insert(hash: hash)
            hashes.append(hash)
        }
        #expect(keys.filters.count == 3, "\(keys.filters.map(\.capacity))")
        #expect((0..<count).allSatisfy { keys.mayContain("O\($0)") })
        let probes = 500_000
        let claimed = (0..<probes).filter { keys.mayContain("Y\($0)") }.count
        let rate = Double(claimed) / Double(probes)
        #expect(rate < 0.0002, "false positive rate \(rate) (\(claimed) of \(probes))")

        var restored = RetiredKeys()
        restored.insert(packed: RetiredKeys.pack(hashes))
        #expect(restored.count == count)
        #expect((0..<1000).allSatisfy { restored.mayContain("O\($0)") })
        #expect((0..<probes).filter { restored.mayContain("Y\($0)") }.count == claimed)
    }

    /// The hash is the same in every process (it is persisted): FNV-1a, then SplitMix64's finaliser.
    @Test func theHashIsStable() {
        #expect(RetiredKeys.hash("O1") == RetiredKeys.hash("O1"))
        #expect(RetiredKeys.hash("") == RetiredKeys.mix(0xcbf2_9ce4_8422_2325))
        #expect(RetiredKeys.hash("O1") != RetiredKeys.hash("O2"))
        #expect(RetiredKeys.pack([0x0102_0304_0506_0708]) == [1, 2, 3, 4, 5, 6, 7, 8])
    }

    @Test func archivedOrdersAndIndexesRoundTrip() {
        let version = KPIState.Version(time: Timestamp(microseconds: 1_700_000_000_000_000), eventID: "0123456789abcdef0123456789abcdef")
        let text = KPIState.Version(time: Timestamp(microseconds: -5), eventID: "not hex")
        let lines: [(line: KPIState.Line, attribution: KPIState.Attribution)] = [
            (KPIState.Line(orderID: "O1", lineNumber: 1, customerID: "C1", productID: "P1", status: .delivered, quantity: 3, netCents: -120,
                           orderTime: Timestamp(microseconds: 1_600_000_000_000_000), version: version),
             KPIState.Attribution(segment: "Premium", state: "TX", category: "Books", segmentNow: "Premium")),
            (KPIState.Line(orderID: "O1", lineNumber: 12, customerID: "C é", productID: "", status: .cancelled, quantity: 0, netCents: 0,
                           orderTime: Timestamp(microseconds: 0), version: text),
             KPIState.Attribution(segment: "unknown", state: "", category: "Garden", segmentNow: "unknown")),
        ]
        let value = KPIRecord.archivedOrder(lines)
        let decoded = KPIRecord.decodeArchivedOrder(orderID: "O1", value: value)
        #expect(decoded?.map(\.line) == lines.map(\.line))
        #expect(decoded?.map(\.attribution) == lines.map(\.attribution))
        #expect(KPIRecord.decodeArchivedOrder(orderID: "O1", value: Array(value.dropLast())) == nil)
        #expect(KPIRecord.decodeArchivedOrder(orderID: "O1", value: value + [0]) == nil)
        #expect(KPIRecord.decodeArchivedOrder(orderID: "O1", value: KPIRecord.record(.line(lines[0].line)).value) == nil)

        let index = KPIRecord.indexEntry(orderID: "O1", orderTime: 100) + KPIRecord.indexEntry(orderID: "O2", orderTime: -50)
            + KPIRecord.indexEntry(orderID: "O1", orderTime: 100) + KPIRecord.indexEntry(orderID: "O3", orderTime: 200)
        #expect(KPIRecord.indexedOrders(index, from: .min) == ["O1", "O2", "O3"])
        #expect(KPIRecord.indexedOrders(index, from: 100) == ["O1", "O3"])
        #expect(KPIRecord.indexedOrders(index, from: 201) == [])
        #expect(KPIRecord.indexedOrders(Array(index.dropLast()), from: .min) == nil)
    }

    /// The fuzz target's seeds include a real archived order and index (so the fuzzer starts from
    /// inputs that reach the round-trip check).
    @Test func theFuzzSeedsAreAnArchivedOrderAndAnIndex() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/corpus/kpirecord")
        func value(_ name: String) throws -> [UInt8] {
            let bytes = [UInt8](try Data(contentsOf: folder.appendingPathComponent(name)))
            return Array(bytes[(bytes.firstIndex(of: 0)! + 1)...])
        }
        let lines = try #require(KPIRecord.decodeArchivedOrder(orderID: "O1", value: try value("13")))
        #expect(lines.map(\.line.lineNumber) == [1, 2] && lines[0].attribution.category == "Books")
        #expect(KPIRecord.indexedOrders(try value("14"), from: .min) == ["O1", "O2"])
    }
}
