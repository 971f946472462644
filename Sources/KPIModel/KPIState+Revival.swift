public import Contract
/// Revival: a change to a retired record, however late, is applied exactly. The aggregator asks
/// the state which archived records a batch may change (`recall`), reads them from the archive in
/// Redis (flushing the commit in flight first, so it reads what committed), revives them
/// (`revive`: held again, moved from the archive back to the state hash in the batch's atomic
/// commit: the archive's HDEL and the records' HSET), and only then applies the batch.
///
/// What a batch may change:
/// - an order line, payment or movement whose key is not held and which the origin's
///   `RetiredKeys` filter may hold (a "no" is certain, so a key it does not hold is new);
/// - the retired revenue lines of a customer or product that gets a version it did not have: the
///   lines with an order time at or after the version's time, or every one when the version is
///   (or ties) the earliest, since before the first version the earliest one is valid
///   (`ValidAt`). Reviving more than the version re-attributes is harmless.
///
/// Nothing in the figures moves when a record is revived (its contribution never left them);
/// only what is held, and where Redis keeps it: a rebuild counts a record once, either held (the
/// state hash) or archived (folded in by `absorbArchive`).
extension KPIState {
    /// What a batch may change that only the archive holds.
    public struct Recall: Sendable, Equatable {
        /// Per origin, the ids of orders, payments and movements to read from its archive.
        public var orders: [Int32: Set<String>] = [:]
        public var payments: [Int32: Set<String>] = [:]
        public var movements: [Int32: Set<String>] = [:]
        /// Customers and products whose retired lines from this order time on (microseconds;
        /// `Int64.min`: all) to look up in their index.
        public var customers: [String: Int64] = [:]
        public var products: [String: Int64] = [:]
        public init() {}
        public var isEmpty: Bool {
            orders.isEmpty && payments.isEmpty && movements.isEmpty && customers.isEmpty && products.isEmpty
        }
    }

    /// True once anything retired (until then there is nothing to recall).
    public var hasRetired: Bool { !retiredKeys.isEmpty }

    /// What applying `events` (each with its origin) may change that only the archive holds.
    public func recall(_ events: some Sequence<(event: Event, origin: Int32)>) -> Recall {
        var recall = Recall()
        guard hasRetired else { return recall }
        // Every retired line's order time is before its stream's horizon (horizons only rise), so
        // a version dated at or after every horizon re-attributes none: no read. In time order
        // (a replay, a live load) that is every version.
        let latestHorizon = horizon.values.max() ?? .min
        for (event, origin) in events {
            switch event {
            case .line(let line):
                guard linesOfOrder[line.orderID] == nil, retiredKeys[origin]?.mayContain(line.orderID) == true else { continue }
                recall.orders[origin, default: []].insert(line.orderID)
            case .payment(let payment):
                guard payments[payment.id] == nil, retiredKeys[origin]?.mayContain(payment.id) == true else { continue }
                recall.payments[origin, default: []].insert(payment.id)
            case .movement(let movement):
                guard movements[movement.id] == nil, retiredKeys[origin]?.mayContain(movement.id) == true else { continue }
                recall.movements[origin, default: []].insert(movement.id)
            case .customer(let customer):
                guard retiredOfCustomer[customer.id] != nil else { continue }
                let versions = customers[customer.id] ?? []
                guard !versions.contains(where: { $0.version == customer.version }) else { continue }
                let from = Self.reattributedFrom(customer.version, earliest: versions.first?.version)
                guard from < latestHorizon else { continue }
                recall.customers[customer.id] = min(recall.customers[customer.id] ?? .max, from)
            case .product(let product):
                guard retiredOfProduct[product.id] != nil else { continue }
                let versions = products[product.id] ?? []
                guard !versions.contains(where: { $0.version == product.version }) else { continue }
                let from = Self.reattributedFrom(product.version, earliest: versions.first?.version)
                guard from < latestHorizon else { continue }
                recall.products[product.id] = min(recall.products[product.id] ?? .max, from)
            case .supplier:
                continue
            }
        }
        return recall
    }

