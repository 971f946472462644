/// A 128-bit event id: xxHash64 of the entity and the row's canonical content under two seeds.
/// An exact duplicate row gets the same id; ids order ties between versions deterministically.
public struct EventID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public static func < (lhs: EventID, rhs: EventID) -> Bool { (lhs.high, lhs.low) < (rhs.high, rhs.low) }

    /// 32 lowercase hex digits.
    public var description: String { hex(high) + hex(low) }

    public init?(_ text: String) {
        guard text.utf8.count == 32, let high = UInt64(text.prefix(16), radix: 16), let low = UInt64(text.suffix(16), radix: 16)
        else { return nil }
        self.init(high: high, low: low)
    }

    /// The id of a row: xxHash64 of its packed canonical values (`EventEncoder.pack`) under two
    /// seeds derived from the entity's name.
    public static func of(entity: Entity, values: [String]) -> EventID {
        var packed: [UInt8] = []
        EventEncoder.pack(values, into: &packed)
        return packed.withUnsafeBufferPointer { bytes in
            let (high, low) = XXHash64.hash2(bytes, seeds: seeds(for: entity))
            return EventID(high: high, low: low)
        }
    }

    /// The two seeds of an entity's ids.
    public static func seeds(for entity: Entity) -> (UInt64, UInt64) {
        (XXHash64.hash(entity.rawValue, seed: 0), XXHash64.hash(entity.rawValue, seed: 0x9E37_79B9_7F4A_7C15))
    }

    private func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

/// Builds an `EventID` from values separated by 0x1F.
public struct EventIDHasher {
    private var bytes: [UInt8] = []

    public init() { bytes.reserveCapacity(256) }

    public mutating func combine(_ value: String) {
        if !bytes.isEmpty { bytes.append(0x1F) }
        bytes.append(contentsOf: value.utf8)
    }

    public func finalize() -> EventID {
        bytes.withUnsafeBufferPointer { buffer in
            let (high, low) = XXHash64.hash2(buffer, seeds: (0, 0x9E37_79B9_7F4A_7C15))
            return EventID(high: high, low: low)
        }
    }
}

/// xxHash64 (Yann Collet), for deterministic ids and partitioning. Not cryptographic.
public enum XXHash64 {
    static let p1: UInt64 = 11_400_714_785_074_694_791
    static let p2: UInt64 = 14_029_467_366_897_019_727
    static let p3: UInt64 = 1_609_587_929_392_839_161
    static let p4: UInt64 = 9_650_029_242_287_828_579
    static let p5: UInt64 = 2_870_177_450_012_600_261

    public static func hash(_ text: String, seed: UInt64 = 0) -> UInt64 {
        var text = text
        return text.withUTF8 { hash($0, seed: seed) }
    }

    public static func hash(_ input: UnsafeBufferPointer<UInt8>, seed: UInt64 = 0) -> UInt64 {
        let count = input.count
        guard let base = input.baseAddress, count > 0 else { return avalanche(seed &+ p5) }
        let raw = UnsafeRawPointer(base)
        var index = 0
        var h: UInt64
        if count >= 32 {
            var v1 = seed &+ p1 &+ p2
            var v2 = seed &+ p2
            var v3 = seed
            var v4 = seed &- p1
            while index + 32 <= count {
                v1 = round(v1, raw.loadUnaligned(fromByteOffset: index, as: UInt64.self).littleEndian)
                v2 = round(v2, raw.loadUnaligned(fromByteOffset: index + 8, as: UInt64.self).littleEndian)
                v3 = round(v3, raw.loadUnaligned(fromByteOffset: index + 16, as: UInt64.self).littleEndian)
                v4 = round(v4, raw.loadUnaligned(fromByteOffset: index + 24, as: UInt64.self).littleEndian)
                index += 32
            }
            h = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
            h = merge(h, v1); h = merge(h, v2); h = merge(h, v3); h = merge(h, v4)
        } else {
            h = seed &+ p5
        }
        h &+= UInt64(count)
        while index + 8 <= count {
            h ^= round(0, raw.loadUnaligned(fromByteOffset: index, as: UInt64.self).littleEndian)
            h = rotl(h, 27) &* p1 &+ p4
            index += 8
        }
        if index + 4 <= count {
            h ^= UInt64(raw.loadUnaligned(fromByteOffset: index, as: UInt32.self).littleEndian) &* p1
            h = rotl(h, 23) &* p2 &+ p3
            index += 4
        }
        while index < count {
            h ^= UInt64(input[index]) &* p5
            h = rotl(h, 11) &* p1
            index += 1
        }
        return avalanche(h)
    }

