#if canImport(Glibc)
import Glibc
#endif
public import Contract

/// A realistic live load for `warehouse produce synthetic`, as a pure, seeded generator: new
/// orders arrive as a Poisson process, each with its lines, a sale movement per line and a payment
/// (sometimes failed, then retried); lines later ship and deliver, some orders are cancelled and
/// some delivered lines returned (with a return movement and a refund); now and then a new customer,
/// a customer's segment change, a price change, and restocking receipts when stock runs low.
/// Event times are the wall time the event is due at. The caller validates and publishes.
public struct SyntheticLoad: Sendable {
    public struct Customer: Sendable, Equatable {
        public var id: String, segment: String, state: String, country: String
        public init(id: String, segment: String, state: String, country: String) {
            self.id = id
            self.segment = segment
            self.state = state
            self.country = country
        }
    }

    public struct Product: Sendable, Equatable {
        public var id: String, name: String, category: String, supplierID: String, price: DecimalValue
        public init(id: String, name: String, category: String, supplierID: String, price: DecimalValue) {
            self.id = id
            self.name = name
            self.category = category
            self.supplierID = supplierID
            self.price = price
        }
    }

    public struct Catalog: Sendable {
        public var customers: [Customer] = []
        public var products: [Product] = []
        public init() {}
        public var isEmpty: Bool { customers.isEmpty || products.isEmpty }
    }

    /// One event: its entity and its columns.
    public struct Event: Sendable {
        public var entity: Entity
        public var values: [String: String]
    }

    /// Events per order on average (lines, movements, payments and the later status changes), to
    /// turn an event rate into an order arrival rate.
    public static let eventsPerOrder = 11.0

    struct Line: Sendable {
        var number: Int, productID: String, quantity: Int64, price: DecimalValue, discount: DecimalValue
        var netCents: Int64
    }

    struct Order: Sendable {
        var id: String, customerID: String, time: Timestamp, lines: [Line]
    }

    enum Followup: Sendable {
        case status(Order, OrderStatus)
        case retryPayment(Order)
        case returnLine(Order, Int)
    }

    public private(set) var catalog: Catalog
    private var random: SplitMix64
    private let prefix: String
    private var counter = 0
    private var onHand: [String: Int64] = [:]
    private var queue: [(due: Int64, sequence: Int, work: Followup)] = []
    private var sequence = 0
    static let segments = ["Standard", "Premium", "VIP"]
    static let states = ["CA", "TX", "NY", "FL", "WA", "IL", "OR", "CO", "GA", "MA"]
    static let categories = ["Electronics", "Clothing", "Accessories", "Home", "Sports"]
    static let methods = ["credit_card", "debit_card", "paypal"]

    /// `prefix` makes this run's ids unique (e.g. `SYN42-1700000000000`).
    public init(catalog: Catalog, seed: UInt64, prefix: String) {
        self.catalog = catalog
        self.random = SplitMix64(seed: seed)
        self.prefix = prefix
        for product in catalog.products { onHand[product.id] = 100 }
    }

    private mutating func nextID(_ kind: String) -> String {
        counter += 1
        return "\(prefix)-\(kind)\(counter)"
    }

