/// Redis Cluster's key → hash slot rule: CRC16 (XMODEM: polynomial 0x1021, initial value 0) of
/// the key, modulo 16,384. When the key holds a `{…}` with at least one byte between the braces
/// (the first `{` and the first `}` after it), only those bytes are hashed: keys that share a
/// hash tag share a slot, which is what lets one script or MULTI touch them together on a cluster.
public enum HashSlot {
    /// The number of slots in a Redis Cluster.
    public static let count = 16_384

    /// The slot of `key`.
    public static func of(_ key: String) -> Int {
        var key = key
        return key.withUTF8 { of(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// The slot of a key given as bytes.
    public static func of(bytes key: UnsafeRawBufferPointer) -> Int {
        Int(crc16(hashed(key))) & (count - 1)
    }

    /// The part of `key` that is hashed: the hash tag's bytes when there is a non-empty one, else
    /// the whole key.
    static func hashed(_ key: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        guard let open = key.firstIndex(of: UInt8(ascii: "{")),
              let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
        else { return key }
        return UnsafeRawBufferPointer(rebasing: key[(open + 1)..<close])
    }

    /// CRC16-XMODEM, as Redis computes it (its `crc16.c`), one table lookup per byte.
    static func crc16(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    static let table: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }
}