    /// The first order time a new version may re-attribute: its own time, or every time when it
    /// is not after the earliest version (the earliest is valid before any version, `ValidAt`).
    static func reattributedFrom(_ version: Version, earliest: Version?) -> Int64 {
        guard let earliest, version.time > earliest.time else { return .min }
        return version.time.microseconds
    }

    /// Holds a retired order again, as it was held when it retired (its lines, the attribution
    /// each was counted under, the customer's current segment for the as-is view). False when
    /// the order is held already (nothing changes).
    public mutating func revive(orderID: String, lines archived: [(line: Line, attribution: Attribution)], origin: Int32) -> Bool {
        guard linesOfOrder[orderID] == nil, !archived.isEmpty else { return false }
        for (line, counted) in archived {
            var attribution = counted
            attribution.segmentNow = customers[line.customerID]?.last?.segment ?? Attribution.unknownName
            let key = LineKey(orderID: orderID, lineNumber: line.lineNumber)
            lines.insert(Applied(line: line, attribution: attribution, origin: origin), for: key)
            linesOfCustomer[line.customerID, default: []].append(key)
            linesOfProduct[line.productID, default: []].append(key)
            guard line.status.countsAsRevenue else { continue }
            revenueLinesOfOrder[OrderAt(orderID: orderID, time: line.orderTime.microseconds), default: 0] += 1
            let money = Money(amount: -line.netCents, count: -1)
            Self.add(&retiredOfCustomer, line.customerID, money)
            Self.add(&retiredOfProduct, line.productID, money)
        }
        linesOfOrder[orderID] = archived.count
        return true
    }

    /// Holds a retired payment again; false when it is held already.
    public mutating func revive(payment: Payment, origin: Int32) -> Bool {
        guard payments[payment.id] == nil else { return false }
        payments[payment.id] = Held(value: payment, origin: origin)
        return true
    }

    /// Holds a retired movement again; as `revive(payment:origin:)`.
    public mutating func revive(movement: Movement, origin: Int32) -> Bool {
        guard movements[movement.id] == nil else { return false }
        movements[movement.id] = Held(value: movement, origin: origin)
        return true
    }

    /// What an archive holds under a key.
    public enum ArchivedKind: Sendable { case order, payment, movement }

    /// What reviving some of one origin's archived records takes out of Redis and puts back.
    public struct Revived: Sendable {
        /// The archive fields revived (HDEL), and the records held again (HSET in the state hash).
        public var archiveFields: [[UInt8]] = []
        public var records: [(field: [UInt8], value: [UInt8])] = []
    }

    /// Revives what `values` (the archive's values of `ids`, nil for a key it does not hold: the
    /// filter's false positive, or a record revived since) holds. Throws, naming the key, for a
    /// value no retirement wrote.
    public mutating func revive(_ kind: ArchivedKind, ids: [String], values: [[UInt8]?], origin: Int32) throws(KPIRecord.Unreadable) -> Revived {
        var revived = Revived()
        for (id, value) in zip(ids, values) {
            guard let value else { continue }
            let field = KPIRecord.keyField(id)
            let taken: Bool
            switch kind {
            case .order:
                guard let lines = KPIRecord.decodeArchivedOrder(orderID: id, value: value) else {
                    throw KPIRecord.Unreadable(description: "the archive's order \(id) is not an archived order")
                }
                taken = revive(orderID: id, lines: lines, origin: origin)
                if taken { revived.records += lines.map { KPIRecord.record(.line($0.line)) } }
            case .payment, .movement:
                switch (kind, KPIRecord.decode(field: field, value: value)) {
                case (.payment, .payment(let payment)?): taken = revive(payment: payment, origin: origin)
                case (.movement, .movement(let movement)?): taken = revive(movement: movement, origin: origin)
                default: throw KPIRecord.Unreadable(description: "the archive's record \(id) is not an archived \(kind)")
                }
                if taken { revived.records.append((field, value)) }
            }
            guard taken else { continue }
            revived.archiveFields.append(field)
        }
        return revived
    }

    /// Inserts a rebuild's persisted key hashes (`RetiredKeys.pack`) of `origin`'s archive.
    public mutating func absorbRetiredKeys(origin: Int32, packed: [UInt8]) {
        guard !packed.isEmpty else { return }
        retiredKeys[origin, default: RetiredKeys()].insert(packed: packed)
    }
}
