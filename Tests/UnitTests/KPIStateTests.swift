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

/// The KPI aggregator's rules on their own: no server.
@Suite struct KPIStateTests {
    typealias S = KPIState

    static func t(_ text: String) -> Timestamp { Timestamp(iso8601: text)! }

    func line(
        _ status: OrderStatus, day: Int, id: String = "e", net: Int64 = 5397, order: String = "O1", number: Int = 1,
        customer: String = "C1", product: String = "P1", orderTime: String = "2024-03-01T14:05:00Z"
    ) -> S.Event {
        .line(S.Line(
            orderID: order, lineNumber: number, customerID: customer, productID: product, status: status, quantity: 3, netCents: net,
            orderTime: Self.t(orderTime),
            version: S.Version(time: Self.t(String(format: "2024-03-%02dT15:00:00Z", day)), eventID: id)))
    }

    func customer(_ id: String = "C1", segment: String, state: String? = "TX", at: String, event: String = "c") -> S.Event {
        .customer(S.Customer(id: id, version: S.Version(time: Self.t(at), eventID: event), segment: segment, state: state))
    }

    func product(_ id: String = "P1", category: String, at: String, event: String = "p") -> S.Event {
        .product(S.Product(id: id, version: S.Version(time: Self.t(at), eventID: event), category: category))
    }

    /// Everything the state shows: the totals hash, buckets and products as written to Redis.
    func figures(_ events: [S.Event]) -> [String: String] {
        var state = S()
        for event in events { state.apply(event) }
        return KPIRetentionTests.show(state)
    }

    let premiumTX = [
        KPIStateTests.customerEvent(segment: "Premium", state: "TX", at: "2024-01-01T00:00:00Z"),
        KPIStateTests.productEvent(category: "Electronics", at: "2024-01-01T00:00:00Z"),
    ]
    static func customerEvent(segment: String, state: String?, at: String) -> S.Event {
        .customer(S.Customer(id: "C1", version: S.Version(time: t(at), eventID: "c-\(at)"), segment: segment, state: state))
    }
    static func productEvent(category: String, at: String) -> S.Event {
        .product(S.Product(id: "P1", version: S.Version(time: t(at), eventID: "p-\(at)"), category: category))
    }

    @Test func placedShippedDeliveredReturned() {
        var f = figures(premiumTX + [line(.placed, day: 1)])
        #expect(f["revenue"] == "53.97")
        #expect(f["lines"] == "1" && f["units"] == "3" && f["orders"] == "1" && f["aov"] == "53.97")
        #expect(f["revenue:month:2024-03"] == "53.97")
        #expect(f["revenue:segment_was:Premium"] == "53.97" && f["revenue:segment_is:Premium"] == "53.97")
        #expect(f["revenue:state_was:TX"] == "53.97" && f["revenue:category:Electronics"] == "53.97")
        #expect(f["lines:status:placed"] == "1")
        let day = S.Granularity.day.bucket(Self.t("2024-03-01T14:05:00Z"))
        #expect(f["day:\(day)"] == "53.97 1 3 1")
        #expect(f["minute:\(S.Granularity.minute.bucket(Self.t("2024-03-01T14:05:00Z")))"] == "53.97 1 3 1")

        let progressed = figures(premiumTX + [line(.placed, day: 1), line(.shipped, day: 2), line(.delivered, day: 3)])
        #expect(progressed["revenue"] == "53.97", "a progression changes no revenue")
        #expect(progressed["lines:status:delivered"] == "1" && progressed["lines:status:placed"] == "0")

        f = figures(premiumTX + [line(.placed, day: 1), line(.delivered, day: 3), line(.returned, day: 9)])
        #expect(f["revenue"] == "0.00" && f["lines"] == "0" && f["orders"] == "0" && f["units"] == "0")
        #expect(f["lines:status:returned"] == "1" && f["lines:status:delivered"] == "0")
        let gone = f.keys.filter {
            $0.hasPrefix("revenue:") || $0.hasPrefix("minute:") || $0.hasPrefix("hour:") || $0.hasPrefix("day:") || $0.hasPrefix("product:")
        }
        #expect(gone.isEmpty, "a return takes the line out of every aggregate: \(gone)")
        #expect(f["count:order_lines"] == "1" && f["count:orders"] == "1", "the line still exists")
    }

