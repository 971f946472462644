import RedisClient
public import Contract
import KPIModel
import StreamRuntime
public import RedisWire
import PostgresClient

/// One batch of events for the loader, typed and reduced: per natural key only the latest version
/// (by version time, then event id) of each fact, every distinct version of each SCD2 dimension.
/// Pure: no I/O, so its rules are unit-tested without servers.
public struct LoaderBatch: Sendable {
    public struct Customer: Sendable, Equatable {
        public var id: String, versionTime: String, eventID: String
        public var firstName: String?, lastName: String?, email: String?, city: String?, state: String?
        public var country: String, segment: String, signupDate: String?
    }
    public struct Product: Sendable, Equatable {
        public var id: String, versionTime: String, eventID: String
        public var name: String, category: String, supplierID: String?, unitPrice: String, unitCost: String?
    }
    public struct Supplier: Sendable, Equatable {
        public var id: String, name: String, country: String?, contactEmail: String?, contractStart: String?, contractEnd: String?
        public var leadTimeDays: String?, rating: String?, updatedAt: String, eventID: String
    }
    public struct Sale: Sendable, Equatable {
        public var orderID: String, lineNumber: String, customerID: String, productID: String, quantity: String
        public var unitPrice: String, discount: String, status: String, orderTS: String, updatedAt: String, eventID: String
    }
    public struct Payment: Sendable, Equatable {
        public var id: String, orderID: String, method: String, processor: String?, amount: String, currency: String
        public var status: String, paidAt: String, eventID: String
    }
    public struct Movement: Sendable, Equatable {
        public var id: String, productID: String, type: String, quantity: String, unitCost: String?, movedAt: String
        public var reference: String?, eventID: String
    }

    public var customers: [Customer] = []
    public var products: [Product] = []
    public var suppliers: [Supplier] = []
    public var sales: [Sale] = []
    public var payments: [Payment] = []
    public var movements: [Movement] = []
    /// Entries that could not be read as events, with the reason.
    public var rejects: [(stream: String, entry: StreamEntry, reason: String)] = []
    /// The highest entry id seen per stream.
    public var positions: [String: StreamID] = [:]
    /// Entries in the batch.
    public var entries = 0

    public init() {}

    /// Types and reduces `reads`.
    public init(_ reads: [StreamRead], layout: StreamLayout) {
        var sales: [String: Sale] = [:]
        var payments: [String: Payment] = [:]
        var movements: [String: Movement] = [:]
        var suppliers: [String: Supplier] = [:]
        var customers: [String: Customer] = [:]
        var products: [String: Product] = [:]
        for read in reads {
            guard let (entity, _) = layout.parse(streamKey: read.key) else { continue }
            for entry in read.entries {
                entries += 1
                if let last = positions[read.key] { if entry.id > last { positions[read.key] = entry.id } } else { positions[read.key] = entry.id }
                let event = EventFields(entry)
                do {
                    switch entity {
                    case .customers:
                        let c = Customer(
                            id: try event.required("customer_id"), versionTime: try event.timestamp("updated_at"),
                            eventID: try event.required("event_id"), firstName: event.optional("first_name"),
                            lastName: event.optional("last_name"), email: event.optional("email"), city: event.optional("city"),
                            state: event.optional("state"), country: try event.required("country"),
                            segment: try event.required("segment"), signupDate: event.optional("signup_date"))
                        customers[c.id + "\u{1F}" + c.versionTime + "\u{1F}" + c.eventID] = c
                    case .products:
                        let p = Product(
                            id: try event.required("product_id"), versionTime: try event.timestamp("updated_at"),
                            eventID: try event.required("event_id"), name: try event.required("name"),
                            category: try event.required("category"), supplierID: event.optional("supplier_id"),
                            unitPrice: try event.decimal("unit_price"), unitCost: event.optional("unit_cost"))
                        products[p.id + "\u{1F}" + p.versionTime + "\u{1F}" + p.eventID] = p
                    case .suppliers:
                        let s = Supplier(
                            id: try event.required("supplier_id"), name: try event.required("name"), country: event.optional("country"),
                            contactEmail: event.optional("contact_email"), contractStart: event.optional("contract_start"),
                            contractEnd: event.optional("contract_end"), leadTimeDays: event.optional("lead_time_days"),
                            rating: event.optional("rating"), updatedAt: try event.timestamp("updated_at"),
                            eventID: try event.required("event_id"))
                        if Self.newer(s.updatedAt, s.eventID, than: suppliers[s.id].map { ($0.updatedAt, $0.eventID) }) { suppliers[s.id] = s }
                    case .orders:
                        let s = Sale(
                            orderID: try event.required("order_id"), lineNumber: try event.integer("line_number"),
                            customerID: try event.required("customer_id"), productID: try event.required("product_id"),
                            quantity: try event.integer("quantity"), unitPrice: try event.decimal("unit_price"),
                            discount: event.optional("discount") ?? "0", status: try event.required("status"),
                            orderTS: try event.timestamp("order_ts"), updatedAt: try event.timestamp("updated_at"),
                            eventID: try event.required("event_id"))
                        let key = s.orderID + "\u{1F}" + s.lineNumber
                        if Self.newer(s.updatedAt, s.eventID, than: sales[key].map { ($0.updatedAt, $0.eventID) }) { sales[key] = s }
                    case .payments:
                        let p = Payment(
                            id: try event.required("payment_id"), orderID: try event.required("order_id"),
                            method: try event.required("method"), processor: event.optional("processor"),
                            amount: try event.decimal("amount"), currency: try event.required("currency"),
                            status: try event.required("status"), paidAt: try event.timestamp("paid_at"),
                            eventID: try event.required("event_id"))
                        if Self.newer(p.paidAt, p.eventID, than: payments[p.id].map { ($0.paidAt, $0.eventID) }) { payments[p.id] = p }
                    case .inventory:
                        let m = Movement(
                            id: try event.required("movement_id"), productID: try event.required("product_id"),
                            type: try event.required("movement_type"), quantity: try event.integer("quantity"),
                            unitCost: event.optional("unit_cost"), movedAt: try event.timestamp("moved_at"),
                            reference: event.optional("reference"), eventID: try event.required("event_id"))
                        if Self.newer(m.movedAt, m.eventID, than: movements[m.id].map { ($0.movedAt, $0.eventID) }) { movements[m.id] = m }
                    }
                } catch let error as EventFields.Missing {
                    rejects.append((read.key, entry, error.reason))
                } catch {
                    rejects.append((read.key, entry, "\(error)"))
                }
            }
        }
        self.customers = customers.values.sorted { ($0.id, $0.versionTime, $0.eventID) < ($1.id, $1.versionTime, $1.eventID) }
        self.products = products.values.sorted { ($0.id, $0.versionTime, $0.eventID) < ($1.id, $1.versionTime, $1.eventID) }
        self.suppliers = suppliers.values.sorted { $0.id < $1.id }
        self.sales = sales.values.sorted { ($0.orderID, $0.lineNumber) < ($1.orderID, $1.lineNumber) }
        self.payments = payments.values.sorted { $0.id < $1.id }
        self.movements = movements.values.sorted { $0.id < $1.id }
    }

