public import Contract
/// State retention: what keeps the aggregator's state (and so Redis's memory) bounded under a
/// live load that never stops.
///
/// Figures never change when records retire; only what is *held* in memory does. A pass retires,
/// per stream (origin), every order whose order time and every line's last version are older than
/// the stream's newest event time minus the retention (the order has been quiet that long) and
/// whose lines' customer and product have arrived (a line counted under `unknown` waits for its
/// late dimension), and every payment and movement whose last version is that old. In the same
/// atomic call as the HDEL of their records, the aggregator:
/// - moves the records into the origin's archive (`stream:kpi:archive`), a retired order whole,
///   with the attribution each line was counted under;
/// - appends the retired keys' hashes to `stream:kpi:archived` (from which a rebuild fills the
///   in-memory filter `RetiredKeys`) and each retired revenue line's order to its customer's and
///   product's index (`stream:kpi:ix:c:<id>`, `…:ix:p:<id>`);
/// - records the origin's new horizon and newest event time (`stream:kpi:retired`).
///
/// A rebuild applies the records still held, then folds the archive back in (`absorbArchive`:
/// each archived record adds what it was counted as, `archivedCounters`) and reads the key
/// hashes: the same figures, and the same knowledge of what retired. Nothing retired is
/// forgotten: a later change to it is exact for any lateness (`KPIState+Revival.swift`), and a
/// revived record leaves the archive, so the fold no longer counts it.
///
/// Before format 2 a retirement also added its records' counters to `stream:kpi:retired`
/// (HINCRBY: 1.8 M of them in Lua for a 2.6 M-event catch-up, most of what retention cost Redis).
/// Such counters still stand for records retired before the archive existed: a rebuild absorbs
/// what remains of them (`legacyRemainder`) beside the fold.
extension KPIState {
    /// What one pass retired from one origin's records.
    public struct Retirement: Sendable {
        public var origin: Int32
        /// The new horizon and the origin's newest event time, in microseconds.
        public var horizon: Int64
        public var watermark: Int64
        public var lines: [(orderID: String, lineNumber: Int)] = []
        public var payments: [String] = []
        public var movements: [String] = []
        /// The archive's new entries (HSET): a retired order whole, or a payment's or movement's
        /// record, by its key (`KPIRecord.keyField`).
        public var archive: [(field: [UInt8], value: [UInt8])] = []
        /// The retired keys' hashes (`RetiredKeys.hash`), appended to the stream's key list.
        public var keyHashes: [UInt64] = []
        /// Index entries to append per customer and per product (`KPIRecord.indexEntry`).
        public var customerIndex: [String: [UInt8]] = [:]
        public var productIndex: [String: [UInt8]] = [:]
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
        var retiredLines = Set<LineKey>()
        var touchedCustomers = Set<String>(), touchedProducts = Set<String>()
        for (orderID, keys) in quiet where !busy.contains(orderID) {
            let origin = lines[keys[0]]!.origin
            var retirement = result[origin]!
            result[origin] = nil  // so `retirement` is the only reference (no copy per order)
            var archived: [(line: Line, attribution: Attribution)] = []
            // (customer or product, order time) pairs already indexed for this order.
            var customerTimes = Set<OrderAt>(), productTimes = Set<OrderAt>()
            for key in keys {
                let applied = lines.removeValue(forKey: key)!
                let line = applied.line
                retiredLines.insert(key)
                touchedCustomers.insert(line.customerID)
                touchedProducts.insert(line.productID)
                retirement.lines.append((key.orderID, key.lineNumber))
                archived.append((line, applied.attribution))
                guard line.status.countsAsRevenue else { continue }
                let money = Money(amount: line.netCents, count: 1)
                Self.add(&retiredOfCustomer, line.customerID, money)
                Self.add(&retiredOfProduct, line.productID, money)
                // Indexed under its customer and product (once per order time), for a late version.
                let time = line.orderTime.microseconds
                if customerTimes.insert(OrderAt(orderID: line.customerID, time: time)).inserted {
                    retirement.customerIndex[line.customerID, default: []] += KPIRecord.indexEntry(orderID: orderID, orderTime: time)
                }
                if productTimes.insert(OrderAt(orderID: line.productID, time: time)).inserted {
                    retirement.productIndex[line.productID, default: []] += KPIRecord.indexEntry(orderID: orderID, orderTime: time)
                }
                revenueLinesOfOrder[OrderAt(orderID: orderID, time: time)] = nil
            }
            linesOfOrder[orderID] = nil
            retirement.archive.append((KPIRecord.keyField(orderID), KPIRecord.archivedOrder(archived)))
            let hash = RetiredKeys.hash(orderID)
            retirement.keyHashes.append(hash)
            retiredKeys[origin, default: RetiredKeys()].insert(hash: hash)
            result[origin] = retirement
        }
        for id in touchedCustomers { Self.forget(retiredLines, in: &linesOfCustomer, id) }
        for id in touchedProducts { Self.forget(retiredLines, in: &linesOfProduct, id) }

