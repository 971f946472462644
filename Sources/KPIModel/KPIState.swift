public import Contract
/// The KPI aggregator's state and rules, as a pure value: events in, figures out. Nothing here
/// touches Redis, so every rule (progressions, cancels, returns, stale and repeated versions,
/// late dimensions, segment changes) is unit-tested on its own.
///
/// The state is what the events determine: each order line's latest version (by version time,
/// then event id), every version of each customer and product, each payment's and movement's
/// latest version, the suppliers seen. Applying the same set of events in any order gives the
/// same state and the same figures; that is what makes the aggregator safe to crash, redeliver
/// and replay (the aggregator persists each changed record with the XACK of its entry and, after
/// a restart, rebuilds the figures by applying the persisted records again).
///
/// Every figure is kept as a running total updated by the delta between a line's old and new
/// contribution: a cancel or return takes the line back out of every aggregate it was in, a line
/// that comes back is counted again, a new customer or product version moves the lines whose
/// attribution it changes. Money is integer cents.
public struct KPIState: Sendable {
    // MARK: - Events

    /// A version: event time, then event id to break ties (the contract's rule, `Contract.Version`).
    public typealias Version = Contract.Version

    public struct Line: Sendable, Equatable {
        public var orderID: String
        public var lineNumber: Int
        public var customerID: String
        public var productID: String
        public var status: OrderStatus
        public var quantity: Int64
        public var netCents: Int64
        public var orderTime: Timestamp
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

    public struct Customer: Sendable, Equatable {
        public var id: String
        public var version: Version
        public var segment: String
        /// nil when the version has no state (counted under `unknown`, as SQL's coalesce does).
        public var state: String?
        public init(id: String, version: Version, segment: String, state: String?) {
            self.id = id
            self.version = version
            self.segment = segment
            self.state = state
        }
    }

    public struct Product: Sendable, Equatable {
        public var id: String
        public var version: Version
        public var category: String
        public init(id: String, version: Version, category: String) {
            self.id = id
            self.version = version
            self.category = category
        }
    }

    public struct Supplier: Sendable, Equatable {
        public var id: String
        public var version: Version
        public init(id: String, version: Version) {
            self.id = id
            self.version = version
        }
    }

    public struct Payment: Sendable, Equatable {
        public var id: String
        public var version: Version
        public var method: String
        public var status: String
        /// The amount in millionths.
        public var amountMicros: Int64
        public init(id: String, version: Version, method: String, status: String, amountMicros: Int64) {
            self.id = id
            self.version = version
            self.method = method
            self.status = status
            self.amountMicros = amountMicros
        }
    }

    public struct Movement: Sendable, Equatable {
        public var id: String
        public var version: Version
        public var productID: String
        public var quantity: Int64
        public init(id: String, version: Version, productID: String, quantity: Int64) {
            self.id = id
            self.version = version
            self.productID = productID
            self.quantity = quantity
        }
    }

    public enum Event: Sendable, Equatable {
        case line(Line)
        case customer(Customer)
        case product(Product)
        case supplier(Supplier)
        case payment(Payment)
        case movement(Movement)

        public var version: Version {
            switch self {
            case .line(let e): e.version
            case .customer(let e): e.version
            case .product(let e): e.version
            case .supplier(let e): e.version
            case .payment(let e): e.version
            case .movement(let e): e.version
            }
        }
    }

    // MARK: - Figures

    /// Revenue, revenue lines, units and orders with revenue, of one period or of all time.
    public struct Figures: Sendable, Equatable {
        public var revenueCents: Int64 = 0
        public var lines: Int64 = 0
        public var units: Int64 = 0
        public var orders: Int64 = 0
        public init(revenueCents: Int64 = 0, lines: Int64 = 0, units: Int64 = 0, orders: Int64 = 0) {
            self.revenueCents = revenueCents
            self.lines = lines
            self.units = units
            self.orders = orders
        }
        public var isEmpty: Bool { lines == 0 && orders == 0 && revenueCents == 0 && units == 0 }
        /// Average order value in cents (revenue ÷ orders with revenue), 0 without orders.
        public var aovCents: Int64 {
            orders == 0 ? 0 : Int64((Double(revenueCents) / Double(orders)).rounded(.toNearestOrAwayFromZero))
        }
        static func += (lhs: inout Figures, rhs: Figures) {
            lhs.revenueCents += rhs.revenueCents
            lhs.lines += rhs.lines
            lhs.units += rhs.units
            lhs.orders += rhs.orders
        }
    }

