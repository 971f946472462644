import Contract

/// A partition's share of the figures, as flat fields that merge by addition, and the merged,
/// figure-only state they add up to.
///
/// With the KPIs scaled out by partition, each aggregator's state holds the facts (order lines,
/// payments, movements) of the partitions it owns, and every dimension version of every
/// partition. Every figure the view shows is a sum over facts, and each fact lives in exactly one
/// partition, so the whole is the field-by-field sum of the partitions' contributions; the few
/// exceptions (the dimension counts and the watermark, which every partition sees whole) merge by
/// maximum. Derived figures (AOV, rates, the 5m/1h/24h windows, the latest day) are never
/// contributed: the merged state computes them from the merged primitives, as a single state
/// would (`KPIView.totals`).
///
/// Fields: `tot` (revenue, lines, units, orders), `m:`/`h:`/`d:` + bucket (the same four),
/// `mo:` month, `cat:` category, `sgw:`/`sgi:` segment as was / as is, `stw:` state as was,
/// `pm:`/`ps:` payments by method / status, `p:` product, `dp:` day `:` product, `oh:` product
/// on hand (each amount and count), `ls:` lines by status (count), `ohT` total on hand, `c`
/// (orders, order lines, payments, movements), and by maximum `x:customers`, `x:products`,
/// `x:suppliers`, `x:wm` (the watermark in microseconds).
extension KPIState {
    public typealias Contribution = [String: [Int64]]

    /// True when `event` is a dimension version the state holds as it would after applying it
    /// (a customer's or product's version among its versions, a supplier's latest version): its
    /// record is then the one to persist, even if it reached the state before (a partition's own
    /// dimensions also arrive through the dimension feed, possibly first).
    public func holdsDimension(_ event: Event) -> Bool {
        switch event {
        case .customer(let customer): customers[customer.id]?.contains { $0.version == customer.version } ?? false
        case .product(let product): products[product.id]?.contains { $0.version == product.version } ?? false
        case .supplier(let supplier): suppliers[supplier.id] == supplier.version
        default: false
        }
    }

    /// True for the fields merged by maximum rather than by sum.
    public static func mergesByMaximum(_ field: String) -> Bool { field.hasPrefix("x:") }

    /// The fields whose number does not grow with the history (not buckets, products, day
    /// products or stock per product): cheap to compute whole at every commit.
    public func smallContribution() -> Contribution {
        var out: Contribution = [:]
        out.reserveCapacity(64 + months.count)
        out["tot"] = [totals.revenueCents, totals.lines, totals.units, totals.orders]
        for (month, money) in months { out["mo:\(month)"] = [money.amount, money.count] }
        for (name, money) in byCategory { out["cat:" + name] = [money.amount, money.count] }
        for (name, money) in bySegmentWas { out["sgw:" + name] = [money.amount, money.count] }
        for (name, money) in bySegmentIs { out["sgi:" + name] = [money.amount, money.count] }
        for (name, money) in byStateWas { out["stw:" + name] = [money.amount, money.count] }
        for (status, count) in linesByStatus { out["ls:" + status.rawValue] = [count] }
        for (name, money) in paymentsByMethod { out["pm:" + name] = [money.amount, money.count] }
        for (name, money) in paymentsByStatus { out["ps:" + name] = [money.amount, money.count] }
        out["ohT"] = [totalOnHand]
        out["c"] = [counts.orders, counts.orderLines, counts.payments, counts.movements]
        out["x:customers"] = [counts.customers]
        out["x:products"] = [counts.products]
        out["x:suppliers"] = [counts.suppliers]
        if let watermark { out["x:wm"] = [watermark.microseconds] }
        return out
    }

