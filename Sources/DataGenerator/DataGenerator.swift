import Foundation
import Contract

/// `warehouse generate`: deterministic data sets of any size in the input contract, with the same
/// kinds of traps as the sample at realistic rates (status progressions, cancels, returns, SCD2
/// changes, late-arriving customers, exact duplicates, rows out of order, offset timestamps,
/// awkward names, malformed rows). The same options and seed give the same bytes.
public struct DataGenerator: Sendable {
    public struct Options: Sendable {
        /// Order lines (first versions); orders hold 1–4 lines.
        public var orders: Int
        public var seed: UInt64
        /// The first instant of the data set (ISO-8601).
        public var start = "2023-01-01T00:00:00Z"
        /// Days the orders spread over.
        public var days = 730
        /// Trap rates.
        public var duplicateRate = 0.005
        public var malformedRate = 0.002
        public var offsetRate = 0.02
        public var swapRate = 0.01

        public init(orders: Int, seed: UInt64) {
            self.orders = orders
            self.seed = seed
        }
    }

    /// Rows written per file.
    public struct Summary: Sendable, Equatable {
        public var rows: [String: Int] = [:]
        public var orderLines = 0
    }

    public let options: Options

    public init(options: Options) {
        self.options = options
    }

    static let segments = ["Standard", "Premium"]
    static let states = ["CA", "TX", "NY", "FL", "WA", "IL", "MA", "CO", "GA", "OR", "AZ", "NC", "OH", "MI", "PA"]
    static let categories = ["Electronics", "Clothing", "Accessories"]
    static let methods = ["credit_card", "paypal", "debit_card"]
    static let processors = ["credit_card": "stripe", "paypal": "paypal", "debit_card": "adyen"]
    static let firstNames = ["Ava", "Liam", "Mia", "Noah", "José", "Zoë", "李", "Chloé", "Søren", "Amelia", "O'Brien", "Ethan"]
    static let lastNames = ["Smith", "García", "Ñúñez", "Åström", "雷", "Müller", "Okafor", "Nguyen", "Kowalski", "Brown"]