    @Test func placedThenCancelledAndBack() {
        let cancelled = figures(premiumTX + [line(.placed, day: 1), line(.cancelled, day: 2)])
        #expect(cancelled["revenue"] == "0.00" && cancelled["lines:status:cancelled"] == "1")
        #expect(cancelled["revenue:segment_was:Premium"] == nil)
        // A line that comes back is counted again.
        let back = figures(premiumTX + [line(.placed, day: 1), line(.cancelled, day: 2), line(.placed, day: 3, id: "again")])
        #expect(back["revenue"] == "53.97" && back["revenue:segment_was:Premium"] == "53.97" && back["lines:status:placed"] == "1")
    }

    @Test func aStaleUpdateChangesNothing() {
        let inOrder = figures(premiumTX + [line(.placed, day: 1), line(.delivered, day: 3)])
        let late = figures(premiumTX + [line(.delivered, day: 3), line(.placed, day: 1)])
        #expect(late == inOrder)
        var state = S()
        state.apply(line(.delivered, day: 3))
        #expect(state.apply(line(.placed, day: 1)) == false, "an older version is stale")
        // A cancel that arrives before the placement it cancels still wins.
        #expect(figures([line(.cancelled, day: 2), line(.placed, day: 1)])["revenue"] == "0.00")
        // Equal times: the larger event id wins, in either order.
        let a = line(.shipped, day: 2, id: "a"), b = line(.cancelled, day: 2, id: "b")
        #expect(figures([a, b]) == figures([b, a]))
        #expect(figures([a, b])["lines:status:cancelled"] == "1")
    }

    @Test func aDuplicateChangesNothing() {
        var state = S()
        #expect(state.apply(line(.placed, day: 1)) == true)
        #expect(state.apply(line(.placed, day: 1)) == false)
        #expect(state.apply(premiumTX[0]) == true)
        #expect(state.apply(premiumTX[0]) == false, "the same customer version twice")
        #expect(figures([line(.placed, day: 1), line(.placed, day: 1)]) == figures([line(.placed, day: 1)]))
    }

    @Test func aLateCustomerMovesTheLineFromUnknown() {
        let early = figures([line(.placed, day: 1)])
        #expect(early["revenue:segment_was:unknown"] == "53.97" && early["revenue:state_was:unknown"] == "53.97")
        #expect(early["revenue:category:unknown"] == "53.97" && early["revenue:segment_is:unknown"] == "53.97")
        let late = figures([line(.placed, day: 1)] + premiumTX)
        #expect(late == figures(premiumTX + [line(.placed, day: 1)]), "same figures whichever arrives first")
        #expect(late["revenue:segment_was:unknown"] == nil && late["revenue:segment_was:Premium"] == "53.97")
        #expect(late["revenue"] == "53.97", "moving a line does not change the total")
        // A customer version with no state counts under `unknown` state.
        let stateless = figures([line(.placed, day: 1), customer(segment: "Basic", state: nil, at: "2024-01-01T00:00:00Z")])
        #expect(stateless["revenue:state_was:unknown"] == "53.97" && stateless["revenue:segment_was:Basic"] == "53.97")
    }

    @Test func aLateVersionThatChangesTheValidVersionMovesTheLine() {
        // Standard from January; the line is from March 1st; a version valid from February arrives last.
        var events = [customer(segment: "Standard", state: "CA", at: "2024-01-01T00:00:00Z", event: "v1"), line(.placed, day: 1)]
        #expect(figures(events)["revenue:segment_was:Standard"] == "53.97")
        events.append(customer(segment: "Premium", state: "NY", at: "2024-02-01T00:00:00Z", event: "v2"))
        let f = figures(events)
        #expect(f["revenue:segment_was:Premium"] == "53.97" && f["revenue:state_was:NY"] == "53.97")
        #expect(f["revenue:segment_was:Standard"] == nil)
        // A version after the order time changes "as is" only.
        events.append(customer(segment: "VIP", state: "NY", at: "2024-04-01T00:00:00Z", event: "v3"))
        let g = figures(events)
        #expect(g["revenue:segment_was:Premium"] == "53.97" && g["revenue:segment_is:VIP"] == "53.97")
        // A line older than every version joins the earliest version (the loader's rule).
        let old = figures([customer(segment: "Standard", state: "CA", at: "2024-06-01T00:00:00Z"), line(.placed, day: 1)])
        #expect(old["revenue:segment_was:Standard"] == "53.97")
        // Products follow the same rule.
        let p = figures([product(category: "Toys", at: "2024-01-01T00:00:00Z", event: "a"), line(.placed, day: 1),
                         product(category: "Games", at: "2024-02-15T00:00:00Z", event: "b")])
        #expect(p["revenue:category:Games"] == "53.97" && p["revenue:category:Toys"] == nil)
    }

