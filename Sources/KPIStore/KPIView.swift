public import Contract
public import KPIModel
import RedisWire

/// Where the KPIs live in Redis and how they are written. Every key shares the hash tag `{kpi}`
/// (one slot), so a batch's figures change in one atomic script call and `warehouse kpis` reads a
/// consistent snapshot in one script call.
///
/// - `ns:{kpi}:totals` (hash): the headline figures, display-ready (money as `12.34`): `revenue`,
///   `lines`, `units`, `orders`, `aov`, `window:5m:revenue` …, `revenue:month:2024-03`,
///   `revenue:segment_was:Premium`, `revenue:segment_is:…`, `revenue:category:…`,
///   `revenue:state_was:…`, `lines:status:placed`, `payments:method:card:count` / `:amount`,
///   `payments:status:…`, `payments:failure_rate`, `payments:refund_rate`, `inventory:on_hand`,
///   `count:orders` …, `watermark`.
/// - `ns:{kpi}:minutes`, `:hours`, `:days` (hashes): per bucket (minutes/hours/days since the
///   epoch, UTC, by order time) `revenue lines units orders`.
/// - `ns:{kpi}:products` (sorted set, revenue in cents), `ns:{kpi}:products:day:YYYY-MM-DD`,
///   `ns:{kpi}:on_hand` (sorted set, units).
/// - `ns:{kpi}:changes` (capped stream): one record per applied batch, what `warehouse tail` reads.
public struct KPIKeys: Sendable {
    public let namespace: String
    public init(namespace: String) { self.namespace = namespace }
    public init(layout: StreamLayout) { self.namespace = layout.namespace }

    var prefix: String { "\(namespace):{kpi}" }
    public var totals: String { "\(prefix):totals" }
    public var minutes: String { "\(prefix):minutes" }
    public var hours: String { "\(prefix):hours" }
    public var days: String { "\(prefix):days" }
    public var products: String { "\(prefix):products" }
    public var dayProductsPrefix: String { "\(prefix):products:day:" }
    public func products(day: Int64) -> String { dayProductsPrefix + CivilDate.format(days: day) }
    public var onHand: String { "\(prefix):on_hand" }
    public var changes: String { "\(prefix):changes" }
    /// Held by the aggregator process that runs the merge stage (which writes the global view).
    public var lease: String { "\(prefix):lease" }
    /// The fencing epoch of the last merge stage to take the lease (INCR on each take).
    public var epoch: String { "\(prefix):epoch" }
    /// The highest epoch that wrote to the `{kpi}` slot: a commit with a lower one is refused.
    public var fence: String { "\(prefix):fence" }
    /// The aggregator processes alive (a sorted set: member name → expiry in ms), from which each
    /// works out which partitions are its own.
    public var members: String { "\(prefix):members" }

    /// `sw:{p3}:kpi`: the start of partition 3's KPI keys (in the partition's slot).
    public func partition(_ partition: Int) -> String { StreamLayout(namespace: namespace).partitionPrefix(partition) + ":kpi" }
    /// Held by the aggregator that owns the partition.
    public func lease(partition: Int) -> String { self.partition(partition) + ":lease" }
    public func epoch(partition: Int) -> String { self.partition(partition) + ":epoch" }
    /// The highest epoch that wrote to the partition's slot.
    public func fence(partition: Int) -> String { self.partition(partition) + ":fence" }
    /// The partition's contribution to the figures (`KPIState.Contribution`), field → `v v …`.
    public func contribution(partition: Int) -> String { self.partition(partition) + ":part" }
    /// What each commit changed in the contribution, for the merge stage to follow.
    public func deltas(partition: Int) -> String { self.partition(partition) + ":deltas" }
    /// The aggregator's persisted records for a stream: same slot as the stream.
    public static func stateKey(stream: String) -> String { stream + ":kpi" }
    /// A stream's retirement: its horizon, newest event time and format (`retiredFormat`), and
    /// in a namespace retired before format 2, the counters of records retired without an archive
    /// (`KPIState+Retention.swift`).
    public static func retiredKey(stream: String) -> String { stream + ":kpi:retired" }
    /// The retirement format: 2 when the archive alone stands for what retired (a rebuild folds
    /// it); a retired key without it holds format-1 counters, converted at the next rebuild.
    public static let retiredFormat = "2"
    /// The stream's retired records (`KPIState+Revival.swift`): a hash by key.
    public static func archiveKey(stream: String) -> String { stream + ":kpi:archive" }
    /// The hashes of the keys that retired into the archive (`RetiredKeys.pack`), appended.
    public static func archivedKeysKey(stream: String) -> String { stream + ":kpi:archived" }
    /// A customer's or product's index of retired orders (`KPIRecord.indexEntry`), appended.
    public static func indexKey(stream: String, customer: String) -> String { stream + ":kpi:ix:c:" + customer }
    public static func indexKey(stream: String, product: String) -> String { stream + ":kpi:ix:p:" + product }