    /// The large fields that `dirty` names, with their values now (nil: gone).
    public func largeContribution(_ dirty: Dirty) -> [String: [Int64]?] {
        var out: [String: [Int64]?] = [:]
        out.reserveCapacity(dirty.buckets.count + dirty.products.count + dirty.dayProducts.count + dirty.onHand.count)
        // `updateValue`, not subscript assignment: assigning a nil `[Int64]?` through the
        // subscript would remove the key instead of recording the removal.
        for bucket in dirty.buckets {
            let figures: Figures? = switch bucket.granularity {
            case .minute: minutes[bucket.index]
            case .hour: hours[bucket.index]
            case .day: days[bucket.index]
            }
            out.updateValue(figures.map { [$0.revenueCents, $0.lines, $0.units, $0.orders] }, forKey: Self.bucketField(bucket.granularity, bucket.index))
        }
        for minute in dirty.expiredMinutes { out.updateValue(nil, forKey: Self.bucketField(.minute, minute)) }
        for product in dirty.products { out.updateValue(byProduct[product].map { [$0.amount, $0.count] }, forKey: "p:" + product) }
        for item in dirty.dayProducts {
            out.updateValue(byDayProduct[item.day]?[item.productID].map { [$0.amount, $0.count] }, forKey: "dp:\(item.day):\(item.productID)")
        }
        for product in dirty.onHand { out.updateValue(onHand[product].map { [$0.amount, $0.count] }, forKey: "oh:" + product) }
        return out
    }

    /// Every field.
    public func fullContribution() -> Contribution {
        var out = Contribution(minimumCapacity: contributionFieldCount)
        forEachContributionField { out[$0] = $1 }
        return out
    }

    /// Calls `body` with every field and its value (what `fullContribution` collects), without
    /// collecting them: at 26 M events they are about 3.3 M.
    public func forEachContributionField(_ body: (String, [Int64]) throws -> Void) rethrows {
        for (field, value) in smallContribution() { try body(field, value) }
        for (index, f) in minutes { try body(Self.bucketField(.minute, index), [f.revenueCents, f.lines, f.units, f.orders]) }
        for (index, f) in hours { try body(Self.bucketField(.hour, index), [f.revenueCents, f.lines, f.units, f.orders]) }
        for (index, f) in days { try body(Self.bucketField(.day, index), [f.revenueCents, f.lines, f.units, f.orders]) }
        for (product, money) in byProduct { try body("p:" + product, [money.amount, money.count]) }
        for (day, products) in byDayProduct {
            for (product, money) in products { try body("dp:\(day):\(product)", [money.amount, money.count]) }
        }
        for (product, money) in onHand { try body("oh:" + product, [money.amount, money.count]) }
    }

    /// How many fields `forEachContributionField` calls with.
    public var contributionFieldCount: Int {
        smallContribution().count + minutes.count + hours.count + days.count + byProduct.count
            + byDayProduct.values.reduce(0) { $0 + $1.count } + onHand.count
    }

    static func bucketField(_ granularity: Granularity, _ index: Int64) -> String {
        switch granularity {
        case .minute: "m:\(index)"
        case .hour: "h:\(index)"
        case .day: "d:\(index)"
        }
    }

    /// Sets a field merged by maximum (`x:`: the dimension counts and the watermark) of a merged,
    /// figure-only state; the summed fields go through `addContribution`.
    mutating func setMaximumContribution(_ field: String, _ value: [Int64]?) {
        let first = value?.first ?? 0
        switch field {
        case "x:customers": counts.customers = first
        case "x:products": counts.products = first
        case "x:suppliers": counts.suppliers = first
        case "x:wm": if value != nil { advanceWatermark(Timestamp(microseconds: first)) }
        default: break
        }
    }

