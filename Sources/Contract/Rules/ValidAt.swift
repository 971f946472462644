/// SCD type 2: which version of a customer or product was valid at time t. The one rule, in
/// Swift; the warehouse's SQL (the loader's key resolution, `customer_key_at`/`product_key_at`,
/// and its period rebuild, which keeps only the latest version at any one instant) gives the same
/// answers over the rule table in `Tests/Fixtures/rules.json`, which the tests run through both.
///
/// - Versions are ordered by `Version`: time, then event id.
/// - At `t`, the valid version is the latest whose time is at or before `t` (of two at the same
///   instant, the one with the greater event id).
/// - A fact older than every version joins the earliest instant's version (the latest there by
///   event id): a late first version does not leave a fact without a member.
/// - With no version at all the member is inferred (the caller's "unknown").
public enum ValidAt {
    /// The index in `versions` (sorted by `Version`) of the version valid at `time`; nil when
    /// there is none.
    public static func index<Versions: RandomAccessCollection>(
        in versions: Versions, at time: Timestamp, version: (Versions.Element) -> Version
    ) -> Versions.Index? {
        guard let first = versions.first else { return nil }
        if let valid = versions.lastIndex(where: { version($0).time <= time }) { return valid }
        let earliest = version(first).time
        return versions.lastIndex { version($0).time == earliest }
    }
}
