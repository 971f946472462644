import RedisClient
import Testing
@testable import Pipeline

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