    private mutating func uniform() -> Double { Double(random.next() >> 11) / Double(1 << 53) }
    private mutating func chance(_ p: Double) -> Bool { uniform() < p }
    private mutating func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }
    private mutating func seconds(_ low: Double, _ high: Double) -> Int64 { Int64((low + (high - low) * uniform()) * 1_000_000) }

    /// Seconds to the next order arrival, at `ordersPerSecond` (exponential, so arrivals are Poisson).
    public mutating func interarrival(ordersPerSecond: Double) -> Double {
        -log(max(1e-12, 1 - uniform())) / ordersPerSecond
    }

    /// A catalog of its own (suppliers, products, customers) and opening stock, for an empty warehouse.
    public mutating func bootstrap(at now: Timestamp, customers: Int = 500, products: Int = 100) -> [Event] {
        var events: [Event] = []
        let time = now.description
        var suppliers: [String] = []
        for _ in 0..<10 {
            let id = nextID("S")
            suppliers.append(id)
            events.append(Event(entity: .suppliers, values: ["supplier_id": id, "name": "Supplier \(id)", "country": "US", "updated_at": time]))
        }
        for _ in 0..<products {
            let id = nextID("P")
            let price = DecimalValue(units: Int64(500 + random.next() % 20_000), scale: 2)
            let product = Product(id: id, name: "Product \(id)", category: pick(Self.categories), supplierID: pick(suppliers), price: price)
            catalog.products.append(product)
            events.append(productEvent(product, at: time))
            onHand[id] = 0
            events.append(movement(product: id, type: "receipt", quantity: 200, reference: "opening", at: time))
        }
        for _ in 0..<customers {
            let customer = Customer(id: nextID("C"), segment: pick(Self.segments), state: pick(Self.states), country: "US")
            catalog.customers.append(customer)
            events.append(customerEvent(customer, at: time))
        }
        return events
    }

    private func productEvent(_ p: Product, at time: String) -> Event {
        Event(entity: .products, values: [
            "product_id": p.id, "name": p.name, "category": p.category, "supplier_id": p.supplierID,
            "unit_price": p.price.description, "updated_at": time,
        ])
    }

    private func customerEvent(_ c: Customer, at time: String) -> Event {
        Event(entity: .customers, values: [
            "customer_id": c.id, "first_name": "Synthetic", "last_name": c.id, "state": c.state, "country": c.country,
            "segment": c.segment, "updated_at": time,
        ])
    }

    private mutating func movement(product: String, type: String, quantity: Int64, reference: String, at time: String) -> Event {
        onHand[product, default: 0] += quantity
        return Event(entity: .inventory, values: [
            "movement_id": nextID("M"), "product_id": product, "movement_type": type, "quantity": String(quantity),
            "moved_at": time, "reference": reference,
        ])
    }

    private mutating func payment(_ order: Order, status: String, amountCents: Int64, at time: String) -> Event {
        Event(entity: .payments, values: [
            "payment_id": nextID("Y"), "order_id": order.id, "method": pick(Self.methods), "amount": DecimalValue(units: amountCents, scale: 2).description,
            "currency": "USD", "status": status, "paid_at": time,
        ])
    }

    private func lineEvent(_ order: Order, _ line: Line, status: OrderStatus, at time: String) -> Event {
        Event(entity: .orders, values: [
            "order_id": order.id, "line_number": String(line.number), "customer_id": order.customerID, "product_id": line.productID,
            "quantity": String(line.quantity), "unit_price": line.price.description, "discount": line.discount.description,
            "status": status.rawValue, "order_ts": order.time.description, "updated_at": time,
        ])
    }

    private mutating func schedule(_ work: Followup, at due: Int64) {
        sequence += 1
        let item = (due: due, sequence: sequence, work: work)
        let index = queue.firstIndex { ($0.due, $0.sequence) > (due, sequence) } ?? queue.endIndex
        queue.insert(item, at: index)
    }

    /// One new order (and what comes with it) at `now`.
    public mutating func arrival(at now: Timestamp) -> [Event] {
        precondition(!catalog.isEmpty, "bootstrap or load a catalog first")
        var events: [Event] = []
        let time = now.description
        if chance(0.02) {
            let customer = Customer(id: nextID("C"), segment: pick(Self.segments), state: pick(Self.states), country: "US")
            catalog.customers.append(customer)
            events.append(customerEvent(customer, at: time))
        }
        if chance(0.005) {
            let index = Int(random.next() % UInt64(catalog.customers.count))
            catalog.customers[index].segment = pick(Self.segments.filter { $0 != catalog.customers[index].segment })
            events.append(customerEvent(catalog.customers[index], at: time))
        }
        if chance(0.01) {
            let index = Int(random.next() % UInt64(catalog.products.count))
            let factor = 0.9 + 0.2 * uniform()
            let cents = max(1, Int64((Double(catalog.products[index].price.cents) * factor).rounded()))
            catalog.products[index].price = DecimalValue(units: cents, scale: 2)
            events.append(productEvent(catalog.products[index], at: time))
        }
        let customer = pick(catalog.customers)
        var order = Order(id: nextID("O"), customerID: customer.id, time: now, lines: [])
        for number in 1...Int(1 + random.next() % 4) {
            let product = pick(catalog.products)
            let quantity = Int64(1 + random.next() % 3)
            let discount = chance(0.7) ? DecimalValue(units: 0, scale: 0) : DecimalValue(units: Int64(5 * (1 + random.next() % 3)), scale: 2)
            let net = LineAmounts(quantity: quantity, unitPrice: product.price, discount: discount).netCents
            order.lines.append(Line(number: number, productID: product.id, quantity: quantity, price: product.price, discount: discount, netCents: net))
        }
        for line in order.lines {
            events.append(lineEvent(order, line, status: .placed, at: time))
            events.append(movement(product: line.productID, type: "sale", quantity: -line.quantity, reference: order.id, at: time))
            if onHand[line.productID, default: 0] < 20 {
                events.append(movement(product: line.productID, type: "receipt", quantity: 100, reference: "restock", at: time))
            }
        }
        let total = order.lines.reduce(0) { $0 + $1.netCents }
        if chance(0.05) {
            events.append(payment(order, status: "failed", amountCents: total, at: time))
            schedule(.retryPayment(order), at: now.microseconds + seconds(1, 5))
        } else {
            events.append(payment(order, status: "captured", amountCents: total, at: time))
        }
        if chance(0.05) {
            schedule(.status(order, .cancelled), at: now.microseconds + seconds(2, 20))
        } else {
            schedule(.status(order, .shipped), at: now.microseconds + seconds(5, 30))
        }
        return events
    }

    /// The follow-ups due at or before `now`.
    public mutating func due(at now: Timestamp) -> [Event] {
        var events: [Event] = []
        while let first = queue.first, first.due <= now.microseconds {
            queue.removeFirst()
            let time = Timestamp(microseconds: max(first.due, now.microseconds - 1)).description
            switch first.work {
            case .status(let order, let status):
                for line in order.lines { events.append(lineEvent(order, line, status: status, at: time)) }
                if status == .cancelled {
                    for line in order.lines {
                        events.append(movement(product: line.productID, type: "return", quantity: line.quantity, reference: order.id, at: time))
                    }
                } else if status == .shipped {
                    schedule(.status(order, .delivered), at: now.microseconds + seconds(10, 60))
                } else if status == .delivered, chance(0.03) {
                    schedule(.returnLine(order, Int(random.next() % UInt64(order.lines.count))), at: now.microseconds + seconds(10, 60))
                }
            case .retryPayment(let order):
                events.append(payment(order, status: "captured", amountCents: order.lines.reduce(0) { $0 + $1.netCents }, at: time))
            case .returnLine(let order, let index):
                let line = order.lines[index]
                events.append(lineEvent(order, line, status: .returned, at: time))
                events.append(movement(product: line.productID, type: "return", quantity: line.quantity, reference: order.id, at: time))
                events.append(payment(order, status: "refunded", amountCents: line.netCents, at: time))
            }
        }
        return events
    }

    /// Follow-ups not yet due.
    public var scheduled: Int { queue.count }
}
