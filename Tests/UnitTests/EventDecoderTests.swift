import Foundation
import Testing
@testable import Contract
@testable import KPIModel
@testable import WarehouseSink
import RedisWire

/// The one decoder both consumers read entries with: its column enums match the contract, and
/// the loader and the KPI aggregator accept and refuse exactly the same entries, each refusal
/// naming the column.
struct EventDecoderTests {
    @Test func entityIndexIsItsPositionInAllCases() {
        for (position, entity) in Entity.allCases.enumerated() { #expect(entity.index == position, "\(entity)") }
    }

    @Test func columnEnumsFollowTheSchema() {
        #expect(Columns.Customer.allCases.count == Entity.customers.schema.columns.count)
        #expect(Columns.Supplier.allCases.count == Entity.suppliers.schema.columns.count)
        #expect(Columns.Product.allCases.count == Entity.products.schema.columns.count)
        #expect(Columns.OrderLine.allCases.count == Entity.orders.schema.columns.count)
        #expect(Columns.Payment.allCases.count == Entity.payments.schema.columns.count)
        #expect(Columns.Movement.allCases.count == Entity.inventory.schema.columns.count)
        // Each case's name, snake-cased, is the schema's column at its position.
        func snake(_ name: String) -> String {
            var out = ""
            for character in name {
                if character.isUppercase { out += "_" + character.lowercased() } else { out.append(character) }
            }
            return out.replacingOccurrences(of: "_i_d", with: "_id").replacingOccurrences(of: "_t_s", with: "_ts")
        }
        func check<C: CaseIterable & EventColumn>(_: C.Type, _ entity: Entity) {
            for column in C.allCases {
                let expected = entity.schema.columns[column.rawValue].name
                let mine = snake(String(describing: column))
                #expect(mine == expected || (entity == .inventory && mine == "movement_type" && expected == "movement_type"),
                        "\(entity) column \(column.rawValue): \(mine) vs \(expected)")
            }
        }
        check(Columns.Customer.self, .customers)
        check(Columns.Supplier.self, .suppliers)
        check(Columns.Product.self, .products)
        check(Columns.OrderLine.self, .orders)
        check(Columns.Payment.self, .payments)
        check(Columns.Movement.self, .inventory)
    }

    static let goodLine: [String: String] = [
        "order_id": "O1", "line_number": "1", "customer_id": "C1", "product_id": "P1", "quantity": "2", "unit_price": "9.99",
        "discount": "0.1", "status": "placed", "order_ts": "2024-03-01T10:00:00Z", "updated_at": "2024-03-01T10:00:00Z",
        "event_id": "0123456789abcdef0123456789abcdef",
    ]

    /// (what changes from a good order line, the column the refusal must name; nil: accepted).
    static let lines: [([String: String?], String?)] = [
        ([:], nil),
        (["status": "SHIPPED"], nil),                       // allowed values are case-insensitive, as at ingest
        (["discount": nil], nil),                           // optional, defaults to 0
        (["extra_column": "x"], nil),                       // fields the contract does not name are ignored
        (["status": "lost"], "status"),                     // the loader used to load any status
        (["status": nil], "status"),
        (["quantity": "0"], "quantity"),                    // the contract's bounds, which only ingest checked
        (["quantity": "-3"], "quantity"),
        (["quantity": "3000000000"], "quantity"),           // does not fit PostgreSQL's integer
        (["quantity": "two"], "quantity"),
        (["line_number": "1.5"], "line_number"),
        (["unit_price": "-1"], "unit_price"),
        (["discount": "1"], "discount"),
        (["order_ts": "yesterday"], "order_ts"),
        (["updated_at": nil], "updated_at"),
        (["customer_id": ""], "customer_id"),
        (["product_id": "P\u{0}1"], "product_id"),
        (["event_id": nil], "event_id"),
    ]

    @Test(arguments: lines.indices)
    func bothConsumersReadAnEntryAlike(case index: Int) throws {
        let (changes, refusedColumn) = Self.lines[index]
        var values = Self.goodLine
        for (name, value) in changes { values[name] = value }
        let fields = values.sorted { $0.key < $1.key }.flatMap { [$0.key, $0.value] }
        let entry = StreamEntry(id: StreamID(milliseconds: 1), fields: fields)
        let layout = StreamLayout(namespace: "decoder")
        let batch = LoaderBatch([StreamRead(key: layout.streamKey(.orders, partition: 0), entries: [entry])], layout: layout)
        let kpi = Result { () throws(EventDecoder.Unreadable) in try KPIRecord.event(entry, entity: .orders) }
        if let refusedColumn {
            #expect(batch.rejects.count == 1 && batch.sales.isEmpty, "the loader refuses \(changes)")
            #expect(batch.rejects.first?.reason.hasPrefix(refusedColumn + ":") == true, "\(batch.rejects.first?.reason ?? "")")
            guard case .failure(let error) = kpi else {
                Issue.record("the KPI aggregator accepted \(changes)")
                return
            }
            #expect(error.description == batch.rejects.first?.reason, "both give one reason")
        } else {
            #expect(batch.rejects.isEmpty, "the loader accepts \(changes): \(batch.rejects.map(\.reason))")
            guard case .success(.line(let line)) = kpi else {
                Issue.record("the KPI aggregator refused \(changes): \(kpi)")
                return
            }
            #expect(batch.sales.first?.status == line.status.rawValue, "one canonical status")
            #expect(line.netCents == LineAmounts(quantity: 2, unitPrice: DecimalValue("9.99")!,
                                                 discount: changes.keys.contains("discount") ? .zero : DecimalValue("0.1")!).netCents)
        }
    }
}
