/// The statuses of an order line, and the rule of how a line's status moves and what counts.
///
/// - A line's status is its latest version's (by `Version`: updated_at, then event id), whatever
///   order the versions arrive in: a late "placed" does not undo a "shipped".
/// - Revenue (and orders, units, AOV and every mix) counts a line while its status is placed,
///   shipped or delivered; cancelled and returned take the line's amount back out.
///
/// The warehouse's SQL has the same rule once: `counts_as_revenue(status)` (migration 0004),
/// used by the summary and the analytics queries; the loader's upserts keep the latest version
/// by `(updated_at, event_id)`. The rule table (`Tests/Fixtures/rules.json`) runs both.
public enum OrderStatus: String, CaseIterable, Sendable {
    case placed, shipped, delivered, cancelled, returned

    public var countsAsRevenue: Bool { self == .placed || self == .shipped || self == .delivered }
}