    /// An amount and how many things make it up (a group is shown while its count is positive,
    /// as a SQL GROUP BY shows the groups that have rows). The amount is in cents for revenue, in
    /// millionths for payments (amounts are summed exactly, then rounded, as SQL does), in units
    /// for stock on hand.
    public struct Money: Sendable, Equatable {
        public var amount: Int64 = 0
        public var count: Int64 = 0
        public init(amount: Int64 = 0, count: Int64 = 0) {
            self.amount = amount
            self.count = count
        }
    }

    /// The dimension attributes a line is counted under: segment, state and category as of its
    /// order time ("as was"), and the customer's current segment ("as is"); `unknown` until the
    /// customer's or product's first version arrives.
    public struct Attribution: Sendable, Equatable {
        public var segment: String
        public var state: String
        public var category: String
        public var segmentNow: String
        public static let unknownName = "unknown"
        public static let unknown = Attribution(segment: unknownName, state: unknownName, category: unknownName, segmentNow: unknownName)
        public init(segment: String, state: String, category: String, segmentNow: String) {
            self.segment = segment
            self.state = state
            self.category = category
            self.segmentNow = segmentNow
        }
    }

    public enum Granularity: String, Sendable, CaseIterable {
        case minute, hour, day
        public var microseconds: Int64 {
            switch self {
            case .minute: 60_000_000
            case .hour: 3_600_000_000
            case .day: 86_400_000_000
            }
        }
        /// The bucket (minutes, hours or days since the epoch) of `time`.
        public func bucket(_ time: Timestamp) -> Int64 {
            let us = time.microseconds
            return us >= 0 ? us / microseconds : (us - microseconds + 1) / microseconds
        }
    }

    public struct Bucket: Sendable, Hashable {
        public var granularity: Granularity
        public var index: Int64
    }

    public struct DayProduct: Sendable, Hashable {
        public var day: Int64
        public var productID: String
    }

    /// Minute buckets older than this (behind the newest event time) are dropped.
    public static let minuteRetention: Int64 = 48 * 60

    public internal(set) var totals = Figures()
    public internal(set) var minutes: [Int64: Figures] = [:]
    public internal(set) var hours: [Int64: Figures] = [:]
    public internal(set) var days: [Int64: Figures] = [:]
    /// Revenue by month (year × 12 + month − 1).
    public internal(set) var months: [Int64: Money] = [:]
    public internal(set) var byCategory: [String: Money] = [:]
    public internal(set) var bySegmentWas: [String: Money] = [:]
    public internal(set) var byStateWas: [String: Money] = [:]
    public internal(set) var bySegmentIs: [String: Money] = [:]
    public internal(set) var byProduct: [String: Money] = [:]
    public internal(set) var byDayProduct: [Int64: [String: Money]] = [:]
    public internal(set) var linesByStatus: [OrderStatus: Int64] = Dictionary(uniqueKeysWithValues: OrderStatus.allCases.map { ($0, 0) })
    public internal(set) var paymentsByMethod: [String: Money] = [:]
    public internal(set) var paymentsByStatus: [String: Money] = [:]
    /// On hand per product, and how many movements make it up.
    public internal(set) var onHand: [String: Money] = [:]
    public internal(set) var totalOnHand: Int64 = 0
    /// The newest event time seen.
    public internal(set) var watermark: Timestamp?

    public struct Counts: Sendable, Equatable {
        public var orders: Int64 = 0
        public var orderLines: Int64 = 0
        public var customers: Int64 = 0
        public var products: Int64 = 0
        public var suppliers: Int64 = 0
        public var payments: Int64 = 0
        public var movements: Int64 = 0
    }
    public internal(set) var counts = Counts()

