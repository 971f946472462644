import Foundation
import Testing
@testable import Contract
@testable import KPIModel
@testable import StreamRuntime
@testable import WarehouseSink
@testable import KPIStore
@testable import DataGenerator
@testable import RedisWire
import RedisClient
import PostgresClient

/// State retention (`KPIState+Retention.swift`): retiring records never changes a figure, a
/// rebuild from what is held plus the archive folded back in gives the same figures, and a change
/// to a retired record revives it and counts once. No server: `Store` does what the aggregator's
/// HSET / HDEL / APPEND do to the state hashes.
@Suite struct KPIRetentionTests {
    typealias S = KPIState

    /// The state hashes of each origin: records by field, the retired key's fields, the archive,
    /// its key hashes and the customers' and products' indexes of retired orders.
    struct Store {
        var records: [Int32: [[UInt8]: [UInt8]]] = [:]
        /// `wm`, `horizon`, `format`; in an older format, counters.
        var retired: [Int32: [String: Int64]] = [:]
        /// What retirements write, as the aggregator of each format did: 2 (the archive alone),
        /// 1 (the archive, and counters of what retired, HINCRBY, taken back on revival) or 0
        /// (counters only: before the archive, nothing retired could be revived).
        var format = 2
        var conversions = 0
        var archive: [Int32: [[UInt8]: [UInt8]]] = [:]
        var archivedKeys: [Int32: [UInt8]] = [:]
        var index: [Int32: [String: [UInt8]]] = [:]
        var revived = 0

        mutating func persist(_ event: S.Event, origin: Int32) {
            let record = KPIRecord.record(event)
            records[origin, default: [:]][record.field] = record.value
        }

        /// Writes a retirement (`state`: the state that made it, for an older format's counters).
        mutating func apply(_ r: S.Retirement, _ state: S) {
            for line in r.lines { records[r.origin]![KPIRecord.lineField(orderID: line.orderID, lineNumber: line.lineNumber)] = nil }
            for id in r.payments + r.movements { records[r.origin]![KPIRecord.keyField(id)] = nil }
            retired[r.origin, default: [:]]["wm"] = r.watermark
            retired[r.origin, default: [:]]["horizon"] = r.horizon
            if format < 2 {
                for (field, amount) in try! state.archivedCounters(r.archive) { retired[r.origin, default: [:]][field, default: 0] += amount }
                if format == 0 { return }
            } else {
                retired[r.origin, default: [:]]["format"] = 2
            }
            for (field, value) in r.archive { archive[r.origin, default: [:]][field] = value }
            archivedKeys[r.origin, default: []] += RetiredKeys.pack(r.keyHashes)
            for (id, entries) in r.customerIndex { index[r.origin, default: [:]]["c:" + id, default: []] += entries }
            for (id, entries) in r.productIndex { index[r.origin, default: [:]]["p:" + id, default: []] += entries }
        }

        /// What the aggregator does before a batch: read what the recall names (indexes, then the
        /// archive) and revive it, writing back what `KPIState.revive` says.
        mutating func revive(_ recall: S.Recall, in state: inout S) {
            var orders = recall.orders
            for (origin, entries) in index {
                for (prefix, wanted) in [("c:", recall.customers), ("p:", recall.products)] {
                    for (id, from) in wanted {
                        guard let bytes = entries[prefix + id] else { continue }
                        orders[origin, default: []].formUnion(KPIRecord.indexedOrders(bytes, from: from)!)
                    }
                }
            }
            let reads = orders.map { (S.ArchivedKind.order, $0.key, $0.value) } + recall.payments.map { (.payment, $0.key, $0.value) }
                + recall.movements.map { (.movement, $0.key, $0.value) }
            for (kind, origin, ids) in reads {
                let ids = ids.sorted()
                let values = ids.map { archive[origin]?[KPIRecord.keyField($0)] }
                let r = try! state.revive(kind, ids: ids, values: values, origin: origin)
                if format == 1 {
                    for (field, amount) in try! state.archivedCounters(r.archiveFields.map { ($0, archive[origin]![$0]!) }) {
                        retired[origin, default: [:]][field, default: 0] -= amount
                    }
                }
                for field in r.archiveFields { archive[origin]![field] = nil }
                for (field, value) in r.records { records[origin, default: [:]][field] = value }
                revived += r.archiveFields.count
            }
        }