    public func key(_ granularity: KPIState.Granularity) -> String {
        switch granularity {
        case .minute: minutes
        case .hour: hours
        case .day: days
        }
    }
}

/// Renders the state's figures as the fields and members written to Redis.
public enum KPIView {
    /// Money in cents as `12.34`.
    static func money(_ cents: Int64) -> String { DecimalValue.formatCents(cents) }
    /// Millionths rounded to the cent (half away from zero), as `12.34`.
    static func moneyFromMicros(_ micros: Int64) -> String {
        money(DecimalValue.divideRoundingHalfAway(Int128(micros), 10_000).clampedInt64)
    }

    /// The windows shown: name and width in minutes.
    public static let windows: [(name: String, minutes: Int64)] = [("5m", 5), ("1h", 60), ("24h", 1440)]

    /// Every field of the totals hash.
    public static func totals(_ state: KPIState) -> [String: String] {
        var out: [String: String] = [:]
        out.reserveCapacity(256)
        let t = state.totals
        out["revenue"] = money(t.revenueCents)
        out["lines"] = String(t.lines)
        out["units"] = String(t.units)
        out["orders"] = String(t.orders)
        out["aov"] = money(t.aovCents)
        for window in windows {
            let w = state.window(minutes: window.minutes)
            out["window:\(window.name):revenue"] = money(w.revenueCents)
            out["window:\(window.name):orders"] = String(w.orders)
            out["window:\(window.name):lines"] = String(w.lines)
            out["window:\(window.name):units"] = String(w.units)
            out["window:\(window.name):aov"] = money(w.aovCents)
        }
        for (month, value) in state.months {
            let year = month / 12, m = month % 12 + 1
            out["revenue:month:\(year)-\(m < 10 ? "0" : "")\(m)"] = money(value.amount)
        }
        for (name, value) in state.bySegmentWas { out["revenue:segment_was:\(name)"] = money(value.amount) }
        for (name, value) in state.bySegmentIs { out["revenue:segment_is:\(name)"] = money(value.amount) }
        for (name, value) in state.byCategory { out["revenue:category:\(name)"] = money(value.amount) }
        for (name, value) in state.byStateWas { out["revenue:state_was:\(name)"] = money(value.amount) }
        for (status, count) in state.linesByStatus { out["lines:status:\(status.rawValue)"] = String(count) }
        var payments: Int64 = 0
        for (name, value) in state.paymentsByMethod {
            out["payments:method:\(name):count"] = String(value.count)
            out["payments:method:\(name):amount"] = moneyFromMicros(value.amount)
            payments += value.count
        }
        for (name, value) in state.paymentsByStatus {
            out["payments:status:\(name):count"] = String(value.count)
            out["payments:status:\(name):amount"] = moneyFromMicros(value.amount)
        }
        let failed = state.paymentsByStatus["failed"]?.count ?? 0
        let refunded = state.paymentsByStatus["refunded"]?.count ?? 0
        let captured = state.paymentsByStatus["captured"]?.count ?? 0
        out["payments:failure_rate"] = rate(failed, payments)
        out["payments:refund_rate"] = rate(refunded, captured + refunded)
        out["inventory:on_hand"] = String(state.totalOnHand)
        out["inventory:products"] = String(state.onHand.count)
        let c = state.counts
        out["count:orders"] = String(c.orders)
        out["count:order_lines"] = String(c.orderLines)
        out["count:customers"] = String(c.customers)
        out["count:products"] = String(c.products)
        out["count:suppliers"] = String(c.suppliers)
        out["count:payments"] = String(c.payments)
        out["count:movements"] = String(c.movements)
        if let watermark = state.watermark {
            out["watermark"] = watermark.description
            out["watermark:minute"] = String(KPIState.Granularity.minute.bucket(watermark))
            out["watermark:hour"] = String(KPIState.Granularity.hour.bucket(watermark))
            out["watermark:day"] = String(KPIState.Granularity.day.bucket(watermark))
            out["latest_day"] = CivilDate.format(days: KPIState.Granularity.day.bucket(watermark))
        }
        return out
    }

    /// A ratio with four decimals (`0.0526`), `0.0000` when there is nothing to divide by.
    static func rate(_ part: Int64, _ whole: Int64) -> String {
        guard whole > 0 else { return "0.0000" }
        let scaled = DecimalValue.divideRoundingHalfAway(Int128(part) * 10_000, Int128(whole)).clampedInt64
        return DecimalValue(units: scaled, scale: 4).description
    }