    /// Two xxHash64 digests of the same input under two seeds, in one pass over it.
    public static func hash2(_ input: UnsafeBufferPointer<UInt8>, seeds: (UInt64, UInt64)) -> (UInt64, UInt64) {
        let count = input.count
        guard let base = input.baseAddress, count > 0 else { return (avalanche(seeds.0 &+ p5), avalanche(seeds.1 &+ p5)) }
        let raw = UnsafeRawPointer(base)
        var index = 0
        var a: UInt64, b: UInt64
        if count >= 32 {
            var a1 = seeds.0 &+ p1 &+ p2, a2 = seeds.0 &+ p2, a3 = seeds.0, a4 = seeds.0 &- p1
            var b1 = seeds.1 &+ p1 &+ p2, b2 = seeds.1 &+ p2, b3 = seeds.1, b4 = seeds.1 &- p1
            while index + 32 <= count {
                let l1 = raw.loadUnaligned(fromByteOffset: index, as: UInt64.self).littleEndian
                let l2 = raw.loadUnaligned(fromByteOffset: index + 8, as: UInt64.self).littleEndian
                let l3 = raw.loadUnaligned(fromByteOffset: index + 16, as: UInt64.self).littleEndian
                let l4 = raw.loadUnaligned(fromByteOffset: index + 24, as: UInt64.self).littleEndian
                a1 = round(a1, l1); a2 = round(a2, l2); a3 = round(a3, l3); a4 = round(a4, l4)
                b1 = round(b1, l1); b2 = round(b2, l2); b3 = round(b3, l3); b4 = round(b4, l4)
                index += 32
            }
            a = rotl(a1, 1) &+ rotl(a2, 7) &+ rotl(a3, 12) &+ rotl(a4, 18)
            a = merge(a, a1); a = merge(a, a2); a = merge(a, a3); a = merge(a, a4)
            b = rotl(b1, 1) &+ rotl(b2, 7) &+ rotl(b3, 12) &+ rotl(b4, 18)
            b = merge(b, b1); b = merge(b, b2); b = merge(b, b3); b = merge(b, b4)
        } else {
            a = seeds.0 &+ p5
            b = seeds.1 &+ p5
        }
        a &+= UInt64(count); b &+= UInt64(count)
        while index + 8 <= count {
            let k = round(0, raw.loadUnaligned(fromByteOffset: index, as: UInt64.self).littleEndian)
            a ^= k; a = rotl(a, 27) &* p1 &+ p4
            b ^= k; b = rotl(b, 27) &* p1 &+ p4
            index += 8
        }
        if index + 4 <= count {
            let k = UInt64(raw.loadUnaligned(fromByteOffset: index, as: UInt32.self).littleEndian) &* p1
            a ^= k; a = rotl(a, 23) &* p2 &+ p3
            b ^= k; b = rotl(b, 23) &* p2 &+ p3
            index += 4
        }
        while index < count {
            let k = UInt64(input[index]) &* p5
            a ^= k; a = rotl(a, 11) &* p1
            b ^= k; b = rotl(b, 11) &* p1
            index += 1
        }
        return (avalanche(a), avalanche(b))
    }

    @inline(__always) static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
    @inline(__always) static func round(_ acc: UInt64, _ lane: UInt64) -> UInt64 { rotl(acc &+ lane &* p2, 31) &* p1 }
    @inline(__always) static func merge(_ acc: UInt64, _ value: UInt64) -> UInt64 { (acc ^ round(0, value)) &* p1 &+ p4 }
    @inline(__always) static func avalanche(_ hash: UInt64) -> UInt64 {
        var h = hash
        h ^= h >> 33; h &*= p2; h ^= h >> 29; h &*= p3; h ^= h >> 32
        return h
    }
}