        /// Applies one event as the aggregator does: revive what it may change, apply, persist.
        mutating func step(_ event: S.Event, origin: Int32, in state: inout S) -> S.Outcome {
            revive(state.recall([(event, origin)]), in: &state)
            let outcome = state.apply(event, origin: origin)
            if outcome == .applied { persist(event, origin: origin) }
            return outcome
        }

        /// What the aggregator's rebuild does: apply every record held, then absorb each
        /// origin's retired key and fold its archive in (or, for a retired key of an older format,
        /// absorb its counters and convert it), and read the archive's key hashes. From then on
        /// retirements write format 2.
        mutating func rebuild() -> S {
            var state = S()
            for (origin, fields) in records {
                for (field, value) in fields { _ = state.apply(KPIRecord.decode(field: field, value: value)!, origin: origin) }
            }
            for origin in Set(retired.keys).union(archive.keys).sorted() {
                let fields = (retired[origin] ?? [:]).map { ($0.key, String($0.value)) }
                if !fields.isEmpty { state.absorb(origin: origin, fields: fields) }
                let entries = (archive[origin] ?? [:]).map { (field: $0.key, value: $0.value) }
                if S.isLegacyRetirement(fields) {
                    var converted = retired[origin]!.filter { $0.key == "wm" || $0.key == "horizon" }
                    converted["format"] = 2
                    converted.merge(state.legacyRemainder(fields, archived: try! state.archivedCounters(entries))) { $1 }
                    retired[origin] = converted
                    conversions += 1
                } else {
                    try! state.absorbArchive(origin: origin, entries)
                }
            }
            for (origin, packed) in archivedKeys { state.absorbRetiredKeys(origin: origin, packed: packed) }
            format = 2
            _ = state.takeDirty()
            return state
        }
    }

    /// Everything the state shows.
    static func show(_ state: S) -> [String: String] {
        var out = KPIView.totals(state)
        for (minute, f) in state.minutes { out["minute:\(minute)"] = KPIView.bucket(f) }
        for (hour, f) in state.hours { out["hour:\(hour)"] = KPIView.bucket(f) }
        for (day, f) in state.days { out["day:\(day)"] = KPIView.bucket(f) }
        for (product, m) in state.byProduct { out["product:\(product)"] = "\(m.amount)/\(m.count)" }
        for (day, products) in state.byDayProduct { for (p, m) in products { out["product:\(day):\(p)"] = "\(m.amount)/\(m.count)" } }
        for (product, m) in state.onHand { out["on_hand:\(product)"] = "\(m.amount)/\(m.count)" }
        let c = state.counts
        out["counts"] = "\(c.orders) \(c.orderLines) \(c.customers) \(c.products) \(c.payments) \(c.movements)"
        return out
    }

    /// Records each figure that differs (not one assertion over hundreds of them).
    static func expectSame(_ actual: [String: String], _ expected: [String: String], _ label: String) {
        let differing = Set(expected.keys).union(actual.keys).filter { expected[$0] != actual[$0] }.sorted()
        for key in differing.prefix(10) { Issue.record("\(label): \(key) is \(actual[key] ?? "absent"), expected \(expected[key] ?? "absent")") }
        #expect(differing.isEmpty, "\(label): \(differing.count) figures differ")
    }

    static let start = Timestamp(iso8601: "2024-03-01T00:00:00Z")!.microseconds
    static func at(_ seconds: Int64) -> Timestamp { Timestamp(microseconds: start + seconds * 1_000_000) }
    static func version(_ seconds: Int64, _ id: String) -> S.Version { S.Version(time: at(seconds), eventID: id) }

