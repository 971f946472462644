/// The version of a natural key's row: its version time, then its event id to break a tie. Every
/// consumer applies versions in this order (the loader's upserts compare `(updated_at, event_id)`
/// the same way in SQL), so the latest version wins whatever order the events arrive in.
public struct Version: Sendable, Hashable, Comparable {
    public var time: Timestamp
    /// The event id as two integers when it is 32 lowercase hex digits (every id this project
    /// makes: `EventID`), so a version allocates nothing; any other text is kept as it is.
    /// Ordered as the text orders (the two integers compare as their fixed-width hex does).
    private var high: UInt64 = 0
    private var low: UInt64 = 0
    private var text: String?

    public init(time: Timestamp, eventID: String) {
        var eventID = eventID
        self = eventID.withUTF8 { Version(time: time, eventIDBytes: $0) }
    }

    public init(time: Timestamp, id: EventID) {
        self.time = time
        (high, low) = (id.high, id.low)
    }

    /// From the event id's bytes (an entry's `event_id` field), without making a string.
    public init(time: Timestamp, eventIDBytes bytes: UnsafeBufferPointer<UInt8>) {
        self.time = time
        if let id = Self.canonicalID(bytes) {
            (high, low) = (id.high, id.low)
        } else {
            text = String(decoding: bytes, as: UTF8.self)
        }
    }

    public var eventID: String { text ?? EventID(high: high, low: low).description }

    /// The id as an `EventID` when it is in canonical form.
    public var id: EventID? { text == nil ? EventID(high: high, low: low) : nil }

    public static func < (lhs: Version, rhs: Version) -> Bool {
        if lhs.time != rhs.time { return lhs.time < rhs.time }
        if lhs.text == nil, rhs.text == nil { return (lhs.high, lhs.low) < (rhs.high, rhs.low) }
        return lhs.eventID < rhs.eventID
    }

    /// 32 lowercase hex digits as an id; nil for any other text (kept as text, so it prints and
    /// orders exactly as given).
    static func canonicalID(_ bytes: UnsafeBufferPointer<UInt8>) -> EventID? {
        guard bytes.count == 32 else { return nil }
        var high: UInt64 = 0, low: UInt64 = 0
        for index in 0..<32 {
            let byte = bytes[index]
            let nibble: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = byte - UInt8(ascii: "a") + 10
            default: return nil
            }
            if index < 16 { high = high << 4 | UInt64(nibble) } else { low = low << 4 | UInt64(nibble) }
        }
        return EventID(high: high, low: low)
    }
}

extension Timestamp {
    /// The version time of a new version of a row whose applied version is `previous`: now, or
    /// one second past `previous` when the clock is not past it (a new version must be newer).
    public static func nextVersion(after previous: Timestamp, now: Timestamp = .now) -> Timestamp {
        now > previous ? now : Timestamp(microseconds: previous.microseconds + 1_000_000)
    }
}