    /// Adds `new − old` to one field of a merged, figure-only state (a field summed over the
    /// partitions: the state then holds the sum itself, so the merge stage keeps no copy of it),
    /// and marks what the view must rewrite. A group whose amount and count both come to zero is
    /// gone. Fields merged by maximum, and fields it does not know, are ignored.
    public mutating func addContribution(_ field: String, new: [Int64]?, old: [Int64]?) {
        func at(_ index: Int) -> Int64 {
            (new.map { index < $0.count ? $0[index] : 0 } ?? 0) - (old.map { index < $0.count ? $0[index] : 0 } ?? 0)
        }
        func money() -> Money { Money(amount: at(0), count: at(1)) }
        func figures() -> Figures { Figures(revenueCents: at(0), lines: at(1), units: at(2), orders: at(3)) }
        func addMoney<Key: Hashable>(_ groups: inout [Key: Money], _ key: Key) {
            var value = groups[key] ?? Money()
            value.amount += at(0)
            value.count += at(1)
            groups[key] = value.amount == 0 && value.count == 0 ? nil : value
        }
        guard let colon = field.firstIndex(of: ":") else {
            switch field {
            case "tot":
                totals += figures()
            case "ohT": totalOnHand += at(0)
            case "c":
                counts.orders += at(0); counts.orderLines += at(1); counts.payments += at(2); counts.movements += at(3)
            default: break
            }
            return
        }
        let kind = field[..<colon], name = String(field[field.index(after: colon)...])
        switch kind {
        case "m":
            guard let index = Int64(name), index >= minuteHorizon else { return }   // behind the merged watermark's retention
            add(.minute, index, figures())
        case "h": if let index = Int64(name) { add(.hour, index, figures()) }
        case "d": if let index = Int64(name) { add(.day, index, figures()) }
        case "mo": if let index = Int64(name) { addMoney(&months, index) }
        case "cat": addMoney(&byCategory, name)
        case "sgw": addMoney(&bySegmentWas, name)
        case "sgi": addMoney(&bySegmentIs, name)
        case "stw": addMoney(&byStateWas, name)
        case "pm": addMoney(&paymentsByMethod, name)
        case "ps": addMoney(&paymentsByStatus, name)
        case "ls": if let status = OrderStatus(rawValue: name) { linesByStatus[status, default: 0] += at(0) }
        case "p":
            addMoney(&byProduct, name)
            dirty.products.insert(name)
        case "dp":
            guard let split = name.firstIndex(of: ":"), let day = Int64(name[..<split]) else { return }
            let product = String(name[name.index(after: split)...])
            addMoney(&byDayProduct[day, default: [:]], product)
            if byDayProduct[day]?.isEmpty == true { byDayProduct[day] = nil }
            dirty.dayProducts.insert(DayProduct(day: day, productID: product))
        case "oh":
            addMoney(&onHand, name)
            dirty.onHand.insert(name)
        default: break
        }
    }

    /// One field's value as this (merged, figure-only) state holds it, in the shape a partition
    /// contributes it (nil: absent): with a single partition, the merged state *is* its
    /// contribution, so the merge stage reads a field's previous value here instead of keeping a
    /// copy of every field (`ContributionMerge`).
    public func contributionValue(_ field: String) -> [Int64]? {
        func money(_ value: Money?) -> [Int64]? { value.map { [$0.amount, $0.count] } }
        func figures(_ value: Figures?) -> [Int64]? { value.map { [$0.revenueCents, $0.lines, $0.units, $0.orders] } }
        guard let colon = field.firstIndex(of: ":") else {
            switch field {
            case "tot": return figures(totals)
            case "ohT": return [totalOnHand]
            case "c": return [counts.orders, counts.orderLines, counts.payments, counts.movements]
            default: return nil
            }
        }
        let kind = field[..<colon], name = String(field[field.index(after: colon)...])
        switch kind {
        case "m": return Int64(name).flatMap { figures(minutes[$0]) }
        case "h": return Int64(name).flatMap { figures(hours[$0]) }
        case "d": return Int64(name).flatMap { figures(days[$0]) }
        case "mo": return Int64(name).flatMap { money(months[$0]) }
        case "cat": return money(byCategory[name])
        case "sgw": return money(bySegmentWas[name])
        case "sgi": return money(bySegmentIs[name])
        case "stw": return money(byStateWas[name])
        case "pm": return money(paymentsByMethod[name])
        case "ps": return money(paymentsByStatus[name])
        case "ls": return OrderStatus(rawValue: name).flatMap { linesByStatus[$0] }.map { [$0] }
        case "p": return money(byProduct[name])
        case "dp":
            guard let split = name.firstIndex(of: ":"), let day = Int64(name[..<split]) else { return nil }
            return money(byDayProduct[day]?[String(name[name.index(after: split)...])])
        case "oh": return money(onHand[name])
        case "x":
            switch name {
            case "customers": return [counts.customers]
            case "products": return [counts.products]
            case "suppliers": return [counts.suppliers]
            case "wm": return watermark.map { [$0.microseconds] }
            default: return nil
            }
        default: return nil
        }
    }

