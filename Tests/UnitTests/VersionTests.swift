import Testing
import Contract

/// `Version` keeps a canonical event id (32 lowercase hex digits) as two integers: it must order,
/// compare and print exactly as the text it came from, canonical or not.
struct VersionTests {
    @Test func ordersAndPrintsAsItsText() {
        var random = SplitMix64(seed: 5)
        let time = Timestamp(microseconds: 1_700_000_000_000_000)
        func hex(_ value: UInt64) -> String { let d = String(value, radix: 16); return String(repeating: "0", count: 16 - d.count) + d }
        var texts = (0..<300).map { _ in hex(random.next() >> (random.next() % 64)) + hex(random.next()) }
        // Ids this project never makes, kept as text: short, upper case, longer, empty, non-hex.
        texts += ["abc", "ABCDEF0123456789ABCDEF0123456789", String(repeating: "f", count: 33), "", "zz" + String(repeating: "0", count: 30),
                  String(repeating: "0", count: 32), String(repeating: "f", count: 32), "g" + String(repeating: "f", count: 31)]
        let versions = texts.map { Version(time: time, eventID: $0) }
        for (text, version) in zip(texts, versions) { #expect(version.eventID == text) }
        for (i, a) in versions.enumerated() {
            for (j, b) in versions.enumerated() where (i + j) % 7 == 0 || i >= 300 || j >= 300 {
                #expect((a < b) == (texts[i] < texts[j]), "\(texts[i]) < \(texts[j])")
                #expect((a == b) == (texts[i] == texts[j]))
            }
        }
        #expect(Version(time: time, eventID: texts[0]).id == EventID(texts[0]))
        #expect(Version(time: time, eventID: "ABC").id == nil)
        #expect(Version(time: Timestamp(microseconds: 1), eventID: "f") < Version(time: Timestamp(microseconds: 2), eventID: "0"))
        #expect(Set(versions).count == Set(texts).count)
    }
}