    /// The natural keys this batch must hold while it loads, sorted, each with its mode: exclusive
    /// for a customer or product whose versions it adds (it rebuilds that key's SCD2 history and
    /// re-points its facts), shared for one its facts only reference (it resolves their surrogate
    /// keys, or adds an inferred member). Customers are `c:ID`, products `p:ID`.
    public var naturalKeyLocks: (keys: [String], exclusive: [Bool]) {
        var modes: [String: Bool] = [:]
        for c in customers { modes["c:" + c.id] = true }
        for p in products { modes["p:" + p.id] = true }
        for s in sales {
            if modes["c:" + s.customerID] == nil { modes["c:" + s.customerID] = false }
            if modes["p:" + s.productID] == nil { modes["p:" + s.productID] = false }
        }
        for m in movements where modes["p:" + m.productID] == nil { modes["p:" + m.productID] = false }
        let keys = modes.keys.sorted()
        return (keys, keys.map { modes[$0]! })
    }

    /// True when version (time, id) is newer than `other` (the contract's `Version` order).
    static func newer(_ time: String, _ id: String, than other: (String, String)?) -> Bool {
        guard let other else { return true }
        return Version(time: Timestamp(iso8601: other.0)!, eventID: other.1) < Version(time: Timestamp(iso8601: time)!, eventID: id)
    }
}

/// Reads an event's fields by name, checking what the loader relies on.
struct EventFields {
    struct Missing: Error { var reason: String }
    let entry: StreamEntry

    init(_ entry: StreamEntry) { self.entry = entry }

    /// The value of field `name` (a scan of the entry's packed fields, comparing bytes).
    func value(_ name: String) -> String? { entry[name] }

    func optional(_ name: String) -> String? {
        guard let value = value(name), !value.isEmpty else { return nil }
        return value
    }

    func required(_ name: String) throws -> String {
        guard let value = optional(name) else { throw Missing(reason: "\(name): missing from the event") }
        return value
    }

    func timestamp(_ name: String) throws -> String {
        let value = try required(name)
        guard Timestamp(iso8601: value) != nil else { throw Missing(reason: "\(name): '\(value)' is not a timestamp") }
        return value
    }

    func integer(_ name: String) throws -> String {
        let value = try required(name)
        guard Int32(value) != nil else { throw Missing(reason: "\(name): '\(value)' is not an integer") }
        return value
    }

    func decimal(_ name: String) throws -> String {
        let value = try required(name)
        guard DecimalValue(value) != nil else { throw Missing(reason: "\(name): '\(value)' is not a decimal") }
        return value
    }
}
