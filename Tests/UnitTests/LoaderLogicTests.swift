import RedisClient
import Testing
@testable import Contract
@testable import KPIModel
@testable import StreamRuntime
@testable import WarehouseSink
@testable import KPIStore
@testable import DataGenerator
@testable import RedisWire
import PostgresClient

@Suite struct CircuitBreakerTests {
    @Test func opensAfterTheThresholdAndClosesOnSuccess() {
        var breaker = CircuitBreaker(threshold: 3, maximumCoolDown: .seconds(1))
        #expect(breaker.state == .closed)
        #expect(breaker.recordFailure().opened == false)
        #expect(breaker.recordFailure().opened == false)
        #expect(breaker.state == .closed)
        let third = breaker.recordFailure()
        #expect(third.opened)
        #expect(breaker.state == .open)
        breaker.probe()
        #expect(breaker.state == .halfOpen)
        #expect(breaker.recordFailure().opened == false, "a failed probe keeps it open, it does not re-open")
        #expect(breaker.state == .open)
        for _ in 0..<20 { #expect(breaker.recordFailure().wait <= .seconds(1), "the cool-down is capped") }
        let closedIt = breaker.recordSuccess()
        #expect(closedIt)
        #expect(breaker.state == .closed && breaker.failures == 0)
        let again = breaker.recordSuccess()
        #expect(again == false, "closing a closed circuit is not news")
    }
}

@Suite struct LoaderBatchTests {
    let layout = StreamLayout(namespace: "t")

    private func sale(_ order: String, line: String = "1", status: String, updated: String, id: String) -> StreamEntry {
        StreamEntry(id: StreamID(milliseconds: UInt64.random(in: 1...1_000_000)), fields: [
            "order_id", order, "line_number", line, "customer_id", "C1", "product_id", "P1", "quantity", "2",
            "unit_price", "10.00", "discount", "0", "status", status, "order_ts", "2024-03-01T10:00:00Z",
            "updated_at", updated, "type", "order_line", "schema_version", "1", "event_time", updated, "event_id", id,
            "source", "orders.csv:2",
        ])
    }

    @Test func keepsTheLatestVersionOfEachFactWhateverTheOrder() {
        let entries = [
            sale("O1", status: "delivered", updated: "2024-03-05T10:00:00Z", id: "b"),
            sale("O1", status: "placed", updated: "2024-03-01T10:00:00Z", id: "a"),
            sale("O1", status: "shipped", updated: "2024-03-03T05:00:00-05:00", id: "c"),
            // Same instant as delivered, written in another zone, larger id: it wins the tie.
            sale("O1", status: "returned", updated: "2024-03-05T05:00:00-05:00", id: "z"),
            sale("O2", status: "placed", updated: "2024-03-01T10:00:00Z", id: "d"),
        ]
        for permutation in [entries, entries.reversed(), entries.shuffled()] {
            let batch = LoaderBatch([StreamRead(key: layout.streamKey(.orders, partition: 0), entries: permutation)], layout: layout)
            #expect(batch.sales.map(\.orderID) == ["O1", "O2"])
            #expect(batch.sales.first?.status == "returned")
            #expect(batch.entries == 5)
            #expect(batch.rejects.isEmpty)
        }
    }

    @Test func keepsEveryDimensionVersionOnce() {
        func customer(_ segment: String, _ updated: String, _ id: String) -> StreamEntry {
            StreamEntry(id: StreamID(milliseconds: 1), fields: [
                "customer_id", "C1", "country", "US", "segment", segment, "updated_at", updated, "event_id", id,
            ])
        }
        let entries = [customer("Standard", "2024-01-01T00:00:00Z", "a"), customer("Premium", "2024-02-01T00:00:00Z", "b"),
                       customer("Standard", "2024-01-01T00:00:00Z", "a")]
        let batch = LoaderBatch([StreamRead(key: layout.streamKey(.customers, partition: 0), entries: entries)], layout: layout)
        #expect(batch.customers.map(\.segment) == ["Standard", "Premium"])
    }

    @Test func rejectsEventsMissingWhatTheLoaderNeeds() {
        let key = layout.streamKey(.orders, partition: 0)
        var broken = sale("O1", status: "placed", updated: "2024-03-01T10:00:00Z", id: "a")
        broken.fields[9] = "lots"   // quantity
        broken.id = StreamID(milliseconds: 1)
        let missing = StreamEntry(id: StreamID(milliseconds: 2), fields: ["order_id", "O2"])
        let batch = LoaderBatch([StreamRead(key: key, entries: [broken, missing])], layout: layout)
        #expect(batch.sales.isEmpty)
        #expect(batch.rejects.map(\.reason) == ["quantity: 'lots' is not an integer", "line_number: missing from the event"])
        #expect(batch.positions[key] == StreamID(milliseconds: 2))
    }
}

/// The lag status rules on readings made up by hand.
@Suite struct LagRuleTests {
    func reading(lag: Int, pending: Int = 0, read: Int?, added: Int, idleMs: [Int]) -> LagMonitor.Reading {
        LagMonitor.Reading(
            stream: "s", group: "g", length: added, entriesAdded: added, entriesRead: read, lag: lag, lagSource: "redis",
            pending: pending, oldestPendingAgeSeconds: nil, timeLagSeconds: 0,
            consumers: idleMs.enumerated().map { LagMonitor.Consumer(name: "c\($0.offset)", idleMilliseconds: $0.element, pending: 0) },
            lastDeliveredID: "0-0")
    }

