/// The keys (order ids, payment ids, movement ids) of one stream's retired records, as a Bloom
/// filter: 20 to 40 bits a key, so the aggregator knows which events may change a record that
/// only Redis still holds (`KPIState+Revival.swift`) without holding the keys.
///
/// "No" is certain: such a key never retired, and an event for it that is not held is new. "Maybe"
/// (every retired key, and at most about one in 15,000 of the others) costs one read of the archive, which
/// says. The rate is kept that low because a batch of 2,000 events brings hundreds of new keys, and
/// a read makes the batch wait for the commit before it: at 1 % nearly every batch would.
/// Each key is also appended to a string in Redis as its 64-bit hash (`RetiredKeys.hash`, the same
/// on every host and in every process), from which a rebuild fills the filter again.
///
/// The filter grows by adding filters of twice the capacity (a scalable Bloom filter), each with
/// at least 20 bits a key (a power of two in all, so a probe is a mask, not a division) and one
/// more bit a key than the one before, so the false positive rates sum to under one in 10,000
/// however many there are: 10 million keys take at most about 70 MB.
public struct RetiredKeys: Sendable {
    struct Filter: Sendable {
        var words: [UInt64]
        let capacity: Int
        var count = 0
        init(capacity: Int, bitsPerKey: Int) {
            self.capacity = capacity
            var words = 1
            while words * 64 < capacity * bitsPerKey { words <<= 1 }
            self.words = Array(repeating: 0, count: words)
        }
        /// The number of bits less one (a power of two less one).
        var mask: UInt64 { UInt64(words.count * 64 - 1) }
    }

    /// Bits per key of the first filter (at least; each next one has one more), and the probes.
    static let bitsPerKey = 20
    static let probes: UInt64 = 14
    static let firstCapacity = 1 << 16
    var filters: [Filter] = []

    public init() {}

    /// Keys inserted (with repeats: a record that retires again is inserted again).
    public var count: Int { filters.reduce(0) { $0 + $1.count } }
    public var isEmpty: Bool { filters.isEmpty }

    /// The key's 64-bit hash: FNV-1a over its UTF-8 bytes, then SplitMix64's finaliser. Stable
    /// across processes and hosts (Swift's `Hasher` is seeded per process), so it can be persisted.
    public static func hash(_ key: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 {
            h ^= UInt64(byte)
            h &*= 0x0000_0100_0000_01b3
        }
        return mix(h)
    }

    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    public mutating func insert(hash: UInt64) {
        if filters.last.map({ $0.count >= $0.capacity }) ?? true {
            filters.append(Filter(capacity: filters.last.map { $0.capacity * 2 } ?? Self.firstCapacity, bitsPerKey: Self.bitsPerKey + filters.count))
        }
        let last = filters.count - 1
        let (h1, h2) = (hash, Self.mix(hash) | 1)
        let mask = filters[last].mask
        for i in 0..<Self.probes {
            let bit = (h1 &+ i &* h2) & mask
            filters[last].words[Int(bit >> 6)] |= 1 << (bit & 63)
        }
        filters[last].count += 1
    }

    public mutating func insert(_ key: String) { insert(hash: Self.hash(key)) }

    /// False when `key` certainly never retired.
    public func mayContain(hash: UInt64) -> Bool {
        let (h1, h2) = (hash, Self.mix(hash) | 1)
        filter: for filter in filters {
            let mask = filter.mask
            for i in 0..<Self.probes {
                let bit = (h1 &+ i &* h2) & mask
                if filter.words[Int(bit >> 6)] & (1 << (bit & 63)) == 0 { continue filter }
            }
            return true
        }
        return false
    }

    public func mayContain(_ key: String) -> Bool { mayContain(hash: Self.hash(key)) }

    /// The hashes as persisted (eight bytes each, big-endian), appended to a Redis string.
    public static func pack(_ hashes: [UInt64]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hashes.count * 8)
        for hash in hashes {
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: hash >> UInt64(shift))) }
        }
        return bytes
    }

    /// Inserts every hash of a persisted string (a trailing partial hash, which no writer leaves,
    /// is ignored).
    public mutating func insert(packed bytes: [UInt8]) {
        var index = 0
        while index + 8 <= bytes.count {
            var hash: UInt64 = 0
            for offset in 0..<8 { hash = hash << 8 | UInt64(bytes[index + offset]) }
            insert(hash: hash)
            index += 8
        }
    }
}