    // MARK: - What changed since `takeDirty()` (for writing only what moved)

    public struct Dirty: Sendable {
        public var buckets: Set<Bucket> = []
        public var products: Set<String> = []
        public var dayProducts: Set<DayProduct> = []
        public var onHand: Set<String> = []
        /// Minute buckets that fell behind the retention horizon.
        public var expiredMinutes: [Int64] = []
        public var isEmpty: Bool { buckets.isEmpty && products.isEmpty && dayProducts.isEmpty && onHand.isEmpty && expiredMinutes.isEmpty }
    }
    var dirty = Dirty()

    public mutating func takeDirty() -> Dirty {
        defer { dirty = Dirty() }
        return dirty
    }

    // MARK: - State

    struct LineKey: Hashable, Sendable {
        var orderID: String
        var lineNumber: Int
    }

    struct Applied: Sendable {
        var line: Line
        var attribution: Attribution
        /// The stream whose state hash holds the line's record (see `retire`).
        var origin: Int32
    }

    struct Held<Value: Sendable>: Sendable {
        var value: Value
        var origin: Int32
    }

    struct OrderAt: Hashable, Sendable {
        var orderID: String
        var time: Int64
    }

    /// Every line's latest version, in pages (`PagedMap`: the records are most of the memory).
    var lines = PagedMap<LineKey, Applied>()
    var linesOfCustomer: [String: [LineKey]] = [:]
    var linesOfProduct: [String: [LineKey]] = [:]
    var customers: [String: [Customer]] = [:]
    var products: [String: [Product]] = [:]
    var suppliers: [String: Version] = [:]
    var payments = PagedMap<String, Held<Payment>>()
    var movements = PagedMap<String, Held<Movement>>()
    var linesOfOrder: [String: Int] = [:]
    /// Revenue lines per order and order time: an order counts (in its buckets and in AOV) while
    /// it has at least one.
    var revenueLinesOfOrder: [OrderAt: Int] = [:]
    /// The first minute bucket kept (monotonic).
    var minuteHorizon = Int64.min
    /// Per stream (origin): the newest event time applied, and the horizon below which its
    /// records were retired (`KPIState+Retention.swift`).
    var originWatermark: [Int32: Int64] = [:]
    var horizon: [Int32: Int64] = [:]
    /// Revenue of retired lines per customer (it still moves with the customer's segment in the
    /// as-is view).
    var retiredOfCustomer: [String: Money] = [:]
    /// Revenue of retired lines per product (a late product version may re-attribute them).
    var retiredOfProduct: [String: Money] = [:]
    /// Per origin: the keys that retired into its archive (a filter: "no" is certain).
    var retiredKeys: [Int32: RetiredKeys] = [:]
    /// Every minute bucket created (some since emptied), smallest first: expiring the minutes
    /// behind the horizon costs O(log n) each, never a scan.
    var minuteQueue = MinHeap()

    public init() {}

    // MARK: - Applying events

    /// What applying an event did.
    public enum Outcome: Sendable, Equatable {
        /// It changed the state (a new line version, a new dimension version, …).
        case applied
        /// A stale or repeated version: nothing changed.
        case unchanged
    }

    /// Applies one event; true when it changed the state (a new line version, a new dimension
    /// version, …), false for a stale or repeated one, which changes nothing.
    @discardableResult
    public mutating func apply(_ event: Event) -> Bool { apply(event, origin: 0) == .applied }

    /// Applies one event read from the stream `origin` (records are retired per stream).
    /// An event that may change a retired record (`recall`) applies after the record is revived.
    public mutating func apply(_ event: Event, origin: Int32) -> Outcome {
        advanceWatermark(event.version.time)
        let changed: Bool
        switch event {
        case .line(let line): changed = apply(line, origin: origin)
        case .customer(let customer): changed = apply(customer)
        case .product(let product): changed = apply(product)
        case .supplier(let supplier):
            if let applied = suppliers[supplier.id] {
                guard applied < supplier.version else { return .unchanged }
            } else {
                counts.suppliers += 1
            }
            suppliers[supplier.id] = supplier.version
            changed = true
        case .payment(let payment): changed = apply(payment, origin: origin)
        case .movement(let movement): changed = apply(movement, origin: origin)
        }
        guard changed else { return .unchanged }
        let time = event.version.time.microseconds
        if originWatermark[origin].map({ $0 < time }) ?? true { originWatermark[origin] = time }
        return .applied
    }