        // Chosen first, then removed: removing from a `PagedMap` while iterating it would copy it.
        let oldPayments = payments.filter { item in cutoffs[item.value.origin].map { item.value.value.version.time.microseconds < $0 } ?? false }
        for (id, held) in oldPayments {
            payments[id] = nil
            result[held.origin]!.payments.append(id)
            archive(.payment(held.value), id, origin: held.origin, in: &result[held.origin]!)
        }
        let oldMovements = movements.filter { item in cutoffs[item.value.origin].map { item.value.value.version.time.microseconds < $0 } ?? false }
        for (id, held) in oldMovements {
            movements[id] = nil
            result[held.origin]!.movements.append(id)
            archive(.movement(held.value), id, origin: held.origin, in: &result[held.origin]!)
        }

        var passes: [Retirement] = []
        for (origin, retirement) in result where retirement.records > 0 {
            horizon[origin] = retirement.horizon
            passes.append(retirement)
        }
        return passes.sorted { $0.origin < $1.origin }
    }

    /// Adds back counters of what an origin retired (fields and values: `wm` and `horizon`, and
    /// the counters `archivedCounters` names), after the records still held were applied (so
    /// customers' current segments are known). Additive: counters may come in several calls.
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
            case "p":
                Self.add(&byProduct, key, m)
                Self.add(&retiredOfProduct, key, m)
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

    /// Records held (lines, payments, movements) and dimension versions: what retention bounds.
    public var heldRecords: (lines: Int, payments: Int, movements: Int) { (lines.count, payments.count, movements.count) }

    /// Folds archived records (an archive's fields and values) back into the figures: what a
    /// rebuild does after applying the records still held. Throws, naming the key, for a value no
    /// retirement wrote.
    /// It adds to the figures directly what `absorb(archivedCounters(entries))` adds (a rebuild
    /// at 26 M events folds 14 M records; `KPIRetentionTests.foldingEqualsAbsorbingTheCounters`).
    public mutating func absorbArchive(origin: Int32, _ entries: some Sequence<(field: [UInt8], value: [UInt8])>) throws(KPIRecord.Unreadable) {
        for (field, value) in entries {
            switch KPIRecord.decodeArchived(field: field, value: value) {
            case .order(_, let lines)?: foldArchived(lines)
            case .payment(let payment)?:
                let money = Money(amount: payment.amountMicros, count: 1)
                Self.add(&paymentsByMethod, payment.method, money)
                Self.add(&paymentsByStatus, payment.status, money)
                counts.payments += 1
            case .movement(let movement)?:
                Self.add(&onHand, movement.productID, Money(amount: movement.quantity, count: 1))
                totalOnHand += movement.quantity
                counts.movements += 1
            case nil:
                throw KPIRecord.Unreadable(description: "the archive's entry \(KPIRecord.describe(field: field)) is not an archived record")
            }
        }
    }

    /// An archived order's lines back in the figures, each under the attribution it was counted
    /// under (the as-is segment: the customer's current one).
    private mutating func foldArchived(_ archived: [(line: Line, attribution: Attribution)]) {
        var times = Set<Int64>()
        for (line, a) in archived {
            linesByStatus[line.status, default: 0] += 1
            counts.orderLines += 1
            guard line.status.countsAsRevenue else { continue }
            times.insert(line.orderTime.microseconds)
            let figures = Figures(revenueCents: line.netCents, lines: 1, units: line.quantity)
            totals += figures
            let day = addBuckets(figures, at: line.orderTime)
            let money = Money(amount: line.netCents, count: 1)
            Self.add(&months, Self.month(ofDay: day), money)
            Self.add(&byCategory, a.category, money)
            Self.add(&bySegmentWas, a.segment, money)
            Self.add(&byStateWas, a.state, money)
            Self.add(&retiredOfCustomer, line.customerID, money)
            Self.add(&bySegmentIs, customers[line.customerID]?.last?.segment ?? Attribution.unknownName, money)
            Self.add(&byProduct, line.productID, money)
            Self.add(&retiredOfProduct, line.productID, money)
            Self.add(&byDayProduct[day, default: [:]], line.productID, money)
        }
        counts.orders += 1
        for time in times {
            let one = Figures(orders: 1)
            totals += one
            addBuckets(one, at: Timestamp(microseconds: time))
        }
    }

    /// True for a retired key's fields (`stream:kpi:retired`) written before format 2: its
    /// counters then count every retired record, archived ones included, and a rebuild absorbs
    /// them instead of folding the archive, then converts them (`legacyRemainder`).
    public static func isLegacyRetirement(_ fields: [(String, String)]) -> Bool {
        !fields.isEmpty && !fields.contains { $0.0 == "format" }
    }