    /// A bucket's value: `revenue lines units orders`.
    static func bucket(_ figures: KPIState.Figures) -> String {
        "\(money(figures.revenueCents)) \(figures.lines) \(figures.units) \(figures.orders)"
    }

    static func figures(bucket text: String) -> KPIState.Figures? {
        let parts = text.split(separator: " ")
        guard parts.count == 4, let revenue = DecimalValue(String(parts[0])), let lines = Int64(parts[1]),
              let units = Int64(parts[2]), let orders = Int64(parts[3]) else { return nil }
        return KPIState.Figures(revenueCents: revenue.cents, lines: lines, units: units, orders: orders)
    }

    /// Appends HSET/HDEL/ZADD/ZREM commands for what changed (`dirty`), or for everything when
    /// `dirty` is nil (a rebuild, after DEL of every key; the day × product rankings only with
    /// `dayProducts`: the merge stage's start writes what differs in them itself).
    static func appendWrites(
        _ state: KPIState, dirty: KPIState.Dirty?, totals: [String: String], removedTotals: [String], keys: KPIKeys,
        dayProducts: Bool = true, to batch: inout RedisCommandBuffer
    ) {
        appendHSET(keys.totals, totals.map { ($0.key, $0.value) }, to: &batch)
        batch.append("HDEL", keys.totals, each: removedTotals)

        var bucketSets: [KPIState.Granularity: [(String, String)]] = [:]
        var bucketDeletes: [KPIState.Granularity: [String]] = [:]
        func source(_ g: KPIState.Granularity) -> [Int64: KPIState.Figures] {
            switch g {
            case .minute: state.minutes
            case .hour: state.hours
            case .day: state.days
            }
        }
        if let dirty {
            for bucket in dirty.buckets {
                if let figures = source(bucket.granularity)[bucket.index] {
                    bucketSets[bucket.granularity, default: []].append((String(bucket.index), Self.bucket(figures)))
                } else {
                    bucketDeletes[bucket.granularity, default: []].append(String(bucket.index))
                }
            }
            if !dirty.expiredMinutes.isEmpty { bucketDeletes[.minute, default: []] += dirty.expiredMinutes.map(String.init) }
        } else {
            for g in KPIState.Granularity.allCases {
                bucketSets[g] = source(g).map { (String($0.key), Self.bucket($0.value)) }
            }
        }
        for (g, pairs) in bucketSets { appendHSET(keys.key(g), pairs, to: &batch) }
        for (g, fields) in bucketDeletes { batch.append("HDEL", keys.key(g), each: fields) }

        // Products by revenue, per day, and stock on hand.
        let products = dirty.map { Array($0.products) } ?? Array(state.byProduct.keys)
        appendZSet(keys.products, products.map { ($0, state.byProduct[$0].map(\.amount)) }, to: &batch)
        var perDay: [Int64: [(String, Int64?)]] = [:]
        if let dirty {
            for item in dirty.dayProducts { perDay[item.day, default: []].append((item.productID, state.products(onDay: item.day)[item.productID]?.amount)) }
        } else if dayProducts {
            for (day, products) in state.byDayProduct { perDay[day] = products.map { ($0.key, $0.value.amount) } }
        }
        for (day, members) in perDay { appendZSet(keys.products(day: day), members, to: &batch) }
        let stocked = dirty.map { Array($0.onHand) } ?? Array(state.onHand.keys)
        appendZSet(keys.onHand, stocked.map { ($0, state.onHand[$0].map(\.amount)) }, to: &batch)
    }

    /// HSET in chunks (a command's arguments stay bounded).
    static func appendHSET(_ key: String, _ pairs: [(String, String)], to batch: inout RedisCommandBuffer) {
        var start = 0
        while start < pairs.count {
            let chunk = pairs[start..<min(start + 1000, pairs.count)]
            batch.begin(arguments: 2 + chunk.count * 2)
            batch.add("HSET"); batch.add(key)
            for (field, value) in chunk { batch.add(field); batch.add(value) }
            start += chunk.count
        }
    }

    /// ZADD the members with a score, ZREM those with none.
    static func appendZSet(_ key: String, _ members: [(String, Int64?)], to batch: inout RedisCommandBuffer) {
        let adds = members.compactMap { m in m.1.map { (m.0, $0) } }
        let removes = members.filter { $0.1 == nil }.map(\.0)
        var start = 0
        while start < adds.count {
            let chunk = adds[start..<min(start + 1000, adds.count)]
            batch.begin(arguments: 2 + chunk.count * 2)
            batch.add("ZADD"); batch.add(key)
            for (member, score) in chunk { batch.add(Int(score)); batch.add(member) }
            start += chunk.count
        }
        batch.append("ZREM", key, each: removes)
    }
}
