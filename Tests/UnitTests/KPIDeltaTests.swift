import Foundation
import Testing
@testable import Pipeline

/// The KPI delta rules on their own: no server.
@Suite struct KPIDeltaTests {
    let premium = KPIDelta.Attribution(segment: "Premium", state: "TX", category: "Electronics", segmentNow: "Premium")

    private func line(_ status: OrderStatus, at hour: Int, id: String = "e", net: Int64 = 5397) -> KPIDelta.Line {
        KPIDelta.Line(
            orderID: "O1", lineNumber: 1, customerID: "C1", productID: "P1", status: status, quantity: 3, netCents: net,
            orderTime: Timestamp(iso8601: "2024-03-01T14:05:00Z")!,
            version: KPIDelta.Version(time: Timestamp(iso8601: String(format: "2024-03-%02dT00:00:00Z", hour))!, eventID: id))
    }

    /// Applies a sequence of versions as the aggregator would, returning the counters.
    private func apply(_ versions: [(KPIDelta.Line, KPIDelta.Attribution)]) -> KPIDelta.Increments {
        var counters: KPIDelta.Increments = [:]
        var applied: (KPIDelta.Line, KPIDelta.Attribution)?
        for version in versions where KPIDelta.supersedes(version.0.version, applied?.0.version) {
            KPIDelta.merge(&counters, KPIDelta.change(from: applied, to: version))
            applied = version
        }
        return counters.filter { $0.value != 0 }
    }

    @Test func placedShippedDeliveredReturned() {
        var counters = apply([(line(.placed, at: 1), premium)])
        #expect(counters["revenue"] == 5397)
        #expect(counters["lines"] == 1)
        #expect(counters["units"] == 3)
        #expect(counters["revenue:day:2024-03-01"] == 5397)
        #expect(counters["revenue:hour:2024-03-01T14"] == 5397)
        #expect(counters["revenue:minute:2024-03-01T14:05"] == 5397)
        #expect(counters["revenue:month:2024-03"] == 5397)
        #expect(counters["revenue:segment_was:Premium"] == 5397)
        #expect(counters["revenue:category:Electronics"] == 5397)
        #expect(counters["status:placed"] == 1)

        counters = apply([(line(.placed, at: 1), premium), (line(.shipped, at: 2), premium), (line(.delivered, at: 3), premium)])
        #expect(counters["revenue"] == 5397, "a progression changes no revenue")
        #expect(counters["status:delivered"] == 1)
        #expect(counters["status:placed"] == nil && counters["status:shipped"] == nil)

        counters = apply([(line(.placed, at: 1), premium), (line(.delivered, at: 3), premium), (line(.returned, at: 9), premium)])
        #expect(counters == ["status:returned": 1], "a return takes the line out of every aggregate: \(counters)")
    }

    @Test func placedThenCancelled() {
        let counters = apply([(line(.placed, at: 1), premium), (line(.cancelled, at: 2), premium)])
        #expect(counters == ["status:cancelled": 1])
    }

    @Test func aStaleUpdateChangesNothing() {
        // Delivered arrives first; the older "placed" version arrives late and is ignored.
        let late = apply([(line(.delivered, at: 3), premium), (line(.placed, at: 1), premium)])
        let inOrder = apply([(line(.placed, at: 1), premium), (line(.delivered, at: 3), premium)])
        #expect(late == inOrder)
        // A cancel that arrives before the placement it cancels still wins.
        let cancelFirst = apply([(line(.cancelled, at: 2), premium), (line(.placed, at: 1), premium)])
        #expect(cancelFirst == ["status:cancelled": 1])
        // Equal times: the larger event id wins, in either order.
        let a = (line(.shipped, at: 2, id: "a"), premium), b = (line(.cancelled, at: 2, id: "b"), premium)
        #expect(apply([a, b]) == apply([b, a]))
        #expect(apply([a, b]) == ["status:cancelled": 1])
    }

    @Test func aDuplicateChangesNothing() {
        let once = apply([(line(.placed, at: 1), premium)])
        let twice = apply([(line(.placed, at: 1), premium), (line(.placed, at: 1), premium)])
        #expect(once == twice)
        #expect(KPIDelta.supersedes(line(.placed, at: 1).version, line(.placed, at: 1).version) == false)
    }

    @Test func aLateCustomerMovesTheLineFromUnknown() {
        var counters = KPIDelta.change(from: nil, to: (line(.placed, at: 1), .unknown))
        #expect(counters["revenue:segment_was:unknown"] == 5397)
        // The customer arrives: same line version, new attribution.
        KPIDelta.merge(&counters, KPIDelta.change(from: (line(.placed, at: 1), .unknown), to: (line(.placed, at: 1), premium)))
        let nonZero = counters.filter { $0.value != 0 }
        #expect(nonZero["revenue:segment_was:unknown"] == nil)
        #expect(nonZero["revenue:segment_was:Premium"] == 5397)
        #expect(nonZero["revenue:state_was:TX"] == 5397)
        #expect(nonZero["revenue"] == 5397, "moving a line does not change the total")
    }

    @Test func aSegmentChangeMovesRevenueInTheAsIsView() {
        var counters = apply([(line(.placed, at: 1), premium)])
        #expect(counters["revenue:segment_is:Premium"] == 5397)
        KPIDelta.merge(&counters, KPIDelta.segmentNow(customerRevenueCents: counters["revenue:customer:C1"] ?? 0, from: "Premium", to: "Standard"))
        let nonZero = counters.filter { $0.value != 0 }
        #expect(nonZero["revenue:segment_is:Premium"] == nil)
        #expect(nonZero["revenue:segment_is:Standard"] == 5397)
        #expect(nonZero["revenue:segment_was:Premium"] == 5397, "as was does not move")
        // A later change of the line uses the current segment on both sides and stays consistent.
        let standardNow = KPIDelta.Attribution(segment: "Premium", state: "TX", category: "Electronics", segmentNow: "Standard")
        KPIDelta.merge(&counters, KPIDelta.change(from: (line(.placed, at: 1), standardNow), to: (line(.cancelled, at: 2), standardNow)))
        #expect(counters.filter { $0.value != 0 } == ["status:cancelled": 1])
    }
}