    private mutating func apply(_ line: Line, origin: Int32) -> Bool {
        let key = LineKey(orderID: line.orderID, lineNumber: line.lineNumber)
        let attribution = attribution(customerID: line.customerID, productID: line.productID, at: line.orderTime)
        let slot = lines.slot(for: key)
        if let slot {
            let old = lines[slot: slot]
            guard old.line.version < line.version else { return false }
            let o = old.line
            if o.status.countsAsRevenue == line.status.countsAsRevenue && o.netCents == line.netCents && o.quantity == line.quantity
                && o.orderTime == line.orderTime && o.productID == line.productID && o.customerID == line.customerID
                && old.attribution == attribution {
                // A progression (placed → shipped → delivered): only the status counts move.
                linesByStatus[o.status, default: 0] -= 1
                linesByStatus[line.status, default: 0] += 1
                lines[slot: slot] = Applied(line: line, attribution: attribution, origin: origin)
                return true
            }
            contribute(old.line, old.attribution, sign: -1)
            if old.line.customerID != line.customerID {
                Self.remove(key, from: &linesOfCustomer, old.line.customerID)
                linesOfCustomer[line.customerID, default: []].append(key)
            }
            if old.line.productID != line.productID {
                Self.remove(key, from: &linesOfProduct, old.line.productID)
                linesOfProduct[line.productID, default: []].append(key)
            }
        } else {
            counts.orderLines += 1
            let count = linesOfOrder[line.orderID, default: 0] + 1
            linesOfOrder[line.orderID] = count
            if count == 1 { counts.orders += 1 }
            linesOfCustomer[line.customerID, default: []].append(key)
            linesOfProduct[line.productID, default: []].append(key)
        }
        contribute(line, attribution, sign: 1)
        if let slot {
            lines[slot: slot] = Applied(line: line, attribution: attribution, origin: origin)
        } else {
            lines.insert(Applied(line: line, attribution: attribution, origin: origin), for: key)
        }
        return true
    }

    private mutating func apply(_ customer: Customer) -> Bool {
        var versions = customers[customer.id] ?? []
        guard !versions.contains(where: { $0.version == customer.version }) else { return false }
        let segmentBefore = versions.last?.segment ?? Attribution.unknownName
        let index = versions.firstIndex { customer.version < $0.version } ?? versions.endIndex
        versions.insert(customer, at: index)
        if versions.count == 1 { counts.customers += 1 }
        customers[customer.id] = versions
        reattribute(linesOfCustomer[customer.id] ?? [])
        if let retired = retiredOfCustomer[customer.id], versions.last!.segment != segmentBefore {
            // Retired lines keep their as-was attribution but follow the customer's segment.
            Self.add(&bySegmentIs, segmentBefore, Money(amount: -retired.amount, count: -retired.count))
            Self.add(&bySegmentIs, versions.last!.segment, retired)
        }
        return true
    }

    private mutating func apply(_ product: Product) -> Bool {
        var versions = products[product.id] ?? []
        guard !versions.contains(where: { $0.version == product.version }) else { return false }
        let index = versions.firstIndex { product.version < $0.version } ?? versions.endIndex
        versions.insert(product, at: index)
        if versions.count == 1 { counts.products += 1 }
        products[product.id] = versions
        reattribute(linesOfProduct[product.id] ?? [])
        return true
    }