    @discardableResult
    public func write(to folder: String) throws -> Summary {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        guard let start = Timestamp(iso8601: options.start) else { throw ContractError("bad start time \(options.start)") }
        var random = SplitMix64(seed: options.seed)
        var summary = Summary()
        let lines = max(1, options.orders)
        let customerCount = max(10, lines / 20)
        let productCount = min(5000, max(10, lines / 200))
        let supplierCount = max(5, productCount / 10)
        let span = Int64(options.days) * 86_400_000_000
        let hour: Int64 = 3_600_000_000

        func time(_ micros: Int64, _ random: inout SplitMix64) -> String {
            let stamp = Timestamp(microseconds: micros)
            if random.chance(options.offsetRate) {
                // The same instant written five hours behind UTC.
                let shifted = Timestamp(microseconds: micros - 5 * hour).description
                return String(shifted.dropLast()) + "-05:00"
            }
            return stamp.description
        }

        // Suppliers.
        var suppliers = try CSVFile(folder: folder, name: "suppliers.csv",
                                    header: ["supplier_id", "name", "country", "contact_email", "contract_start", "contract_end",
                                             "lead_time_days", "rating", "updated_at"])
        for index in 0..<supplierCount {
            suppliers.row(["S\(index + 1)", "Supplier \(index + 1)", ["US", "DE", "CN", "MX"][index % 4], "s\(index + 1)@example.com",
                           "2022-01-01", "2026-12-31", String(3 + index % 25), "\(3 + index % 3).5",
                           time(start.microseconds - 30 * 24 * hour, &random)])
        }
        summary.rows["suppliers.csv"] = try suppliers.close()

        // Products, with price and category changes.
        var products = try CSVFile(folder: folder, name: "products.csv",
                                   header: ["product_id", "name", "category", "supplier_id", "unit_price", "unit_cost", "updated_at"])
        var prices: [Int64] = []
        for index in 0..<productCount {
            let cents = Int64(99 + random.next() % 30_000)
            prices.append(cents)
            let name = index % 97 == 5 ? "Gadget \(index), \"deluxe\"" : "Product \(index + 1)"
            let base = ["P\(index + 1)", name, Self.categories[index % 3], "S\(index % supplierCount + 1)",
                        DecimalValue.formatCents(cents), DecimalValue.formatCents(cents * 6 / 10)]
            products.row(base + [time(start.microseconds - 20 * 24 * hour, &random)])
            if random.chance(0.03) {
                let changed = Int64(Double(cents) * 0.9)
                products.row(["P\(index + 1)", name, Self.categories[(index + 1) % 3], base[3], DecimalValue.formatCents(changed),
                              base[5], time(start.microseconds + Int64(random.next() % UInt64(span)), &random)])
            }
        }
        summary.rows["products.csv"] = try products.close()

        // Customers: segment changes (SCD2), late arrivals (first version after the data's end).
        var customers = try CSVFile(folder: folder, name: "customers.csv",
                                    header: ["customer_id", "first_name", "last_name", "email", "city", "state", "country",
                                             "segment", "signup_date", "updated_at"])
        for index in 0..<customerCount {
            let late = random.chance(0.01)
            let first = index % 211 == 7 ? "Mary, \"Mae\"\nAnn" : Self.firstNames[Int(random.next() % UInt64(Self.firstNames.count))]
            let last = Self.lastNames[Int(random.next() % UInt64(Self.lastNames.count))]
            let state = Self.states[Int(random.next() % UInt64(Self.states.count))]
            let segment = Self.segments[random.chance(0.3) ? 1 : 0]
            let created = late ? start.microseconds + span : start.microseconds - Int64(random.next() % UInt64(300 * 24 * hour))
            let signup = CivilDate.format(days: Timestamp(microseconds: created).utcDay)
            let base = ["C\(index + 1)", first, last, "c\(index + 1)@example.com", "City \(state)", state, "US", segment, signup]
            customers.row(base + [time(created, &random)])
            if random.chance(0.03) {
                var changed = base
                changed[7] = segment == "Premium" ? "Standard" : "Premium"
                customers.row(changed + [time(start.microseconds + Int64(random.next() % UInt64(span)), &random)])
            }
        }
        summary.rows["customers.csv"] = try customers.close()

        // Orders, payments and inventory movements.
        var orders = try CSVFile(folder: folder, name: "orders.csv",
                                 header: ["order_id", "line_number", "customer_id", "product_id", "quantity", "unit_price",
                                          "discount", "status", "order_ts", "updated_at"])
        var payments = try CSVFile(folder: folder, name: "payments.csv",
                                   header: ["payment_id", "order_id", "method", "processor", "amount", "currency", "status", "paid_at"])
        var movements = try CSVFile(folder: folder, name: "inventory_movements.csv",
                                    header: ["movement_id", "product_id", "movement_type", "quantity", "unit_cost", "moved_at", "reference"])
        var movementID = 0
        for index in 0..<productCount {
            movementID += 1
            movements.row(["M\(movementID)", "P\(index + 1)", "receipt", String(1000 + index % 500), "", time(start.microseconds - 10 * 24 * hour, &random), "PO-INIT"])
        }
        var written = 0
        var orderNumber = 0
        var paymentNumber = 0
        let step = max(1, span / Int64(lines))
        var previousRow: [String]?
        while written < lines {
            orderNumber += 1
            let lineCount = min(1 + Int(random.next() % 4), lines - written)
            let placed = start.microseconds + Int64(written) * step + Int64(random.next() % UInt64(step))
            let orderID = "O\(orderNumber)"
            let customer = "C\(1 + Int(random.next() % UInt64(customerCount)))"
            var totalCents: Int64 = 0
            let fate = Double.random(in: 0..<1, using: &random)
            for line in 1...lineCount {
                let product = Int(random.next() % UInt64(productCount))
                let quantity = Int64(1 + random.next() % 5)
                let discount = ["0", "0", "0", "0.1", "0.05", "0.15"][Int(random.next() % 6)]
                let price = DecimalValue.formatCents(prices[product])
                totalCents += LineAmounts(quantity: quantity, unitPrice: DecimalValue(units: prices[product], scale: 2),
                                          discount: DecimalValue(discount)!).netCents
                let orderTS = time(placed, &random)
                let base = [orderID, String(line), customer, "P\(product + 1)", String(quantity), price, discount]
                var versions: [(String, Int64)] = [("placed", placed)]
                if fate < 0.03 {
                    versions.append(("cancelled", placed + 5 * hour))
                } else if fate < 0.75 {
                    versions.append(("shipped", placed + 30 * hour))
                    if fate < 0.55 { versions.append(("delivered", placed + 96 * hour)) }
                    if fate < 0.02 + 0.03 && versions.count == 3 { versions.append(("returned", placed + 400 * hour)) }
                }
                for (status, at) in versions {
                    var row = base + [status, orderTS, time(at, &random)]
                    if random.chance(options.malformedRate) { row[4] = ["0", "-1", "two"][Int(random.next() % 3)] }
                    if let held = previousRow {
                        // Out of order: this row goes before the one held back.
                        orders.row(row)
                        orders.row(held)
                        previousRow = nil
                    } else if random.chance(options.swapRate) {
                        previousRow = row
                        continue
                    } else {
                        orders.row(row)
                    }
                    if random.chance(options.duplicateRate) { orders.row(row) }
                }
                summary.orderLines += 1
            }
            written += lineCount
            let method = Self.methods[Int(random.next() % 3)]
            if random.chance(0.05) {
                paymentNumber += 1
                payments.row(["PAY\(paymentNumber)", orderID, method, Self.processors[method]!, DecimalValue.formatCents(totalCents), "USD", "failed", time(placed + 60_000_000, &random)])
            }
            paymentNumber += 1
            let amount = DecimalValue.formatCents(totalCents)
            let paymentRow = ["PAY\(paymentNumber)", orderID, method, Self.processors[method]!, amount,
                              random.chance(options.malformedRate) ? "US" : "USD",
                              fate < 0.03 ? "refunded" : "captured", time(placed + 120_000_000, &random)]
            payments.row(paymentRow)
            if random.chance(options.duplicateRate) { payments.row(paymentRow) }
            movementID += 1
            movements.row(["M\(movementID)", "P\(1 + Int(random.next() % UInt64(productCount)))", "sale", String(-Int(1 + random.next() % 5)), "",
                           time(placed + 1_000_000, &random), orderID])
        }
        if let held = previousRow { orders.row(held) }
        summary.rows["orders.csv"] = try orders.close()
        summary.rows["payments.csv"] = try payments.close()
        summary.rows["inventory_movements.csv"] = try movements.close()
        return summary
    }
}

/// Writes one CSV file through a large buffer.
struct CSVFile {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private(set) var rows = 0

    init(folder: String, name: String, header: [String]) throws {
        let path = (folder as NSString).appendingPathComponent(name)
        guard FileManager.default.createFile(atPath: path, contents: nil) , let handle = FileHandle(forWritingAtPath: path) else {
            throw ContractError("cannot write \(path)")
        }
        self.handle = handle
        buffer.reserveCapacity(1 << 20)
        buffer.append(contentsOf: CSVWriter.line(header).utf8)
        buffer.append(10)
    }

    mutating func row(_ fields: [String]) {
        for (index, field) in fields.enumerated() {
            if index > 0 { buffer.append(UInt8(ascii: ",")) }
            buffer.append(contentsOf: CSVWriter.field(field).utf8)
        }
        buffer.append(10)
        rows += 1
        if buffer.count >= 1 << 20 {
            handle.write(Data(buffer))
            buffer.removeAll(keepingCapacity: true)
        }
    }

    mutating func close() throws -> Int {
        handle.write(Data(buffer))
        buffer.removeAll()
        try handle.close()
        return rows
    }
}
