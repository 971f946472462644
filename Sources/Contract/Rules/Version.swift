/// The version of a natural key's row: its version time, then its event id to break a tie. Every
/// consumer applies versions in this order (the loader's upserts compare `(updated_at, event_id)`
/// the same way in SQL), so the latest version wins whatever order the events arrive in.
public struct Version: Sendable, Hashable, Comparable {
    public var time: Timestamp
    public var eventID: String

    public init(time: Timestamp, eventID: String) {
        self.time = time
        self.eventID = eventID
    }

    public static func < (lhs: Version, rhs: Version) -> Bool {
        lhs.time != rhs.time ? lhs.time < rhs.time : lhs.eventID < rhs.eventID
    }
}

extension Timestamp {
    /// The version time of a new version of a row whose applied version is `previous`: now, or
    /// one second past `previous` when the clock is not past it (a new version must be newer).
    public static func nextVersion(after previous: Timestamp, now: Timestamp = .now) -> Timestamp {
        now > previous ? now : Timestamp(microseconds: previous.microseconds + 1_000_000)
    }
}