    /// A contribution value as text (`1 2 3`), and back.
    public static func encode(_ value: [Int64]) -> String { value.map(String.init).joined(separator: " ") }
    public static func decode(_ text: Substring) -> [Int64]? {
        var out: [Int64] = []
        for part in text.split(separator: " ") {
            guard let number = Int64(part) else { return nil }
            out.append(number)
        }
        return out
    }
}

/// A partition owner's side: what changed in its contribution since the last commit.
public struct ContributionTracker: Sendable {
    /// The small fields as last sent.
    private var sent: KPIState.Contribution = [:]

    public init() {}

    /// The fields that changed (nil: removed), given the state and what it marked dirty since the
    /// last call. Call once per commit; `reset` after a rebuild (everything is sent again).
    public mutating func delta(_ state: KPIState, dirty: KPIState.Dirty) -> [String: [Int64]?] {
        var out = state.largeContribution(dirty)
        let small = state.smallContribution()
        for (field, value) in small where sent[field] != value { out[field] = value }
        for field in sent.keys where small[field] == nil { out.updateValue(nil, forKey: field) }
        sent = small
        return out
    }

    /// After a rebuild: the whole contribution, which replaces what was there.
    public mutating func reset(_ state: KPIState) -> KPIState.Contribution {
        sent = state.smallContribution()
        return state.fullContribution()
    }

    /// After a rebuild that brings the persisted contribution up to date itself (it writes what
    /// differs): the small fields count as sent.
    public mutating func restart(_ state: KPIState) {
        sent = state.smallContribution()
    }
}

/// The merge stage's side: every partition's contribution as last heard, and the figure-only
/// state their sum makes (what the global view is written from). The state holds the sums
/// itself: a partition's change adds its difference there (`addContribution`). To take that
/// difference the merge needs each partition's previous value of the field: with several
/// partitions it keeps a copy of each one's contribution; with one, the merged state is that
/// contribution and the previous value is read from it (`contributionValue`), so no copy of
/// every field is kept (at 26 M events, about 3 M fields, most of them day × product: a copy
/// cost about 500 MB).
public struct ContributionMerge: Sendable {
    public let partitionCount: Int
    private var partitions: [Int: KPIState.Contribution] = [:]
    /// The merged figures (no records): `KPIView` writes the global view from it.
    public private(set) var state = KPIState()

    public init(partitions: Int) {
        precondition(partitions >= 1)
        partitionCount = partitions
    }

    private var keepsCopies: Bool { partitionCount > 1 }

    /// Applies a partition's changed fields.
    public mutating func apply(partition: Int, _ changes: [String: [Int64]?]) {
        precondition(partition >= 0 && partition < partitionCount, "partition \(partition) of \(partitionCount)")
        for (field, value) in changes { set(partition, field, value) }
    }

    /// Replaces a partition's whole contribution (after its owner rebuilt it).
    public mutating func replace(partition: Int, with fields: KPIState.Contribution) {
        precondition(partition >= 0 && partition < partitionCount, "partition \(partition) of \(partitionCount)")
        let old = keepsCopies ? partitions[partition] ?? [:] : state.fullContribution()
        for field in old.keys where fields[field] == nil { set(partition, field, nil) }
        for (field, value) in fields { set(partition, field, value) }
    }

    /// What `state` marked for rewriting since the last call.
    public mutating func takeDirty() -> KPIState.Dirty { state.takeDirty() }

    private mutating func set(_ partition: Int, _ field: String, _ value: [Int64]?) {
        guard keepsCopies else {
            let old = state.contributionValue(field)
            if old == value { return }
            if KPIState.mergesByMaximum(field) {
                state.setMaximumContribution(field, value)
            } else {
                state.addContribution(field, new: value, old: old)
            }
            return
        }
        let old = partitions[partition]?[field]
        if old == value { return }
        partitions[partition, default: [:]][field] = value
        if KPIState.mergesByMaximum(field) {
            state.setMaximumContribution(field, partitions.values.compactMap { $0[field] }.max { ($0.first ?? 0) < ($1.first ?? 0) })
        } else {
            state.addContribution(field, new: value, old: old)
        }
    }
}