    /// A live load over 60 hours of event time: an order every ~9 minutes with 1–3 lines, a
    /// payment and a sale movement; shipped, delivered and sometimes returned or cancelled within
    /// three minutes; new customers, segment changes and new product versions now and then.
    /// Events by origin (orders 0–1, customers 2, products 3, payments 4, movements 5), in time order.
    static func liveLoad(seed: UInt64) -> [(event: S.Event, origin: Int32)] {
        var random = SplitMix64(seed: seed)
        var timed: [(time: Int64, sequence: Int, event: S.Event, origin: Int32)] = []
        var sequence = 0
        func add(_ time: Int64, _ event: S.Event, _ origin: Int32) {
            sequence += 1
            timed.append((time, sequence, event, origin))
        }
        for c in 0..<5 { add(0, .customer(S.Customer(id: "C\(c)", version: version(0, "c\(c)"), segment: "Basic", state: "S\(c % 3)")), 2) }
        for p in 0..<6 { add(0, .product(S.Product(id: "P\(p)", version: version(0, "p\(p)"), category: "K\(p % 3)")), 3) }
        var customers = 5
        for order in 0..<400 {
            let t = 60 + Int64(order) * 540 + Int64(random.next() % 60)
            if random.next() % 10 == 0 {
                add(t, .customer(S.Customer(id: "C\(customers)", version: version(t, "nc\(order)"), segment: "Premium", state: "S1")), 2)
                customers += 1
            }
            if random.next() % 8 == 0 {
                let c = Int(random.next() % UInt64(customers))
                add(t, .customer(S.Customer(id: "C\(c)", version: version(t, "sc\(order)"), segment: ["Basic", "Premium", "VIP"][order % 3], state: "S2")), 2)
            }
            if random.next() % 8 == 0 {
                let p = Int(random.next() % 6)
                add(t, .product(S.Product(id: "P\(p)", version: version(t, "pv\(order)"), category: "K\(order % 4)")), 3)
            }
            let customer = "C\(Int(random.next() % UInt64(customers)))"
            let id = "O\(order)"
            let origin = Int32(order % 2)
            let lines = 1 + Int(random.next() % 3)
            var total: Int64 = 0
            let cancelled = random.next() % 10 == 0
            let returned = !cancelled && random.next() % 6 == 0
            for number in 1...lines {
                let product = "P\(random.next() % 6)"
                let net = 500 + Int64(random.next() % 5000)
                total += net
                func line(_ status: OrderStatus, _ time: Int64, _ tag: String) -> S.Event {
                    .line(S.Line(orderID: id, lineNumber: number, customerID: customer, productID: product, status: status, quantity: 1 + Int64(number),
                                 netCents: net, orderTime: at(t), version: version(time, "\(id)-\(number)-\(tag)")))
                }
                add(t, line(.placed, t, "a"), origin)
                add(t, .movement(S.Movement(id: "M\(order)-\(number)", version: version(t, "m\(order)\(number)"), productID: product, quantity: -1)), 5)
                if cancelled {
                    add(t + 20, line(.cancelled, t + 20, "b"), origin)
                } else {
                    add(t + 30, line(.shipped, t + 30, "b"), origin)
                    add(t + 90, line(.delivered, t + 90, "c"), origin)
                    if returned && number == 1 { add(t + 150, line(.returned, t + 150, "d"), origin) }
                }
            }
            add(t, .payment(S.Payment(id: "Y\(order)", version: version(t, "y\(order)"), method: ["card", "paypal"][order % 2], status: "captured",
                                      amountMicros: total * 10_000)), 4)
            if cancelled {
                add(t + 20, .payment(S.Payment(id: "Y\(order)", version: version(t + 20, "y\(order)r"), method: ["card", "paypal"][order % 2],
                                               status: "refunded", amountMicros: total * 10_000)), 4)
            }
            if order % 50 == 0 { add(t, .movement(S.Movement(id: "R\(order)", version: version(t, "r\(order)"), productID: "P\(order % 6)", quantity: 100)), 5) }
        }
        timed.sort { ($0.time, $0.sequence) < ($1.time, $1.sequence) }
        return timed.map { ($0.event, $0.origin) }
    }