    /// What archived records were counted as (in `absorb`'s fields): their lines' figures under
    /// the attribution each was counted under, payments, movements. Minute buckets behind the
    /// minute horizon are left out.
    public func archivedCounters(_ entries: some Sequence<(field: [UInt8], value: [UInt8])>) throws(KPIRecord.Unreadable) -> [String: Int64] {
        var counters: [String: Int64] = [:]
        for (field, value) in entries {
            switch KPIRecord.decodeArchived(field: field, value: value) {
            case .order(_, let lines)?: Self.addCounters(of: lines, minuteHorizon: minuteHorizon, into: &counters)
            case .payment(let payment)?: Self.addCounters(of: payment, into: &counters)
            case .movement(let movement)?: Self.addCounters(of: movement, into: &counters)
            case nil:
                throw KPIRecord.Unreadable(description: "the archive's entry \(KPIRecord.describe(field: field)) is not an archived record")
            }
        }
        return counters
    }

    /// What remains of a format-1 retired key's counters (`fields`, which counted every record
    /// it retired, archived or not) once the archive's records (`archived`: their
    /// `archivedCounters`) are folded in instead: the counters of records retired before the
    /// archive existed. Minute buckets behind the minute horizon, zeros, `wm` and `horizon` are
    /// left out.
    public func legacyRemainder(_ fields: [(String, String)], archived: [String: Int64]) -> [String: Int64] {
        var remainder: [String: Int64] = [:]
        for (field, value) in fields { if let number = Int64(value) { remainder[field, default: 0] += number } }
        for (field, amount) in archived { remainder[field, default: 0] -= amount }
        return remainder.filter { field, amount in
            guard amount != 0, field != "wm", field != "horizon", field != "format" else { return false }
            guard field.hasPrefix("m:"), let last = field.lastIndex(of: ":"),
                  let minute = Int64(field[field.index(field.startIndex, offsetBy: 2)..<last]) else { return true }
            return minute >= minuteHorizon
        }
    }

    /// The counters an order's archived lines were counted as. Minute buckets behind the minute
    /// horizon are left out.
    static func addCounters(of lines: [(line: Line, attribution: Attribution)], minuteHorizon: Int64, into counters: inout [String: Int64]) {
        var times = Set<Int64>()
        for (line, a) in lines {
            counters["ls:\(line.status.rawValue)", default: 0] += 1
            counters["c:lines", default: 0] += 1
            guard line.status.countsAsRevenue else { continue }
            times.insert(line.orderTime.microseconds)
            let figures = Figures(revenueCents: line.netCents, lines: 1, units: line.quantity)
            count(figures, "t", into: &counters)
            let minute = Granularity.minute.bucket(line.orderTime)
            if minute >= minuteHorizon { count(figures, "m:\(minute)", into: &counters) }
            count(figures, "h:\(Granularity.hour.bucket(line.orderTime))", into: &counters)
            let day = Granularity.day.bucket(line.orderTime)
            count(figures, "d:\(day)", into: &counters)
            let civil = CivilDate.civilFromDays(day)
            let money = Money(amount: line.netCents, count: 1)
            count(money, "mo:\(civil.year * 12 + civil.month - 1)", into: &counters)
            count(money, "cat:\(a.category)", into: &counters)
            count(money, "sw:\(a.segment)", into: &counters)
            count(money, "stw:\(a.state)", into: &counters)
            count(money, "cu:\(line.customerID)", into: &counters)
            count(money, "p:\(line.productID)", into: &counters)
            count(money, "dp:\(day):\(line.productID)", into: &counters)
        }
        counters["c:orders", default: 0] += 1
        // An order counts once per order time with revenue lines (`revenueLinesOfOrder`).
        for time in times {
            let orderTime = Timestamp(microseconds: time)
            let one = Figures(orders: 1)
            count(one, "t", into: &counters)
            let minute = Granularity.minute.bucket(orderTime)
            if minute >= minuteHorizon { count(one, "m:\(minute)", into: &counters) }
            count(one, "h:\(Granularity.hour.bucket(orderTime))", into: &counters)
            count(one, "d:\(Granularity.day.bucket(orderTime))", into: &counters)
        }
    }

    static func addCounters(of payment: Payment, into counters: inout [String: Int64]) {
        let money = Money(amount: payment.amountMicros, count: 1)
        count(money, "pm:\(payment.method)", into: &counters)
        count(money, "ps:\(payment.status)", into: &counters)
        counters["c:payments", default: 0] += 1
    }

    static func addCounters(of movement: Movement, into counters: inout [String: Int64]) {
        count(Money(amount: movement.quantity, count: 1), "oh:\(movement.productID)", into: &counters)
        counters["c:movements", default: 0] += 1
    }

    /// A retiring payment's or movement's record into the archive, and its key into the filter.
    private mutating func archive(_ event: Event, _ id: String, origin: Int32, in retirement: inout Retirement) {
        retirement.archive.append((KPIRecord.keyField(id), KPIRecord.record(event).value))
        let hash = RetiredKeys.hash(id)
        retirement.keyHashes.append(hash)
        retiredKeys[origin, default: RetiredKeys()].insert(hash: hash)
    }

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
