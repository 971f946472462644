import Testing
@testable import RedisWire
@testable import Contract

/// Redis Cluster's slot rule (the first piece of running on a cluster), against the vectors of
/// the Redis Cluster specification and `CLUSTER KEYSLOT`'s documentation (this machine's Redis
/// runs without cluster mode, so the other figures were checked with an independent Python CRC16).
struct HashSlotTests {
    @Test func crc16MatchesTheSpecificationsVector() {
        // "The CRC16 of '123456789' is 0x31C3" (Redis Cluster specification, appendix A).
        var text = "123456789"
        let crc = text.withUTF8 { HashSlot.crc16(UnsafeRawBufferPointer($0)) }
        #expect(crc == 0x31C3)
    }

    @Test(arguments: [
        ("foo", 12182), ("bar", 5061), ("hello", 866), ("somekey", 11058), ("", 0),
        ("{user1000}.following", 3443), ("{user1000}.followers", 3443), ("user1000", 3443),
        ("foo{hash_tag}", 2515),                                    // the CLUSTER KEYSLOT documentation's examples
        ("foo{}{bar}", 8363), ("foo{{bar}}zap", 4015), ("foo{bar}{zap}", 5061),  // the specification's hash-tag rules
    ])
    func slotsAreRedisSlots(key: String, slot: Int) {
        #expect(HashSlot.of(key) == slot, "\(key)")
    }

    @Test func anEmptyTagHashesTheWholeKey() {
        var key = "foo{}{bar}"
        let hashed = key.withUTF8 { Array(HashSlot.hashed(UnsafeRawBufferPointer($0))) }
        #expect(String(decoding: hashed, as: UTF8.self) == "foo{}{bar}")
    }

    /// What already shares a slot in the layout: a stream, its group state and its KPI state.
    @Test func aPartitionsKeysShareItsSlot() {
        let layout = StreamLayout(namespace: "sw", partitions: 4)
        for entity in Entity.allCases {
            for partition in 0..<4 {
                let stream = layout.streamKey(entity, partition: partition)
                #expect(HashSlot.of(stream + ":kpi") == HashSlot.of(stream), "\(stream)")
            }
        }
        #expect(HashSlot.of(layout.deadLetterKey) == HashSlot.of(layout.deadLetterSeenKey))
    }
}