    func status(_ before: LagMonitor.Reading, _ after: LagMonitor.Reading, seconds: Double = 1) -> LagMonitor.Row {
        LagMonitor().evaluate(before: [before], after: [after], seconds: seconds)[0]
    }

    @Test func rules() {
        // Caught up.
        #expect(status(reading(lag: 0, read: 10, added: 10, idleMs: [5]), reading(lag: 0, read: 10, added: 10, idleMs: [5])).status == .ok)
        // Catching up: consuming faster than producing.
        let catching = status(reading(lag: 100, read: 0, added: 100, idleMs: [5]), reading(lag: 40, read: 70, added: 110, idleMs: [5]))
        #expect(catching.status == .ok && catching.consumeRate == 70 && catching.produceRate == 10)
        #expect(catching.etaSeconds.map { abs($0 - 40.0 / 60.0) < 1e-9 } == true)
        // Growing while consuming.
        #expect(status(reading(lag: 10, read: 0, added: 10, idleMs: [5]), reading(lag: 50, read: 20, added: 70, idleMs: [5])).status == .warn)
        // Behind, a live consumer, nothing consumed.
        #expect(status(reading(lag: 10, read: 5, added: 15, idleMs: [5]), reading(lag: 10, read: 5, added: 15, idleMs: [5])).status == .stalled)
        // Behind, no consumer, or none active within the threshold.
        #expect(status(reading(lag: 10, read: 0, added: 10, idleMs: []), reading(lag: 10, read: 0, added: 10, idleMs: [])).status == .stopped)
        #expect(status(reading(lag: 10, read: 0, added: 10, idleMs: [60_000]), reading(lag: 10, read: 0, added: 10, idleMs: [61_000])).status == .stopped)
        // Only pending entries (all delivered, none acknowledged): behind.
        #expect(status(reading(lag: 0, pending: 3, read: 3, added: 3, idleMs: [5]), reading(lag: 0, pending: 3, read: 3, added: 3, idleMs: [5])).status == .stalled)
        #expect(LagMonitor.Status.stalled.alerts && LagMonitor.Status.stopped.alerts && !LagMonitor.Status.warn.alerts)
        // Burrow's rule over a series: only a lag above zero at every reading and growing at each step warns.
        func series(_ lags: [Int]) -> LagMonitor.Status {
            let readings = lags.enumerated().map { [reading(lag: $0.element, read: 100 * $0.offset, added: 100 * $0.offset + $0.element, idleMs: [5])] }
            return LagMonitor().evaluate(readings, seconds: 2)[0].status
        }
        #expect(series([10, 20, 40]) == .warn)
        #expect(series([10, 5, 40]) == .ok, "a lag that dips between batches is not a warning")
        #expect(series([0, 20, 40]) == .ok, "caught up at one reading")
    }
}

@Suite struct NaturalKeyLockTests {
    /// Versions lock their key exclusively; facts lock the keys they reference shared; a key that
    /// is both is exclusive; the list is sorted (every loader takes the locks in one order).
    @Test func modesAndOrder() {
        var batch = LoaderBatch()
        batch.customers = [.init(id: "C2", versionTime: "2024-01-01T00:00:00Z", eventID: "e", firstName: nil, lastName: nil, email: nil,
                                 city: nil, state: nil, country: "US", segment: "Standard", signupDate: nil)]
        batch.sales = [
            .init(orderID: "O1", lineNumber: "1", customerID: "C2", productID: "P1", quantity: "1", unitPrice: "1", discount: "0",
                  status: "placed", orderTS: "2024-01-01T00:00:00Z", updatedAt: "2024-01-01T00:00:00Z", eventID: "e"),
            .init(orderID: "O2", lineNumber: "1", customerID: "C1", productID: "P1", quantity: "1", unitPrice: "1", discount: "0",
                  status: "placed", orderTS: "2024-01-01T00:00:00Z", updatedAt: "2024-01-01T00:00:00Z", eventID: "e"),
        ]
        batch.movements = [.init(id: "M1", productID: "P3", type: "receipt", quantity: "1", unitCost: nil, movedAt: "2024-01-01T00:00:00Z",
                                 reference: nil, eventID: "e")]
        let locks = batch.naturalKeyLocks
        #expect(locks.keys == ["c:C1", "c:C2", "p:P1", "p:P3"])
        #expect(locks.exclusive == [false, true, false, false])
        #expect(LoaderBatch().naturalKeyLocks.keys.isEmpty)
    }
}