    @Test func aSegmentChangeMovesRevenueInTheAsIsView() {
        let before = figures(premiumTX + [line(.placed, day: 1), line(.placed, day: 1, order: "O2")])
        #expect(before["revenue:segment_is:Premium"] == "107.94")
        let after = figures(premiumTX + [line(.placed, day: 1), line(.placed, day: 1, order: "O2"),
                                         customer(segment: "Standard", state: "TX", at: "2024-05-01T00:00:00Z", event: "z")])
        #expect(after["revenue:segment_is:Premium"] == nil && after["revenue:segment_is:Standard"] == "107.94")
        #expect(after["revenue:segment_was:Premium"] == "107.94", "as was does not move")
        #expect(after["count:customers"] == "1")
        // A later cancel of one line takes it out of the as-is view under the current segment.
        let cancelled = figures(premiumTX + [line(.placed, day: 1), line(.placed, day: 1, order: "O2"),
                                             customer(segment: "Standard", state: "TX", at: "2024-05-01T00:00:00Z", event: "z"),
                                             line(.cancelled, day: 6, order: "O2")])
        #expect(cancelled["revenue:segment_is:Standard"] == "53.97")
    }

    @Test func ordersAndAOVCountOrdersWithRevenue() {
        let f = figures([line(.placed, day: 1, net: 1000), line(.placed, day: 1, net: 3000, number: 2),
                         line(.placed, day: 1, net: 2000, order: "O2"), line(.cancelled, day: 2, net: 2000, order: "O2")])
        #expect(f["orders"] == "1" && f["aov"] == "40.00" && f["count:orders"] == "2")
    }

    @Test func paymentsKeepTheirLatestVersionAndSumExactly() {
        func payment(_ id: String, _ status: String, _ method: String, micros: Int64, day: Int) -> S.Event {
            .payment(S.Payment(id: id, version: S.Version(time: Self.t(String(format: "2024-03-%02dT00:00:00Z", day)), eventID: "y\(day)"),
                               method: method, status: status, amountMicros: micros))
        }
        let f = figures([payment("Y1", "authorized", "card", micros: 10_005_000, day: 1), payment("Y1", "captured", "card", micros: 10_005_000, day: 2),
                         payment("Y2", "failed", "paypal", micros: 5_000_000, day: 1), payment("Y3", "captured", "card", micros: 5_000_000, day: 3),
                         payment("Y1", "authorized", "card", micros: 10_005_000, day: 1)])
        #expect(f["payments:method:card:count"] == "2" && f["payments:method:card:amount"] == "15.01")
        #expect(f["payments:status:captured:count"] == "2" && f["payments:status:authorized:count"] == nil)
        #expect(f["payments:failure_rate"] == "0.3333" && f["count:payments"] == "3")
    }

    @Test func inventoryOnHand() {
        func movement(_ id: String, _ product: String, _ quantity: Int64, day: Int = 1) -> S.Event {
            .movement(S.Movement(id: id, version: S.Version(time: Self.t(String(format: "2024-03-%02dT00:00:00Z", day)), eventID: "m\(day)"),
                                 productID: product, quantity: quantity))
        }
        let f = figures([movement("M1", "P1", 50), movement("M2", "P1", -3), movement("M3", "P2", 10), movement("M2", "P1", -3),
                         movement("M3", "P2", 12, day: 2)])
        #expect(f["inventory:on_hand"] == "59" && f["on_hand:P1"] == "47/2" && f["on_hand:P2"] == "12/1" && f["count:movements"] == "3")
    }

