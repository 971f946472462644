import Testing
import Contract
@testable import KPIModel

/// `PagedMap`, the aggregator's store of line records: a dictionary of slots over pages of values.
struct PagedMapTests {
    /// Against a plain dictionary, over more than two pages, with removals, slot reuse and
    /// in-place changes mixed in.
    @Test func behavesAsADictionary() {
        var map = PagedMap<String, Int>()
        var reference: [String: Int] = [:]
        var random = SplitMix64(seed: 11)
        let keys = 3 * PagedMap<String, Int>.pageSize + 17
        for step in 0..<(4 * keys) {
            let key = "k\(random.next() % UInt64(keys))"
            switch random.next() % 5 {
            case 0:
                #expect(map.removeValue(forKey: key) == reference.removeValue(forKey: key))
            case 1:
                if let slot = map.slot(for: key) {
                    map[slot: slot] += 1
                    reference[key]! += 1
                } else {
                    #expect(reference[key] == nil)
                }
            default:
                map[key] = step
                reference[key] = step
            }
        }
        #expect(map.count == reference.count)
        var seen: [String: Int] = [:]
        for (key, value) in map { seen[key] = value }
        #expect(seen == reference)
        for (key, value) in reference { #expect(map[key] == value) }
        map["absent"] = nil
        #expect(map["absent"] == nil && map.count == reference.count)
    }

    /// A removed key's slot is handed to the next new key, so churn does not grow the pages.
    @Test func reusesFreedSlots() {
        var map = PagedMap<Int, String>()
        let a = map.insert("a", for: 1)
        _ = map.insert("b", for: 2)
        #expect(map.removeValue(forKey: 1) == "a")
        #expect(map.insert("c", for: 3) == a)
        #expect(map[3] == "c" && map[1] == nil && map[2] == "b")
        #expect(map.insert("b2", for: 2) == map.slot(for: 2))
        #expect(map[2] == "b2" && map.count == 2)
    }
}
