import Contract
/// State retention: what keeps the aggregator's state (and so Redis's memory) bounded under a
/// live load that never stops.
///
/// Figures never change when records retire; only what is *held* does. A pass retires, per
/// stream (origin), every order whose order time and every line's last version are older than the
/// stream's newest event time minus the retention (the order has been quiet that long) and whose
/// lines' customer and product have arrived (a line counted under `unknown` waits for its late
/// dimension), and every payment and movement whose last version is that old. Their contributions move into the
/// origin's retired aggregate: integer counters (`t:r` revenue of all time, `d:19800:o` orders of a
/// day, `cat:Books:a` revenue of a category, `cu:C1:a` revenue of a customer's retired lines, …)
/// that the aggregator adds with HINCRBY in the same atomic call as the HDEL of the retired records. A
/// rebuild applies the records still held and adds the counters back, which gives the same figures.
///
/// What a retired record no longer does, by design (the semantics of Flink's state TTL):
/// - an event for an order line whose order time is before its stream's horizon, or for a
///   payment or movement whose version is before it, and whose key is not held, is refused
///   (`Outcome.beyondHorizon`; the aggregator dead-letters it with the reason): it may change a
///   record that retired, and counting it as new could count something twice;
/// - a later version of a retired payment or movement whose time is after the horizon cannot be
///   told from a new one: it is counted as new (payments and movements settle well within any
///   sensible retention; the synthetic load never updates one);
/// - a customer or product version dated before a retired line's order time (a correction of
///   history older than the retention) no longer re-attributes that line's as-was mixes
///   (category, segment and state at order time); its as-is segment still follows the customer
///   (`cu:` counters). A first version of a late member is not affected: lines waiting for one
///   are held.
extension KPIState {
    /// What one pass retired from one origin's records, and the counters that replace them.
    public struct Retirement: Sendable {
        public var origin: Int32
        /// The new horizon and the origin's newest event time, in microseconds.
        public var horizon: Int64
        public var watermark: Int64
        public var lines: [(orderID: String, lineNumber: Int)] = []
        public var payments: [String] = []
        public var movements: [String] = []
        /// Field → amount to add, in the origin's retired aggregate.
        public var counters: [String: Int64] = [:]
        /// Counter fields of minute buckets that fell behind the minute retention.
        public var expiredFields: [String] = []
        public var records: Int { lines.count + payments.count + movements.count }
    }

