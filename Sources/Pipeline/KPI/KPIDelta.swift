/// The delta rules of the KPI aggregator (the `kpi` group), as pure functions: what each change
/// adds to and takes from every aggregate, as a map of counter name → increment. The aggregator
/// applies the increments (HINCRBY, integers only: money in cents) together with the XACK of the
/// same entries in one atomic step. Nothing here touches Redis.
///
/// Counter names: `revenue`, `lines`, `units` (all-time revenue lines), `revenue:day:YYYY-MM-DD`,
/// `revenue:hour:YYYY-MM-DDTHH`, `revenue:minute:YYYY-MM-DDTHH:MM`, `revenue:month:YYYY-MM`,
/// `revenue:product:ID`, `revenue:category:C`, `revenue:segment_was:S`, `revenue:state_was:S`,
/// `revenue:segment_is:S`, `revenue:customer:ID`, `status:S` (lines by current status, revenue or
/// not), plus the same
/// time buckets for `lines` and `units`.
public enum KPIDelta {
    /// An order line as the aggregator last applied it.
    public struct Line: Sendable, Equatable {
        public var orderID: String
        public var lineNumber: Int
        public var customerID: String
        public var productID: String
        public var status: OrderStatus
        public var quantity: Int64
        public var netCents: Int64
        public var orderTime: Timestamp
        /// The version that was applied: (updated_at, event id).
        public var version: Version

        public init(
            orderID: String, lineNumber: Int, customerID: String, productID: String, status: OrderStatus, quantity: Int64,
            netCents: Int64, orderTime: Timestamp, version: Version
        ) {
            self.orderID = orderID
            self.lineNumber = lineNumber
            self.customerID = customerID
            self.productID = productID
            self.status = status
            self.quantity = quantity
            self.netCents = netCents
            self.orderTime = orderTime
            self.version = version
        }
    }

    /// A version: event time, then event id to break ties (the rule every consumer shares).
    public struct Version: Sendable, Equatable, Comparable {
        public var time: Timestamp
        public var eventID: String
        public init(time: Timestamp, eventID: String) {
            self.time = time
            self.eventID = eventID
        }
        public static func < (lhs: Version, rhs: Version) -> Bool { (lhs.time, lhs.eventID) < (rhs.time, rhs.eventID) }
    }

    /// The dimension attributes a line is counted under: segment, state and category as of its
    /// order time ("as was"), and the customer's current segment ("as is"). `unknown` until the
    /// customer's or product's version arrives. When a line changes, pass the customer's current
    /// segment in both the old and the new attribution: a segment change has already moved the
    /// customer's whole revenue (`segmentNow`).
    public struct Attribution: Sendable, Equatable {
        public var segment: String
        public var state: String
        public var category: String
        public var segmentNow: String
        public static let unknown = Attribution(segment: "unknown", state: "unknown", category: "unknown", segmentNow: "unknown")
        public init(segment: String, state: String, category: String, segmentNow: String) {
            self.segment = segment
            self.state = state
            self.category = category
            self.segmentNow = segmentNow
        }
    }

    public typealias Increments = [String: Int64]

    /// Whether an incoming version replaces the applied one: only a newer version does; a stale
    /// or repeated event changes nothing.
    public static func supersedes(_ incoming: Version, _ applied: Version?) -> Bool {
        guard let applied else { return true }
        return applied < incoming
    }

    /// What a line adds to every aggregate when counted under `attribution` (all zero for a line
    /// whose status is not revenue, but for its status count).
    public static func contribution(_ line: Line, _ attribution: Attribution) -> Increments {
        var out: Increments = ["status:\(line.status.rawValue)": 1]
        guard line.status.countsAsRevenue else { return out }
        let stamp = line.orderTime.description   // 2024-03-01T14:05:00Z (UTC)
        let day = String(stamp.prefix(10)), hour = String(stamp.prefix(13)), minute = String(stamp.prefix(16))
        let month = String(stamp.prefix(7))
        out["revenue"] = line.netCents
        out["lines"] = 1
        out["units"] = line.quantity
        for (name, bucket) in [("day", day), ("hour", hour), ("minute", minute), ("month", month)] {
            out["revenue:\(name):\(bucket)"] = line.netCents
            out["lines:\(name):\(bucket)"] = 1
            out["units:\(name):\(bucket)"] = line.quantity
        }
        out["revenue:product:\(line.productID)"] = line.netCents
        out["revenue:customer:\(line.customerID)"] = line.netCents
        out["revenue:category:\(attribution.category)"] = line.netCents
        out["revenue:segment_was:\(attribution.segment)"] = line.netCents
        out["revenue:state_was:\(attribution.state)"] = line.netCents
        out["revenue:segment_is:\(attribution.segmentNow)"] = line.netCents
        return out
    }

    /// The increments that turn `old` (counted under `oldAttribution`) into `new` (under
    /// `newAttribution`): a cancel or return takes the line back out of every aggregate it was
    /// in, a line that comes back is counted again, a re-attribution moves it. Zero entries are
    /// dropped. `old == nil`: the line is new.
    public static func change(
        from old: (Line, Attribution)?, to new: (Line, Attribution)
    ) -> Increments {
        var out = contribution(new.0, new.1)
        if let old {
            for (name, value) in contribution(old.0, old.1) { out[name, default: 0] -= value }
        }
        return out.filter { $0.value != 0 }
    }

    /// A customer whose current segment changes moves their revenue in the as-of-now view.
    public static func segmentNow(customerRevenueCents: Int64, from old: String?, to new: String) -> Increments {
        var out: Increments = [:]
        if let old { out["revenue:segment_is:\(old)", default: 0] -= customerRevenueCents }
        out["revenue:segment_is:\(new)", default: 0] += customerRevenueCents
        return out.filter { $0.value != 0 }
    }

    /// Adds `more` into `increments`.
    public static func merge(_ increments: inout Increments, _ more: Increments) {
        for (name, value) in more { increments[name, default: 0] += value }
    }
}
