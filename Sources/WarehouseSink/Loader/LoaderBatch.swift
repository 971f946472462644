public import Contract
public import RedisWire

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
                do throws(EventDecoder.Unreadable) {
                    try EventDecoder.withFields(entry, entity: entity) { f throws(EventDecoder.Unreadable) in
                        switch entity {
                        case .customers:
                            typealias C = Columns.Customer
                            let c = Customer(
                                id: f.string(C.customerID), versionTime: f.string(C.updatedAt), eventID: f.eventID,
                                firstName: f.text(C.firstName), lastName: f.text(C.lastName), email: f.text(C.email), city: f.text(C.city),
                                state: f.text(C.state), country: f.string(C.country), segment: f.string(C.segment),
                                signupDate: f.text(C.signupDate))
                            customers[c.id + "\u{1F}" + c.versionTime + "\u{1F}" + c.eventID] = c
                        case .products:
                            typealias C = Columns.Product
                            let p = Product(
                                id: f.string(C.productID), versionTime: f.string(C.updatedAt), eventID: f.eventID, name: f.string(C.name),
                                category: f.string(C.category), supplierID: f.text(C.supplierID), unitPrice: f.string(C.unitPrice),
                                unitCost: f.text(C.unitCost))
                            products[p.id + "\u{1F}" + p.versionTime + "\u{1F}" + p.eventID] = p
                        case .suppliers:
                            typealias C = Columns.Supplier
                            let s = Supplier(
                                id: f.string(C.supplierID), name: f.string(C.name), country: f.text(C.country),
                                contactEmail: f.text(C.contactEmail), contractStart: f.text(C.contractStart),
                                contractEnd: f.text(C.contractEnd), leadTimeDays: f.text(C.leadTimeDays), rating: f.text(C.rating),
                                updatedAt: f.string(C.updatedAt), eventID: f.eventID)
                            if Self.newer(s.updatedAt, s.eventID, than: suppliers[s.id].map { ($0.updatedAt, $0.eventID) }) { suppliers[s.id] = s }
                        case .orders:
                            typealias C = Columns.OrderLine
                            let s = Sale(
                                orderID: f.string(C.orderID), lineNumber: f.string(C.lineNumber), customerID: f.string(C.customerID),
                                productID: f.string(C.productID), quantity: f.string(C.quantity), unitPrice: f.string(C.unitPrice),
                                discount: f.text(C.discount) ?? "0", status: f.status.rawValue, orderTS: f.string(C.orderTS),
                                updatedAt: f.string(C.updatedAt), eventID: f.eventID)
                            let key = s.orderID + "\u{1F}" + s.lineNumber
                            if Self.newer(s.updatedAt, s.eventID, than: sales[key].map { ($0.updatedAt, $0.eventID) }) { sales[key] = s }
                        case .payments:
                            typealias C = Columns.Payment
                            let p = Payment(
                                id: f.string(C.paymentID), orderID: f.string(C.orderID), method: f.string(C.method),
                                processor: f.text(C.processor), amount: f.string(C.amount), currency: f.string(C.currency),
                                status: f.string(C.status), paidAt: f.string(C.paidAt), eventID: f.eventID)
                            if Self.newer(p.paidAt, p.eventID, than: payments[p.id].map { ($0.paidAt, $0.eventID) }) { payments[p.id] = p }
                        case .inventory:
                            typealias C = Columns.Movement
                            let m = Movement(
                                id: f.string(C.movementID), productID: f.string(C.productID), type: f.string(C.movementType),
                                quantity: f.string(C.quantity), unitCost: f.text(C.unitCost), movedAt: f.string(C.movedAt),
                                reference: f.text(C.reference), eventID: f.eventID)
                            if Self.newer(m.movedAt, m.eventID, than: movements[m.id].map { ($0.movedAt, $0.eventID) }) { movements[m.id] = m }
                        }
                    }
                } catch {
                    rejects.append((read.key, entry, error.description))
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