    @Test func retiringNeverChangesAFigureAndARebuildGivesTheSame() {
        let load = Self.liveLoad(seed: 11)
        var reference = S()
        for (event, origin) in load { _ = reference.apply(event, origin: origin) }

        var state = S()
        var store = Store()
        var retiredRecords = 0
        for (index, (event, origin)) in load.enumerated() {
            _ = store.step(event, origin: origin, in: &state)
            if index % 40 == 39 {
                for retirement in state.retire(olderThan: 300 * 1_000_000) {
                    retiredRecords += retirement.records
                    store.apply(retirement, state)
                }
            }
        }
        #expect(retiredRecords > 1500, "most records retired: \(retiredRecords)")
        #expect(store.revived == 0, "nothing in this load changes a record once it is quiet for 5 minutes")
        let held = state.heldRecords
        #expect(held.lines + held.payments + held.movements < 40, "what is held stays bounded: \(held)")
        Self.expectSame(Self.show(state), Self.show(reference), "retired (vs. no retention)")
        let rebuilt = store.rebuild()
        Self.expectSame(Self.show(rebuilt), Self.show(state), "rebuilt (vs. before the restart)")
        #expect(rebuilt.heldRecords == held)
        #expect(store.retired.values.allSatisfy { Set($0.keys) == ["wm", "horizon", "format"] }, "no counters: the archive stands for what retired")

        // The rebuilt state goes on exactly like the one that never stopped.
        var continued = state, resumed = rebuilt
        let later = S.Event.customer(S.Customer(id: "C0", version: Self.version(400 * 600, "late"), segment: "Gold", state: "S0"))
        #expect(continued.apply(later, origin: 2) == .applied && resumed.apply(later, origin: 2) == .applied)
        Self.expectSame(Self.show(resumed), Self.show(continued), "resumed after a rebuild (vs. never stopped)")
        #expect(continued.bySegmentIs["Gold"] != nil, "a segment change still moves the retired lines' as-is revenue")
    }

    /// A namespace retired by older aggregators (counters only, then counters beside the archive,
    /// with a revival that took its counters back) converts at the first rebuild: the same
    /// figures, only the counters of records the archive does not hold kept, and from then on the
    /// archive folded in; the load goes on exactly in the new format.
    @Test func anOlderFormatConvertsAtTheFirstRebuild() {
        let load = Self.liveLoad(seed: 5)
        var reference = S(), state = S()
        var store = Store()
        store.format = 0
        var ordersWithoutArchive: [Int32: Int64] = [:]
        var position = 0
        while position < load.count * 2 / 3 {
            let (event, origin) = load[position]
            if position == load.count / 3 { store.format = 1 }
            _ = reference.apply(event, origin: origin)
            _ = store.step(event, origin: origin, in: &state)
            if position % 40 == 39 {
                for r in state.retire(olderThan: 300 * 1_000_000) {
                    if store.format == 0 && r.origin <= 1 { ordersWithoutArchive[r.origin, default: 0] += Int64(r.archive.count) }
                    store.apply(r, state)
                }
            }
            position += 1
        }
        // A late return of an order archived under format 1: revived, its counters taken back.
        let archivedLine = store.archive[0]!.lazy.compactMap { entry -> S.Line? in
            if case .order(_, let lines)? = KPIRecord.decodeArchived(field: entry.key, value: entry.value) { return lines[0].line }
            return nil
        }.first!
        var returned = archivedLine
        returned.status = .returned
        returned.version = Self.version(400 * 600, "late-return")
        _ = reference.apply(.line(returned), origin: 0)
        #expect(store.step(.line(returned), origin: 0, in: &state) == .applied)
        #expect(store.revived == 1)
        Self.expectSame(Self.show(state), Self.show(reference), "format 1, before the rebuild")
        #expect(store.retired.values.allSatisfy { $0["format"] == nil && ($0["c:orders"] ?? $0["c:payments"] ?? $0["c:movements"]) != nil },
                "every retired key holds counters and no format")
        #expect(ordersWithoutArchive[0, default: 0] > 50 && !store.archive.isEmpty, "both older formats retired orders")

