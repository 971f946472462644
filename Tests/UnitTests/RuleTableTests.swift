import Foundation
import Testing
@testable import Contract
@testable import KPIModel
import TestSupport

struct RuleTableTests {
    @Test func theTableIsThere() {
        #expect(RuleTable.shared.valid_at.count >= 10 && RuleTable.shared.line_amounts.count >= 8 && RuleTable.shared.status.count >= 8)
    }

    /// Each valid-at case through `ValidAt` directly and through the KPI state (events applied in
    /// the case's arrival order, with re-attribution).
    @Test(arguments: RuleTable.shared.valid_at.indices)
    func validAtInSwift(case index: Int) throws {
        let table = RuleTable.shared.valid_at[index]
        var state = KPIState()
        let customer = RuleTable.customer(index)
        var factTime: Timestamp?
        var versions: [Contract.Version] = []
        for arrival in table.arrivals {
            if let v = arrival.version {
                let version = Contract.Version(time: Timestamp(iso8601: v.time)!, eventID: v.event)
                versions.append(version)
                state.apply(.customer(KPIState.Customer(id: customer, version: version, segment: v.segment, state: v.state)))
            }
            if let fact = arrival.fact {
                factTime = Timestamp(iso8601: fact)!
                state.apply(.line(KPIState.Line(
                    orderID: "RV\(index)", lineNumber: 1, customerID: customer, productID: "P1", status: .placed, quantity: 1, netCents: 100,
                    orderTime: factTime!, version: Contract.Version(time: factTime!, eventID: "line"))))
            }
        }
        let time = try #require(factTime)
        let attribution = state.attribution(customerID: customer, productID: "P1", at: time)
        #expect(attribution.segment == table.expect["segment"]?.description, "\(table.case): segment as was")
        #expect(attribution.state == table.expect["state"]?.description, "\(table.case): state as was")
        #expect(attribution.segmentNow == table.expect["current_segment"]?.description, "\(table.case): segment now")
        #expect(state.bySegmentWas[table.expect["segment"]!.description]?.amount == 100, "\(table.case): the line counts under it")

        // The rule itself, over the versions sorted.
        let sorted = versions.sorted()
        let valid = ValidAt.index(in: sorted, at: time) { $0 }
        if versions.isEmpty {
            #expect(valid == nil)
        } else {
            let event = sorted[try #require(valid)].eventID
            let segment = table.arrivals.compactMap(\.version).first { $0.event == event }?.segment
            #expect(segment == table.expect["segment"]?.description, "\(table.case): ValidAt picked \(event)")
        }
    }

    @Test(arguments: RuleTable.shared.line_amounts.indices)
    func lineAmountsInSwift(case index: Int) throws {
        let row = RuleTable.shared.line_amounts[index]
        let amounts = LineAmounts(quantity: row.quantity, unitPrice: try #require(DecimalValue(row.unit_price)),
                                  discount: try #require(DecimalValue(row.discount)))
        #expect(DecimalValue.formatCents(amounts.grossCents) == row.gross, "\(row.case): gross")
        #expect(DecimalValue.formatCents(amounts.netCents) == row.net, "\(row.case): net")
        #expect(DecimalValue.formatCents(amounts.discountCents) == row.discount_amount, "\(row.case): discount amount")
    }

    /// Each status case through the KPI state, versions applied in arrival order.
    @Test(arguments: RuleTable.shared.status.indices)
    func statusInSwift(case index: Int) throws {
        let row = RuleTable.shared.status[index]
        var state = KPIState()
        for arrival in row.arrivals {
            let time = try #require(Timestamp(iso8601: arrival[1]))
            state.apply(.line(KPIState.Line(
                orderID: RuleTable.order(index), lineNumber: 1, customerID: "C1", productID: "P1",
                status: try #require(OrderStatus(rawValue: arrival[0])), quantity: 2, netCents: 1500,
                orderTime: Timestamp(iso8601: "2024-01-01T10:00:00Z")!, version: Contract.Version(time: time, eventID: arrival[2]))))
        }
        let final = try #require(OrderStatus(rawValue: row.final))
        #expect(final.countsAsRevenue == row.counts, "\(row.case): the rule")
        #expect(state.linesByStatus[final] == 1, "\(row.case): the line's status is \(row.final)")
        #expect(state.linesByStatus.values.reduce(0, +) == 1, "\(row.case): one line")
        #expect(state.totals.revenueCents == (row.counts ? 1500 : 0), "\(row.case): revenue")
        #expect(state.totals.orders == (row.counts ? 1 : 0), "\(row.case): orders")
    }
}