    private mutating func apply(_ payment: Payment, origin: Int32) -> Bool {
        if let old = payments[payment.id]?.value {
            guard old.version < payment.version else { return false }
            Self.add(&paymentsByMethod, old.method, Money(amount: -old.amountMicros, count: -1))
            Self.add(&paymentsByStatus, old.status, Money(amount: -old.amountMicros, count: -1))
        } else {
            counts.payments += 1
        }
        Self.add(&paymentsByMethod, payment.method, Money(amount: payment.amountMicros, count: 1))
        Self.add(&paymentsByStatus, payment.status, Money(amount: payment.amountMicros, count: 1))
        payments[payment.id] = Held(value: payment, origin: origin)
        return true
    }

    private mutating func apply(_ movement: Movement, origin: Int32) -> Bool {
        if let old = movements[movement.id]?.value {
            guard old.version < movement.version else { return false }
            Self.add(&onHand, old.productID, Money(amount: -old.quantity, count: -1))
            totalOnHand -= old.quantity
            dirty.onHand.insert(old.productID)
        } else {
            counts.movements += 1
        }
        Self.add(&onHand, movement.productID, Money(amount: movement.quantity, count: 1))
        totalOnHand += movement.quantity
        dirty.onHand.insert(movement.productID)
        movements[movement.id] = Held(value: movement, origin: origin)
        return true
    }

    /// Moves every line of `keys` whose attribution a new dimension version changes.
    private mutating func reattribute(_ keys: [LineKey]) {
        for key in keys {
            guard let slot = lines.slot(for: key) else { continue }
            let applied = lines[slot: slot]
            let line = applied.line
            let now = attribution(customerID: line.customerID, productID: line.productID, at: line.orderTime)
            guard now != applied.attribution else { continue }
            contribute(line, applied.attribution, sign: -1)
            contribute(line, now, sign: 1)
            lines[slot: slot].attribution = now
        }
    }

    /// The attribution of a line: the customer's and product's versions valid at `time` (the
    /// contract's SCD2 rule, `ValidAt`), and the customer's current segment.
    func attribution(customerID: String, productID: String, at time: Timestamp) -> Attribution {
        var result = Attribution.unknown
        if let versions = customers[customerID], let current = versions.last {
            let valid = Self.valid(versions, at: time)
            result.segment = valid.segment
            result.state = valid.state ?? Attribution.unknownName
            result.segmentNow = current.segment
        }
        if let versions = products[productID], !versions.isEmpty {
            result.category = Self.valid(versions, at: time).category
        }
        return result
    }

    /// The contract's SCD2 rule (`ValidAt`) over a key's versions, sorted by `Version`.
    private static func valid<T>(_ versions: [T], at time: Timestamp) -> T where T: HasVersion {
        versions[ValidAt.index(in: versions, at: time, version: \.version)!]
    }

    /// Adds (sign +1) or takes out (−1) what `line` contributes when counted under `attribution`.
    mutating func contribute(_ line: Line, _ attribution: Attribution, sign: Int64) {
        linesByStatus[line.status, default: 0] += sign
        guard line.status.countsAsRevenue else { return }
        let money = Money(amount: sign * line.netCents, count: sign)
        var figures = Figures(revenueCents: sign * line.netCents, lines: sign, units: sign * line.quantity)
        let at = OrderAt(orderID: line.orderID, time: line.orderTime.microseconds)
        let before = revenueLinesOfOrder[at, default: 0]
        let after = before + Int(sign)
        revenueLinesOfOrder[at] = after == 0 ? nil : after
        if before == 0 && after > 0 { figures.orders = 1 } else if before > 0 && after == 0 { figures.orders = -1 }
        totals += figures
        let day = addBuckets(figures, at: line.orderTime)
        Self.add(&months, Self.month(ofDay: day), money)

        Self.add(&byProduct, line.productID, money)
        dirty.products.insert(line.productID)
        Self.add(&byDayProduct[day, default: [:]], line.productID, money)
        if byDayProduct[day]?.isEmpty == true { byDayProduct[day] = nil }
        dirty.dayProducts.insert(DayProduct(day: day, productID: line.productID))
        Self.add(&byCategory, attribution.category, money)
        Self.add(&bySegmentWas, attribution.segment, money)
        Self.add(&byStateWas, attribution.state, money)
        Self.add(&bySegmentIs, attribution.segmentNow, money)
    }