        var rebuilt = store.rebuild()
        #expect(store.conversions == 4, "every origin that retired converted: \(store.conversions)")
        Self.expectSame(Self.show(rebuilt), Self.show(reference), "converted (vs. no retention)")
        for origin: Int32 in [0, 1] {
            #expect(store.retired[origin]?["format"] == 2)
            #expect(store.retired[origin]?["c:orders"] == ordersWithoutArchive[origin],
                    "origin \(origin): the orders counted are those retired without an archive")
        }
        let again = store.rebuild()
        #expect(store.conversions == 4, "a converted key is not converted again")
        Self.expectSame(Self.show(again), Self.show(reference), "rebuilt in format 2 (vs. no retention)")

        // The rest of the load, in format 2.
        while position < load.count {
            let (event, origin) = load[position]
            _ = reference.apply(event, origin: origin)
            _ = store.step(event, origin: origin, in: &rebuilt)
            if position % 40 == 39 { for r in rebuilt.retire(olderThan: 300 * 1_000_000) { store.apply(r, rebuilt) } }
            position += 1
        }
        Self.expectSame(Self.show(rebuilt), Self.show(reference), "the load continued (vs. no retention)")
        Self.expectSame(Self.show(store.rebuild()), Self.show(reference), "rebuilt at the end (vs. no retention)")
    }

    /// `absorbArchive` folds archived records into the figures directly; it adds exactly what
    /// absorbing their counters (`archivedCounters`, the format-1 path) adds, the retired revenue
    /// per customer and product included.
    @Test func foldingEqualsAbsorbingTheCounters() throws {
        var state = S(), store = Store()
        for (index, (event, origin)) in Self.liveLoad(seed: 9).enumerated() {
            _ = store.step(event, origin: origin, in: &state)
            if index % 40 == 39 { for r in state.retire(olderThan: 300 * 1_000_000) { store.apply(r, state) } }
        }
        var folded = S(), absorbed = S()
        for (origin, fields) in store.records {
            for (field, value) in fields {
                let event = KPIRecord.decode(field: field, value: value)!
                _ = folded.apply(event, origin: origin)
                _ = absorbed.apply(event, origin: origin)
            }
        }
        for (origin, fields) in store.retired {
            let pairs = fields.map { ($0.key, String($0.value)) }
            folded.absorb(origin: origin, fields: pairs)
            absorbed.absorb(origin: origin, fields: pairs)
        }
        var archived = 0
        for (origin, entries) in store.archive {
            let pairs = entries.map { (field: $0.key, value: $0.value) }
            archived += pairs.count
            try folded.absorbArchive(origin: origin, pairs)
            absorbed.absorb(origin: origin, fields: try absorbed.archivedCounters(pairs).map { ($0.key, String($0.value)) })
        }
        #expect(archived > 1000)
        Self.expectSame(Self.show(folded), Self.show(absorbed), "folded (vs. absorbed counters)")
        #expect(folded.retiredOfCustomer == absorbed.retiredOfCustomer && folded.retiredOfProduct == absorbed.retiredOfProduct)
        #expect(folded.bySegmentIs == absorbed.bySegmentIs && folded.linesByStatus == absorbed.linesByStatus)
        #expect(Self.show(folded) == Self.show(state), "and both equal the state that retired them")
    }

    @Test func aChangeToARetiredRecordRevivesItAndCountsOnce() {
        var state = S(), reference = S()
        var store = Store()
        func line(_ order: String, _ status: OrderStatus, orderTime: Int64, at time: Int64, net: Int64 = 1000) -> S.Event {
            .line(S.Line(orderID: order, lineNumber: 1, customerID: "C1", productID: "P1", status: status, quantity: 1, netCents: net,
                         orderTime: Self.at(orderTime), version: Self.version(time, "\(order)\(status)\(time)")))
        }
        func step(_ event: S.Event, _ origin: Int32) -> S.Outcome {
            _ = reference.apply(event, origin: origin)
            return store.step(event, origin: origin, in: &state)
        }
        _ = step(.customer(S.Customer(id: "C1", version: Self.version(0, "c"), segment: "Basic", state: "TX")), 3)
        _ = step(.product(S.Product(id: "P1", version: Self.version(0, "p"), category: "Books")), 4)
        #expect(step(line("O1", .delivered, orderTime: 0, at: 10), 0) == .applied)
        // A line whose customer has not arrived yet is held until it does (it must move out of `unknown`).
        let waiting = S.Event.line(S.Line(orderID: "O7", lineNumber: 1, customerID: "C-late", productID: "P1", status: .placed, quantity: 1,
                                          netCents: 500, orderTime: Self.at(0), version: Self.version(0, "o7")))
        #expect(step(waiting, 0) == .applied)
        #expect(step(.payment(S.Payment(id: "Y1", version: Self.version(0, "y"), method: "card", status: "captured", amountMicros: 10_000_000)), 1) == .applied)
        #expect(step(line("O2", .placed, orderTime: 1000, at: 1000), 0) == .applied)
        #expect(step(.payment(S.Payment(id: "Y2", version: Self.version(1000, "y2"), method: "card", status: "captured", amountMicros: 1_000_000)), 1) == .applied)
        let retirements = state.retire(olderThan: 500 * 1_000_000)
        for r in retirements { store.apply(r, state) }
        #expect(retirements.map(\.records) == [1, 1], "O1 and Y1 retire; O2 and Y2 are recent")
        #expect(state.heldRecords.lines == 2, "O2 and O7 (waiting for its customer) are held")
        _ = step(.customer(S.Customer(id: "C-late", version: Self.version(1000, "cl"), segment: "VIP", state: "WA")), 3)
        #expect(state.bySegmentWas["VIP"]?.amount == 500 && state.bySegmentWas["unknown"] == nil, "the held line moved out of unknown")

        // A return of the retired line: revived, taken out of revenue once.
        #expect(step(line("O1", .returned, orderTime: 0, at: 1100), 0) == .applied)
        #expect(store.revived == 1 && state.heldRecords.lines == 3, "O1 is held again")
        #expect(state.totals.lines == 2 && state.totals.revenueCents == 1500)
        // An old version of the retired payment changes nothing; a later one replaces it.
        #expect(step(.payment(S.Payment(id: "Y1", version: Self.version(0, "a-old"), method: "card", status: "refunded", amountMicros: 10_000_000)), 1)
                == .unchanged)
        #expect(step(.payment(S.Payment(id: "Y1", version: Self.version(2000, "y-new"), method: "card", status: "refunded", amountMicros: 10_000_000)), 1)
                == .applied)
        #expect(state.paymentsByStatus["refunded"]?.count == 1 && state.paymentsByStatus["captured"]?.count == 1, "Y1 counted once, as refunded")
        // A new order older than the horizon, whose key never retired, counts without a read.
        let reads = store.revived
        #expect(step(line("O9", .placed, orderTime: 100, at: 1100), 0) == .applied)
        #expect(store.revived == reads)
        #expect(state.counts.orders == 4)
        Self.expectSame(Self.show(state), Self.show(reference), "with revivals (vs. no retention)")
        Self.expectSame(Self.show(store.rebuild()), Self.show(state), "rebuilt (vs. before the restart)")
    }

    /// Late changes of any age against retention of five minutes, with restarts: a return or a
    /// price correction hours after an order retired, a new line of a retired order, a later
    /// version of a retired payment or movement, and corrections of a customer's or product's
    /// history dated before retired lines (they re-attribute them). The figures equal those of a
    /// state that never retired anything, after every restart too.
    @Test(arguments: [21, 22, 23, 24] as [UInt64])
    func lateChangesOfAnyAgeAreExact(seed: UInt64) {
        var load = Self.liveLoad(seed: seed)
        var random = SplitMix64(seed: seed &* 7919)
        // Latest line, payment and movement version of each key before a position.
        var lateEvents: [(position: Int, event: S.Event, origin: Int32)] = []
        for k in 0..<120 {
            let position = load.count / 3 + Int(random.next() % UInt64(load.count * 2 / 3))
            let earlier = load[..<(position / 2)]
            let arrival = 400 * 600 + Int64(k) * 60
            switch random.next() % 7 {
            case 0, 1:
                guard let (event, origin) = earlier.last(where: { if case .line = $0.event { return random.next() % 20 == 0 } else { return false } }),
                      case .line(var line) = event else { continue }
                if random.next() % 2 == 0 { line.status = .returned } else { line.netCents += 111 }
                line.version = Self.version(arrival, "late-line-\(k)")
                lateEvents.append((position, .line(line), origin))
            case 2:
                guard let (event, origin) = earlier.last(where: { if case .line = $0.event { return random.next() % 20 == 0 } else { return false } }),
                      case .line(var line) = event else { continue }
                line.lineNumber = 9
                line.status = .placed
                line.version = Self.version(arrival, "late-new-line-\(k)")
                lateEvents.append((position, .line(line), origin))
            case 3:
                guard let (event, origin) = earlier.last(where: { if case .payment = $0.event { return random.next() % 10 == 0 } else { return false } }),
                      case .payment(var payment) = event else { continue }
                payment.status = "refunded"
                payment.version = Self.version(arrival, "late-payment-\(k)")
                lateEvents.append((position, .payment(payment), origin))
            case 4:
                guard let (event, origin) = earlier.last(where: { if case .movement = $0.event { return random.next() % 10 == 0 } else { return false } }),
                      case .movement(var movement) = event else { continue }
                movement.quantity -= 2
                movement.version = Self.version(arrival, "late-movement-\(k)")
                lateEvents.append((position, .movement(movement), origin))
            case 5:
                let dated = Int64(random.next() % UInt64(200 * 540))
                let customer = S.Customer(id: "C\(random.next() % 5)", version: Self.version(dated, "fix-c-\(k)"), segment: "Fixed\(k % 3)", state: "S\(k % 4)")
                lateEvents.append((position, .customer(customer), 2))
            default:
                let dated = Int64(random.next() % UInt64(200 * 540))
                let product = S.Product(id: "P\(random.next() % 6)", version: Self.version(dated, "fix-p-\(k)"), category: "Fixed\(k % 3)")
                lateEvents.append((position, .product(product), 3))
            }
        }
        for late in lateEvents.sorted(by: { $0.position > $1.position }) { load.insert((late.event, late.origin), at: late.position) }

        var reference = S()
        for (event, origin) in load { _ = reference.apply(event, origin: origin) }
        var state = S()
        var store = Store()
        var restarts = 0
        for (index, (event, origin)) in load.enumerated() {
            _ = store.step(event, origin: origin, in: &state)
            if index % 40 == 39 { for r in state.retire(olderThan: 300 * 1_000_000) { store.apply(r, state) } }
            if random.next() % 400 == 0 {
                state = store.rebuild()
                restarts += 1
            }
        }
        #expect(store.revived > 20, "late changes revived retired records: \(store.revived)")
        #expect(restarts > 2)
        Self.expectSame(Self.show(state), Self.show(reference), "seed \(seed): with retention and late changes (vs. no retention)")
        Self.expectSame(Self.show(store.rebuild()), Self.show(state), "seed \(seed): rebuilt (vs. before the restart)")
        #expect(state.heldRecords.lines < reference.heldRecords.lines, "retention still retires")
    }
}
