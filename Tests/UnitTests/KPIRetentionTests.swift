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
/// rebuild from what is held plus the retired counters gives the same figures, and what could
/// touch a retired record is refused rather than counted twice. No server: `Store` does what the
/// aggregator's HSET / HDEL / HINCRBY do to the state hashes.
@Suite struct KPIRetentionTests {
    typealias S = KPIState

    /// The state hashes of each origin: records by field, retired counters by field.
    struct Store {
        var records: [Int32: [[UInt8]: [UInt8]]] = [:]
        var retired: [Int32: [String: Int64]] = [:]

        mutating func persist(_ event: S.Event, origin: Int32) {
            let record = KPIRecord.record(event)
            records[origin, default: [:]][record.field] = record.value
        }

        mutating func apply(_ r: S.Retirement) {
            for line in r.lines { records[r.origin]![KPIRecord.lineField(orderID: line.orderID, lineNumber: line.lineNumber)] = nil }
            for id in r.payments + r.movements { records[r.origin]![KPIRecord.keyField(id)] = nil }
            for (field, amount) in r.counters { retired[r.origin, default: [:]][field, default: 0] += amount }
            retired[r.origin, default: [:]]["wm"] = r.watermark
            retired[r.origin, default: [:]]["horizon"] = r.horizon
            for field in r.expiredFields { retired[r.origin]![field] = nil }
        }

        /// What the aggregator's rebuild does: apply every record held, then absorb the counters.
        func rebuild() -> S {
            var state = S()
            for (origin, fields) in records {
                for (field, value) in fields { _ = state.apply(KPIRecord.decode(field: field, value: value)!, origin: origin) }
            }
            for (origin, counters) in retired { state.absorb(origin: origin, fields: counters.map { ($0.key, String($0.value)) }) }
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
            switch state.apply(event, origin: origin) {
            case .applied: store.persist(event, origin: origin)
            case .unchanged: break
            case .beyondHorizon(let reason): Issue.record("refused within the retention: \(reason)")
            }
            if index % 40 == 39 {
                for retirement in state.retire(olderThan: 300 * 1_000_000) {
                    retiredRecords += retirement.records
                    store.apply(retirement)
                }
            }
        }
        #expect(retiredRecords > 1500, "most records retired: \(retiredRecords)")
        let held = state.heldRecords
        #expect(held.lines + held.payments + held.movements < 40, "what is held stays bounded: \(held)")
        Self.expectSame(Self.show(state), Self.show(reference), "retired (vs. no retention)")
        let rebuilt = store.rebuild()
        Self.expectSame(Self.show(rebuilt), Self.show(state), "rebuilt (vs. before the restart)")
        #expect(rebuilt.heldRecords == held)
        let minutes = Set(store.retired.values.flatMap { $0.keys }.filter { $0.hasPrefix("m:") }.map { $0.split(separator: ":")[1] })
        #expect(minutes.count <= Int(S.minuteRetention) + 60, "retired minute buckets expire with the minutes: \(minutes.count)")

        // The rebuilt state goes on exactly like the one that never stopped.
        var continued = state, resumed = rebuilt
        let later = S.Event.customer(S.Customer(id: "C0", version: Self.version(400 * 600, "late"), segment: "Gold", state: "S0"))
        #expect(continued.apply(later, origin: 2) == .applied && resumed.apply(later, origin: 2) == .applied)
        Self.expectSame(Self.show(resumed), Self.show(continued), "resumed after a rebuild (vs. never stopped)")
        #expect(continued.bySegmentIs["Gold"] != nil, "a segment change still moves the retired lines' as-is revenue")
    }

    @Test func aChangeToARetiredRecordIsRefusedNotCountedTwice() {
        var state = S()
        func line(_ order: String, _ status: OrderStatus, orderTime: Int64, at time: Int64) -> S.Event {
            .line(S.Line(orderID: order, lineNumber: 1, customerID: "C1", productID: "P1", status: status, quantity: 1, netCents: 1000,
                         orderTime: Self.at(orderTime), version: Self.version(time, "\(order)\(status)\(time)")))
        }
        _ = state.apply(.customer(S.Customer(id: "C1", version: Self.version(0, "c"), segment: "Basic", state: "TX")), origin: 3)
        _ = state.apply(.product(S.Product(id: "P1", version: Self.version(0, "p"), category: "Books")), origin: 4)
        #expect(state.apply(line("O1", .delivered, orderTime: 0, at: 10), origin: 0) == .applied)
        // A line whose customer has not arrived yet is held until it does (it must move out of `unknown`).
        let waiting = S.Event.line(S.Line(orderID: "O7", lineNumber: 1, customerID: "C-late", productID: "P1", status: .placed, quantity: 1,
                                          netCents: 500, orderTime: Self.at(0), version: Self.version(0, "o7")))
        #expect(state.apply(waiting, origin: 0) == .applied)
        #expect(state.apply(.payment(S.Payment(id: "Y1", version: Self.version(0, "y"), method: "card", status: "captured", amountMicros: 10_000_000)),
                            origin: 1) == .applied)
        #expect(state.apply(line("O2", .placed, orderTime: 1000, at: 1000), origin: 0) == .applied)
        #expect(state.apply(.payment(S.Payment(id: "Y2", version: Self.version(1000, "y2"), method: "card", status: "captured", amountMicros: 1_000_000)),
                            origin: 1) == .applied)
        let retirements = state.retire(olderThan: 500 * 1_000_000)
        #expect(retirements.map(\.records) == [1, 1], "O1 and Y1 retire; O2 and Y2 are recent")
        #expect(state.heldRecords.lines == 2, "O2 and O7 (waiting for its customer) are held")
        _ = state.apply(.customer(S.Customer(id: "C-late", version: Self.version(1000, "cl"), segment: "VIP", state: "WA")), origin: 3)
        #expect(state.bySegmentWas["VIP"]?.amount == 500 && state.bySegmentWas["unknown"] == nil, "the held line moved out of unknown")
        let before = Self.show(state)

        guard case .beyondHorizon(let reason) = state.apply(line("O1", .returned, orderTime: 0, at: 1100), origin: 0) else {
            Issue.record("a return of a retired line must be refused")
            return
        }
        #expect(reason.contains("order O1 line 1") && reason.contains("horizon"))
        if case .beyondHorizon = state.apply(line("O9", .placed, orderTime: 100, at: 1100), origin: 0) {} else {
            Issue.record("a new order older than the horizon is refused too: it cannot be told from a retired one")
        }
        if case .beyondHorizon = state.apply(.payment(S.Payment(id: "Y1", version: Self.version(5, "y-old"), method: "card", status: "refunded",
                                                               amountMicros: 10_000_000)), origin: 1) {} else {
            Issue.record("an old version of a retired payment is refused")
        }
        #expect(Self.show(state) == before, "nothing refused changed a figure")
        #expect(state.apply(line("O2", .cancelled, orderTime: 1000, at: 1100), origin: 0) == .applied, "a held order still changes")
        #expect(state.apply(line("O3", .placed, orderTime: 900, at: 1100), origin: 0) == .applied, "a new order after the horizon counts")
        #expect(state.totals.lines == 3 && state.totals.revenueCents == 2500 && state.counts.orders == 4)
        // The horizon is per stream: origin 2 has none, so an old line there still counts.
        #expect(state.apply(line("O8", .placed, orderTime: 0, at: 0), origin: 2) == .applied)
    }
}