    /// Adds `figures` to the minute (unless behind the minute horizon), hour and day buckets of
    /// `time`; returns the day.
    @discardableResult
    mutating func addBuckets(_ figures: Figures, at time: Timestamp) -> Int64 {
        let minute = Granularity.minute.bucket(time)
        if minute >= minuteHorizon { add(.minute, minute, figures) }
        add(.hour, Granularity.hour.bucket(time), figures)
        let day = Granularity.day.bucket(time)
        add(.day, day, figures)
        return day
    }

    /// The month bucket (months since year 0) of a day bucket.
    static func month(ofDay day: Int64) -> Int64 {
        let civil = CivilDate.civilFromDays(day)
        return Int64(civil.year * 12 + civil.month - 1)
    }

    mutating func add(_ granularity: Granularity, _ index: Int64, _ figures: Figures) {
        switch granularity {
        case .minute:
            if minutes[index] == nil { minuteQueue.push(index) }
            Self.add(&minutes, index, figures)
        case .hour: Self.add(&hours, index, figures)
        case .day: Self.add(&days, index, figures)
        }
        dirty.buckets.insert(Bucket(granularity: granularity, index: index))
    }

    static func add(_ buckets: inout [Int64: Figures], _ index: Int64, _ figures: Figures) {
        var value = buckets[index] ?? Figures()
        value += figures
        buckets[index] = value.isEmpty ? nil : value
    }

    static func add<Key: Hashable>(_ groups: inout [Key: Money], _ key: Key, _ money: Money) {
        var value = groups[key] ?? Money()
        value.amount += money.amount
        value.count += money.count
        groups[key] = value.count == 0 ? nil : value
    }

    private static func remove(_ key: LineKey, from index: inout [String: [LineKey]], _ id: String) {
        guard let position = index[id]?.firstIndex(of: key) else { return }
        index[id]!.remove(at: position)
        if index[id]!.isEmpty { index[id] = nil }
    }

    mutating func advanceWatermark(_ time: Timestamp) {
        guard watermark.map({ $0 < time }) ?? true else { return }
        watermark = time
        let horizon = Granularity.minute.bucket(time) - Self.minuteRetention
        guard horizon > minuteHorizon else { return }
        minuteHorizon = horizon
        while let minute = minuteQueue.min, minute < horizon {
            minuteQueue.popMin()
            guard minutes.removeValue(forKey: minute) != nil else { continue }
            dirty.buckets.remove(Bucket(granularity: .minute, index: minute))
            dirty.expiredMinutes.append(minute)
        }
    }

    // MARK: - Reading

    /// The totals of the minutes in the `width` minutes up to and including the watermark's.
    public func window(minutes width: Int64) -> Figures {
        guard let watermark else { return Figures() }
        let last = Granularity.minute.bucket(watermark)
        var sum = Figures()
        if Int64(minutes.count) < width {
            for (minute, figures) in minutes where minute > last - width && minute <= last { sum += figures }
        } else {
            for minute in (last - width + 1)...last { if let figures = minutes[minute] { sum += figures } }
        }
        return sum
    }

    /// Revenue (and lines) of each product on `day`.
    public func products(onDay day: Int64) -> [String: Money] { byDayProduct[day] ?? [:] }
}

/// A binary min-heap of bucket numbers.
struct MinHeap: Sendable {
    private var items: [Int64] = []

    var min: Int64? { items.first }

    mutating func push(_ value: Int64) {
        items.append(value)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child] < items[parent] else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func popMin() {
        guard !items.isEmpty else { return }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < items.count && items[left] < items[smallest] { smallest = left }
            if right < items.count && items[right] < items[smallest] { smallest = right }
            if smallest == parent { return }
            items.swapAt(parent, smallest)
            parent = smallest
        }
    }
}

protocol HasVersion { var version: KPIState.Version { get } }
extension KPIState.Customer: HasVersion {}
extension KPIState.Product: HasVersion {}