    /// Retires what has been quiet for `retention` microseconds in each origin.
    public mutating func retire(olderThan retention: Int64) -> [Retirement] {
        var cutoffs: [Int32: Int64] = [:]
        for (origin, newest) in originWatermark {
            let cutoff = newest - retention
            if cutoff > (horizon[origin] ?? .min) { cutoffs[origin] = cutoff }
        }
        guard !cutoffs.isEmpty else { return [] }
        var result: [Int32: Retirement] = [:]
        for (origin, cutoff) in cutoffs {
            result[origin] = Retirement(origin: origin, horizon: cutoff, watermark: originWatermark[origin]!)
        }

        // Orders: all of an order's lines retire together (its order counts are final then).
        var busy = Set<String>()
        var quiet: [String: [LineKey]] = [:]
        for (key, applied) in lines {
            guard let cutoff = cutoffs[applied.origin] else { continue }
            // A line still counted under `unknown` waits for a late customer or product: held.
            if applied.line.orderTime.microseconds >= cutoff || applied.line.version.time.microseconds >= cutoff
                || customers[applied.line.customerID] == nil || products[applied.line.productID] == nil {
                busy.insert(key.orderID)
            } else {
                quiet[key.orderID, default: []].append(key)
            }
        }
        var retiredKeys = Set<LineKey>()
        var touchedCustomers = Set<String>(), touchedProducts = Set<String>()
        for (orderID, keys) in quiet where !busy.contains(orderID) {
            let origin = lines[keys[0]]!.origin
            var counters = result[origin]!.counters
            result[origin]!.counters = [:]  // so `counters` is the only reference (no copy per order)
            var times = Set<Int64>()
            for key in keys {
                let applied = lines.removeValue(forKey: key)!
                let line = applied.line, a = applied.attribution
                retiredKeys.insert(key)
                touchedCustomers.insert(line.customerID)
                touchedProducts.insert(line.productID)
                result[origin]!.lines.append((key.orderID, key.lineNumber))
                counters["ls:\(line.status.rawValue)", default: 0] += 1
                counters["c:lines", default: 0] += 1
                guard line.status.countsAsRevenue else { continue }
                times.insert(line.orderTime.microseconds)
                let figures = Figures(revenueCents: line.netCents, lines: 1, units: line.quantity)
                Self.count(figures, "t", into: &counters)
                let minute = Granularity.minute.bucket(line.orderTime)
                if minute >= minuteHorizon {
                    Self.count(figures, "m:\(minute)", into: &counters)
                    retiredMinutes[origin, default: []].insert(minute)
                }
                Self.count(figures, "h:\(Granularity.hour.bucket(line.orderTime))", into: &counters)
                let day = Granularity.day.bucket(line.orderTime)
                Self.count(figures, "d:\(day)", into: &counters)
                let civil = CivilDate.civilFromDays(day)
                let money = Money(amount: line.netCents, count: 1)
                Self.count(money, "mo:\(civil.year * 12 + civil.month - 1)", into: &counters)
                Self.count(money, "cat:\(a.category)", into: &counters)
                Self.count(money, "sw:\(a.segment)", into: &counters)
                Self.count(money, "stw:\(a.state)", into: &counters)
                Self.count(money, "cu:\(line.customerID)", into: &counters)
                Self.count(money, "p:\(line.productID)", into: &counters)
                Self.count(money, "dp:\(day):\(line.productID)", into: &counters)
                Self.add(&retiredOfCustomer, line.customerID, money)
            }
            counters["c:orders", default: 0] += 1
            linesOfOrder[orderID] = nil
            for time in times {
                let at = OrderAt(orderID: orderID, time: time)
                guard revenueLinesOfOrder.removeValue(forKey: at) != nil else { continue }
                let orderTime = Timestamp(microseconds: time)
                let one = Figures(orders: 1)
                Self.count(one, "t", into: &counters)
                let minute = Granularity.minute.bucket(orderTime)
                if minute >= minuteHorizon { Self.count(one, "m:\(minute)", into: &counters) }
                Self.count(one, "h:\(Granularity.hour.bucket(orderTime))", into: &counters)
                Self.count(one, "d:\(Granularity.day.bucket(orderTime))", into: &counters)
            }
            result[origin]!.counters = counters
        }
        for id in touchedCustomers { Self.forget(retiredKeys, in: &linesOfCustomer, id) }
        for id in touchedProducts { Self.forget(retiredKeys, in: &linesOfProduct, id) }

        // Chosen first, then removed: removing from a `PagedMap` while iterating it would copy it.
        let oldPayments = payments.filter { item in cutoffs[item.value.origin].map { item.value.value.version.time.microseconds < $0 } ?? false }
        for (id, held) in oldPayments {
            let p = held.value
            payments[id] = nil
            result[held.origin]!.payments.append(id)
            let money = Money(amount: p.amountMicros, count: 1)
            Self.count(money, "pm:\(p.method)", into: &result[held.origin]!.counters)
            Self.count(money, "ps:\(p.status)", into: &result[held.origin]!.counters)
            result[held.origin]!.counters["c:payments", default: 0] += 1
        }
        let oldMovements = movements.filter { item in cutoffs[item.value.origin].map { item.value.value.version.time.microseconds < $0 } ?? false }
        for (id, held) in oldMovements {
            let m = held.value
            movements[id] = nil
            result[held.origin]!.movements.append(id)
            Self.count(Money(amount: m.quantity, count: 1), "oh:\(m.productID)", into: &result[held.origin]!.counters)
            result[held.origin]!.counters["c:movements", default: 0] += 1
        }

        var passes: [Retirement] = []
        for (origin, var retirement) in result where retirement.records > 0 {
            horizon[origin] = retirement.horizon
            retirement.expiredFields = expireRetiredMinutes(origin)
            passes.append(retirement)
        }
        return passes.sorted { $0.origin < $1.origin }
    }

    /// The counter fields of `origin`'s retired minute buckets behind the minute retention.
    private mutating func expireRetiredMinutes(_ origin: Int32) -> [String] {
        guard let held = retiredMinutes[origin] else { return [] }
        let expired = held.filter { $0 < minuteHorizon }
        guard !expired.isEmpty else { return [] }
        retiredMinutes[origin] = held.subtracting(expired)
        return expired.sorted().flatMap { minute in ["r", "l", "u", "o"].map { "m:\(minute):\($0)" } }
    }

