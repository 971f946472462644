import Foundation
import PostgresClient
import RedisWire
import Testing
import Contract
import WarehouseSink
import TestSupport

/// The rule table (`Tests/Fixtures/rules.json`) through the warehouse's SQL on a real PostgreSQL:
/// each case's events go through the real loader, one batch per arrival in the case's order, and
/// the answers are read back from what the SQL made of them. `RuleTableTests` runs the same
/// cases through the Swift rules; both must give the table's answers.
@Suite(.serialized) struct RuleTableSQLTests {
    static let layout = StreamLayout(namespace: "rules")
    static let customers = try! RowValidator(entity: .customers, header: ["customer_id", "first_name", "city", "state", "country", "segment", "updated_at"])
    static let orders = try! RowValidator(entity: .orders, header: ["order_id", "line_number", "customer_id", "product_id", "quantity",
                                                                    "unit_price", "discount", "status", "order_ts", "updated_at"])

    /// An entry for `fields` of `validator`'s entity, with `eventID` as its event id when given
    /// (the table decides ties between versions at one instant by event id).
    static func entry(_ validator: RowValidator, _ fields: [String], eventID: String? = nil) throws -> StreamRead {
        let row = try validator.validate(fields, line: 2).get()
        let encoder = EventEncoder(layout: layout)
        var encoded = encoder.fields(row, source: "rules.json")
        if let eventID, let index = encoded.firstIndex(of: EventEnvelope.eventID) { encoded[index + 1] = eventID }
        return StreamRead(key: encoder.streamKey(for: row), entries: [StreamEntry(id: StreamID(milliseconds: 1), fields: encoded)])
    }

    static func load(_ read: StreamRead, into warehouse: WarehouseFixture) async throws {
        let batch = LoaderBatch([read], layout: layout)
        #expect(batch.rejects.isEmpty, "\(batch.rejects.map(\.reason))")
        _ = try await WarehouseLoader().apply(batch, on: warehouse.postgres)
    }

    @Test func validAtInSQL() async throws {
        let warehouse = try await WarehouseFixture.make()
        for (index, table) in RuleTable.shared.valid_at.enumerated() {
            let customer = RuleTable.customer(index)
            let order = "RV\(index)"
            var factTime = ""
            for arrival in table.arrivals {
                if let v = arrival.version {
                    try await Self.load(try Self.entry(Self.customers, [customer, "Name", v.city, v.state, "US", v.segment, v.time], eventID: v.event),
                                        into: warehouse)
                }
                if let fact = arrival.fact {
                    factTime = fact
                    try await Self.load(try Self.entry(Self.orders, [order, "1", customer, "P1", "1", "1.00", "0", "placed", fact, fact]),
                                        into: warehouse)
                }
            }
            let db = warehouse.postgres
            // customer_key_at, the SQL function any query can use.
            let byFunction = try await db.query("""
                SELECT coalesce(segment, 'unknown'), coalesce(state, 'unknown') FROM dim_customers
                WHERE customer_key = customer_key_at($1, $2::timestamptz)
                """, [PostgresBind(customer), PostgresBind(factTime)]).first
            // The fact as loaded (and re-pointed): the loader's own key resolution.
            let byFact = try await db.query("""
                SELECT coalesce(d.segment, 'unknown'), coalesce(d.state, 'unknown') FROM fact_sales f
                JOIN dim_customers d ON d.customer_key = f.customer_key WHERE f.order_id = $1
                """, [PostgresBind(order)]).first
            let current = try await db.query(
                "SELECT coalesce(segment, 'unknown') FROM dim_customers WHERE customer_id = $1 AND is_current", [PostgresBind(customer)])
            let periods = try await db.query("SELECT count(*) FROM dim_customers WHERE customer_id = $1", [PostgresBind(customer)]).first?[0]
            let expect = table.expect.mapValues(\.description)
            #expect(byFunction?[0] == expect["segment"] && byFunction?[1] == expect["state"],
                    "\(table.case): customer_key_at gives \(byFunction?[0] ?? "nil")/\(byFunction?[1] ?? "nil")")
            #expect(byFact?[0] == expect["segment"] && byFact?[1] == expect["state"],
                    "\(table.case): the loaded fact points at \(byFact?[0] ?? "nil")/\(byFact?[1] ?? "nil")")
            #expect(current.rows.count == 1 && current.first?[0] == expect["current_segment"],
                    "\(table.case): current rows \(current.rows.map { $0[0] ?? "nil" })")
            #expect(periods == expect["periods"], "\(table.case): \(periods ?? "nil") periods")
            let overlaps = try await db.query("""
                SELECT count(*) FROM dim_customers a JOIN dim_customers b ON a.customer_id = b.customer_id AND a.customer_key < b.customer_key
                WHERE a.customer_id = $1 AND a.valid_from < b.valid_to AND b.valid_from < a.valid_to
                """, [PostgresBind(customer)]).first?[0]
            #expect(overlaps == "0", "\(table.case): periods overlap")
        }
    }

    @Test func lineAmountsInSQL() async throws {
        let warehouse = try await WarehouseFixture.make()
        for (index, row) in RuleTable.shared.line_amounts.enumerated() {
            let functions = try await warehouse.postgres.query(
                "SELECT line_gross_amount($1::int, $2::numeric)::text, line_net_amount($1::int, $2::numeric, $3::numeric)::text",
                [PostgresBind(String(row.quantity)), PostgresBind(row.unit_price), PostgresBind(row.discount)]).first
            #expect(functions?[0] == row.gross && functions?[1] == row.net, "\(row.case): the SQL functions give \(functions.map { [$0[0], $0[1]] } ?? [])")
            let order = "RA\(index)"
            try await Self.load(try Self.entry(Self.orders, [order, "1", "C1", "P1", String(row.quantity), row.unit_price, row.discount, "placed",
                                                              "2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"]), into: warehouse)
            let loaded = try await warehouse.postgres.query(
                "SELECT gross_amount::text, net_amount::text, discount_amount::text FROM fact_sales WHERE order_id = $1", [PostgresBind(order)]).first
            #expect(loaded?[0] == row.gross && loaded?[1] == row.net && loaded?[2] == row.discount_amount,
                    "\(row.case): the loaded fact has \(loaded.map { [$0[0], $0[1], $0[2]] } ?? [])")
        }
    }

    @Test func statusInSQL() async throws {
        let warehouse = try await WarehouseFixture.make()
        for (index, row) in RuleTable.shared.status.enumerated() {
            let order = RuleTable.order(index)
            for arrival in row.arrivals {
                try await Self.load(try Self.entry(Self.orders, [order, "1", "C1", "P1", "2", "7.50", "0", arrival[0], "2024-01-01T10:00:00Z", arrival[1]],
                                                   eventID: arrival[2]), into: warehouse)
            }
            let loaded = try await warehouse.postgres.query(
                "SELECT status, counts_as_revenue(status)::text FROM fact_sales WHERE order_id = $1", [PostgresBind(order)])
            #expect(loaded.rows.count == 1 && loaded.first?[0] == row.final, "\(row.case): status \(loaded.first?[0] ?? "nil")")
            #expect(loaded.first?[1] == (row.counts ? "true" : "false"), "\(row.case): counts_as_revenue")
        }
        // Every status the contract knows, through the SQL rule and the Swift rule.
        for status in OrderStatus.allCases {
            let sql = try await warehouse.postgres.query("SELECT counts_as_revenue($1)::text", [PostgresBind(status.rawValue)]).first?[0]
            #expect(sql == (status.countsAsRevenue ? "true" : "false"), "\(status)")
        }
    }
}