    @Test func windowsAndMinuteRetention() {
        var state = S()
        state.apply(line(.placed, day: 1, order: "A", orderTime: "2024-03-01T14:00:30Z"))
        state.apply(line(.placed, day: 1, order: "B", orderTime: "2024-03-01T14:58:00Z"))
        state.apply(line(.placed, day: 1, order: "C", orderTime: "2024-03-01T14:59:59Z"))
        // The watermark is the newest event time: 2024-03-01T15:00:00Z.
        #expect(state.window(minutes: 5).orders == 2)
        #expect(state.window(minutes: 60).orders == 2, "14:00:30 is 60 minutes back, outside the hour")
        #expect(state.window(minutes: 1440).orders == 3)
        _ = state.takeDirty()
        // Three days later the minutes are dropped, and later changes to them write nothing there.
        state.apply(line(.placed, day: 4, order: "D", orderTime: "2024-03-04T15:00:00Z"))
        let dirty = state.takeDirty()
        #expect(dirty.expiredMinutes.count == 3)
        #expect(state.minutes.count == 1)
        state.apply(line(.cancelled, day: 5, order: "A", orderTime: "2024-03-01T14:00:30Z"))
        #expect(state.minutes.count == 1 && state.minutes.values.allSatisfy { $0.lines == 1 })
        #expect(state.totals.lines == 3 && state.hours.count == 2, "A is gone from its hour; B and C remain there, D is in its own")
    }

    /// The property the crash safety rests on: any order, any repetition, same figures.
    @Test func orderAndRepetitionDoNotMatter() {
        var events: [S.Event] = []
        let statuses: [OrderStatus] = [.placed, .shipped, .delivered, .returned, .cancelled]
        for order in 0..<12 {
            for version in 0..<3 {
                events.append(line(statuses[(order + version) % 5], day: 1 + version, id: "e\(order)\(version)", net: Int64(1000 + order * 7),
                                   order: "O\(order)", customer: "C\(order % 3)", product: "P\(order % 4)",
                                   orderTime: String(format: "2024-03-01T%02d:%02d:00Z", 10 + order % 5, order * 4 % 60)))
            }
        }
        for c in 0..<3 {
            events.append(customer("C\(c)", segment: ["Basic", "Premium"][c % 2], state: "S\(c)", at: "2024-01-01T00:00:00Z", event: "a\(c)"))
            events.append(customer("C\(c)", segment: "VIP", state: "S9", at: "2024-03-01T12:00:00Z", event: "b\(c)"))
        }
        for p in 0..<4 { events.append(product("P\(p)", category: "K\(p % 2)", at: "2024-02-01T00:00:00Z", event: "k\(p)")) }
        let reference = figures(events)
        var generator = SplitMix64(seed: 7)
        for _ in 0..<25 {
            var shuffled = events + events.prefix(Int(generator.next() % 20))
            shuffled.shuffle(using: &generator)
            #expect(figures(shuffled) == reference)
        }
    }

    @Test func recordsRoundTrip() {
        let events: [S.Event] = [
            line(.returned, day: 3, id: "0123456789abcdef0123456789abcdef"), customer(segment: "Premium", state: nil, at: "2024-01-01T00:00:00Z"),
            customer(segment: "Premium", state: "TX", at: "2024-01-01T00:00:00.5Z"), product(category: "Toys", at: "2024-01-01T00:00:00Z"),
            .supplier(S.Supplier(id: "S1", version: S.Version(time: Self.t("2024-01-01T00:00:00Z"), eventID: "s"))),
            .payment(S.Payment(id: "Y1", version: S.Version(time: Self.t("2024-01-01T00:00:00Z"), eventID: "y"), method: "card", status: "captured", amountMicros: 123_456_789)),
            .movement(S.Movement(id: "M1", version: S.Version(time: Self.t("2024-01-01T00:00:00Z"), eventID: "m"), productID: "P1", quantity: -4)),
        ]
        for event in events {
            let record = KPIRecord.record(event)
            #expect(KPIRecord.decode(field: record.field, value: record.value) == event)
        }
        // Event ids that are not 32 hex digits are kept as text.
        let odd = S.Event.supplier(S.Supplier(id: "S2", version: S.Version(time: Self.t("2024-01-01T00:00:00Z"), eventID: "not-hex")))
        let oddRecord = KPIRecord.record(odd)
        #expect(KPIRecord.decode(field: oddRecord.field, value: oddRecord.value) == odd)
        // The first format (every value a string) is still read.
        var legacy: [UInt8] = []
        EventEncoder.pack(["M", "M1", "P1", "-4", "1704067200000000", "m"], into: &legacy)
        #expect(KPIRecord.decode(field: [], value: legacy)
                == .movement(S.Movement(id: "M1", version: S.Version(time: Self.t("2024-01-01T00:00:00Z"), eventID: "m"), productID: "P1", quantity: -4)))
        #expect(KPIRecord.decode(field: [], value: [1, 0x41]) == nil)
        #expect(KPIRecord.decode(field: [1, 0x41], value: [UInt8(ascii: "m"), 0xFF]) == nil, "truncated")
    }
}