    /// Adds back what an origin retired (its aggregate's fields and values), after the records
    /// still held were applied (so customers' current segments are known).
    public mutating func absorb(origin: Int32, fields: [(String, String)]) {
        for (field, value) in fields {
            guard let number = Int64(value) else { continue }
            if field == "wm" {
                if originWatermark[origin].map({ $0 < number }) ?? true { originWatermark[origin] = number }
                advanceWatermark(Timestamp(microseconds: number))
            } else if field == "horizon" {
                horizon[origin] = max(horizon[origin] ?? .min, number)
            }
        }
        var figures: [String: Figures] = [:]
        var money: [String: Money] = [:]
        for (field, value) in fields {
            guard field != "wm", field != "horizon", let number = Int64(value), let colon = field.firstIndex(of: ":") else { continue }
            let kind = field[..<colon]
            let rest = field[field.index(after: colon)...]
            switch kind {
            case "ls":
                if let status = OrderStatus(rawValue: String(rest)) { linesByStatus[status, default: 0] += number }
            case "c":
                switch rest {
                case "orders": counts.orders += number
                case "lines": counts.orderLines += number
                case "payments": counts.payments += number
                case "movements": counts.movements += number
                default: break
                }
            case "t", "m", "h", "d":
                guard let last = field.lastIndex(of: ":") else { continue }
                let name = String(field[..<last])
                var f = figures[name] ?? Figures()
                switch field[field.index(after: last)...] {
                case "r": f.revenueCents += number
                case "l": f.lines += number
                case "u": f.units += number
                case "o": f.orders += number
                default: break
                }
                figures[name] = f
            default:
                guard let last = field.lastIndex(of: ":"), last > colon else { continue }
                let name = String(field[..<last])
                var m = money[name] ?? Money()
                switch field[field.index(after: last)...] {
                case "a": m.amount += number
                case "c": m.count += number
                default: break
                }
                money[name] = m
            }
        }
        for (name, f) in figures {
            let parts = name.split(separator: ":", maxSplits: 1)
            if parts[0] == "t" {
                totals += f
                continue
            }
            guard parts.count == 2, let index = Int64(parts[1]) else { continue }
            switch parts[0] {
            case "m":
                retiredMinutes[origin, default: []].insert(index)
                if index >= minuteHorizon { add(.minute, index, f) }
            case "h": add(.hour, index, f)
            default: add(.day, index, f)
            }
        }
        for (name, m) in money {
            let parts = name.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { continue }
            let key = String(parts[1])
            switch parts[0] {
            case "mo": if let month = Int64(key) { Self.add(&months, month, m) }
            case "cat": Self.add(&byCategory, key, m)
            case "sw": Self.add(&bySegmentWas, key, m)
            case "stw": Self.add(&byStateWas, key, m)
            case "cu":
                Self.add(&retiredOfCustomer, key, m)
                Self.add(&bySegmentIs, customers[key]?.last?.segment ?? Attribution.unknownName, m)
            case "p": Self.add(&byProduct, key, m)
            case "dp":
                let dayProduct = key.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                guard dayProduct.count == 2, let day = Int64(dayProduct[0]) else { continue }
                Self.add(&byDayProduct[day, default: [:]], String(dayProduct[1]), m)
                if byDayProduct[day]?.isEmpty == true { byDayProduct[day] = nil }
            case "pm": Self.add(&paymentsByMethod, key, m)
            case "ps": Self.add(&paymentsByStatus, key, m)
            case "oh":
                Self.add(&onHand, key, m)
                totalOnHand += m.amount
            default: continue
            }
        }
    }

    /// The reason an event is refused, when its key is not held and it is older than the horizon.
    func beyondHorizon(_ event: Event, origin: Int32) -> String? {
        guard !horizon.isEmpty, let limit = horizon[origin] else { return nil }
        let horizonText = Timestamp(microseconds: limit).description
        switch event {
        case .line(let line):
            guard line.orderTime.microseconds < limit, lines[LineKey(orderID: line.orderID, lineNumber: line.lineNumber)] == nil else { return nil }
            return "order \(line.orderID) line \(line.lineNumber): order time \(line.orderTime) is before the KPI state horizon "
                + "\(horizonText) and the line is not held (retired, or first seen after its stream's retention passed)"
        case .payment(let payment):
            guard payment.version.time.microseconds < limit, payments[payment.id] == nil else { return nil }
            return "payment \(payment.id): version \(payment.version.time) is before the KPI state horizon \(horizonText) "
                + "and the payment is not held (retired, or first seen after its stream's retention passed)"
        case .movement(let movement):
            guard movement.version.time.microseconds < limit, movements[movement.id] == nil else { return nil }
            return "movement \(movement.id): version \(movement.version.time) is before the KPI state horizon \(horizonText) "
                + "and the movement is not held (retired, or first seen after its stream's retention passed)"
        default:
            return nil
        }
    }

    /// Records held (lines, payments, movements) and dimension versions: what retention bounds.
    public var heldRecords: (lines: Int, payments: Int, movements: Int) { (lines.count, payments.count, movements.count) }

    private static func count(_ f: Figures, _ prefix: String, into counters: inout [String: Int64]) {
        if f.revenueCents != 0 { counters[prefix + ":r", default: 0] += f.revenueCents }
        if f.lines != 0 { counters[prefix + ":l", default: 0] += f.lines }
        if f.units != 0 { counters[prefix + ":u", default: 0] += f.units }
        if f.orders != 0 { counters[prefix + ":o", default: 0] += f.orders }
    }

    private static func count(_ m: Money, _ prefix: String, into counters: inout [String: Int64]) {
        counters[prefix + ":a", default: 0] += m.amount
        counters[prefix + ":c", default: 0] += m.count
    }

    private static func forget(_ keys: Set<LineKey>, in index: inout [String: [LineKey]], _ id: String) {
        guard var list = index[id] else { return }
        list.removeAll { keys.contains($0) }
        index[id] = list.isEmpty ? nil : list
    }
}
