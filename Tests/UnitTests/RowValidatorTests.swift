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

@Suite struct RowValidatorTests {
    let orderHeader = ["order_id", "line_number", "customer_id", "product_id", "quantity", "unit_price", "discount",
                       "status", "order_ts", "updated_at"]

    private func order(_ overrides: [String: String] = [:]) -> [String] {
        let base = ["order_id": "O-1", "line_number": "1", "customer_id": "C-1", "product_id": "P-1", "quantity": "2",
                    "unit_price": "19.99", "discount": "0.1", "status": "placed",
                    "order_ts": "2024-03-01T09:05:00-05:00", "updated_at": "2024-03-01T14:05:00Z"]
        return orderHeader.map { overrides[$0] ?? base[$0]! }
    }

    @Test func acceptsAGoodRowAndCanonicalises() throws {
        let validator = try RowValidator(entity: .orders, header: orderHeader)
        let row = try validator.validate(order(["status": "Shipped", "unit_price": "19.990", "discount": ""]), line: 2).get()
        #expect(row.value("status") == "shipped")
        #expect(row.value("unit_price") == "19.99")
        #expect(row.value("discount") == "0")
        #expect(row.value("order_ts") == "2024-03-01T14:05:00Z")
        #expect(row.eventTime == Timestamp(iso8601: "2024-03-01T14:05:00Z"))
        #expect(row.key == "O-1|1")
        #expect(row.partitionKey == "O-1")
        // The same content spelt differently is the same event.
        let same = try validator.validate(order(["status": "shipped", "unit_price": "19.99", "discount": "0"]), line: 9).get()
        #expect(same.eventID == row.eventID)
        let other = try validator.validate(order(["status": "delivered"]), line: 3).get()
        #expect(other.eventID != row.eventID)
    }

    @Test func columnsInAnyOrderAndUnknownColumnsIgnored() throws {
        let header = ["note"] + orderHeader.reversed()
        let validator = try RowValidator(entity: .orders, header: header)
        #expect(validator.unknownColumns == ["note"])
        let row = try validator.validate(["hello"] + order().reversed(), line: 2).get()
        #expect(row.value("order_id") == "O-1")
    }

    @Test func missingRequiredColumnIsUnusableInput() {
        #expect(throws: ContractError.self) {
            try RowValidator(entity: .orders, header: orderHeader.filter { $0 != "quantity" })
        }
        // An optional column may be absent: its default applies.
        let validator = try? RowValidator(entity: .orders, header: orderHeader.filter { $0 != "discount" })
        #expect(validator != nil)
    }

    @Test(arguments: [
        ("quantity", "0", "quantity"), ("quantity", "-1", "quantity"), ("quantity", "2.5", "quantity"),
        ("line_number", "0", "line_number"), ("unit_price", "-1.00", "unit_price"), ("unit_price", "abc", "unit_price"),
        ("discount", "1", "discount"), ("discount", "1.5", "discount"), ("discount", "-0.1", "discount"),
        ("status", "lost", "status"), ("order_ts", "2024-03-01 14:05", "order_ts"), ("updated_at", "", "updated_at"),
        ("customer_id", "", "customer_id"), ("customer_id", "   ", "customer_id"),
    ])
    func rejectsEachBrokenRule(column: String, value: String, expectedColumn: String) throws {
        let validator = try RowValidator(entity: .orders, header: orderHeader)
        guard case .failure(let rejection) = validator.validate(order([column: value]), line: 7) else {
            Issue.record("\(column)=\(value) should be rejected")
            return
        }
        #expect(rejection.column == expectedColumn)
        #expect(rejection.line == 7)
        #expect(rejection.file == "orders.csv")
        #expect(rejection.reason.hasPrefix(expectedColumn))
        #expect(!rejection.raw.isEmpty)
    }

    @Test func wrongFieldCountIsRejected() throws {
        let validator = try RowValidator(entity: .orders, header: orderHeader)
        guard case .failure(let rejection) = validator.validate(Array(order().dropLast()), line: 4) else {
            Issue.record("short row should be rejected")
            return
        }
        #expect(rejection.column == nil)
        #expect(rejection.reason.contains("expected 10 fields"))
    }

    @Test func otherEntitiesRules() throws {
        let payments = try RowValidator(entity: .payments, header: ["payment_id", "order_id", "method", "amount", "currency", "status", "paid_at"])
        #expect((try? payments.validate(["PAY-1", "O-1", "paypal", "10", "usd", "captured", "2024-01-01T00:00:00Z"], line: 2).get())?.value("currency") == "USD")
        if case .success = payments.validate(["PAY-1", "O-1", "paypal", "10", "US", "captured", "2024-01-01T00:00:00Z"], line: 2) {
            Issue.record("a 2-letter currency should be rejected")
        }
        let movements = try RowValidator(entity: .inventory, header: ["movement_id", "product_id", "movement_type", "quantity", "moved_at"])
        #expect((try? movements.validate(["M-1", "P-1", "sale", "-3", "2024-01-01T00:00:00Z"], line: 2).get()) != nil)
        if case .success = movements.validate(["M-1", "P-1", "sale", "0", "2024-01-01T00:00:00Z"], line: 2) {
            Issue.record("a zero movement should be rejected")
        }
        #expect(Entity(fileName: "inventory_movements.csv") == .inventory)
        #expect(Entity(name: "order_line") == .orders)
    }

    /// The fast paths that keep a value's own text must agree with the slow path's canonical form.
    @Test func canonicalFastPathsAgreeWithTheFormatter() {
        for text in ["0", "1", "10", "-1", "0.5", "-0.5", "19.99", "19.90", "019.9", "+1.5", "-0", "-0.0", "0.0", "100",
                     "5.000", "0.05", "123456.789", "-12.3400"] {
            let value = DecimalValue(text)!
            #expect(RowValidator.isCanonicalDecimal(text) == (text == value.normalized().description), "\(text)")
        }
        for text in ["0", "7", "-7", "007", "-0", "+7", "12345678901", "-10"] {
            let value = Int64(text.hasPrefix("+") ? String(text.dropFirst()) : text)!
            #expect(RowValidator.isCanonicalInteger(text) == (text == String(value)), "\(text)")
        }
        for text in ["2024-03-01T14:05:00Z", "2024-03-01T14:05:00.5Z", "2024-03-01 14:05:00Z", "2024-03-01T09:05:00-05:00"] {
            var copy = text
            let shape = copy.withUTF8 { Timestamp.isCanonicalShape($0) }
            #expect(shape == (text == Timestamp(iso8601: text)!.description), "\(text)")
        }
    }

    @Test func csvWriterQuotesWhatNeedsIt() {
        #expect(CSVWriter.line(["a", "b,c", "say \"x\"", "two\nlines", ""]) == "a,\"b,c\",\"say \"\"x\"\"\",\"two\nlines\",")
    }
}
