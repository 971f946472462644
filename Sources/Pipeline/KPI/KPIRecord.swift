public import RedisClient

/// How the KPI aggregator reads events from stream entries, and the compact record of each state
/// change it persists next to the stream (one hash field per natural key, or per dimension
/// version), from which it rebuilds its state after a restart.
public enum KPIRecord {
    public struct Unreadable: Error, CustomStringConvertible {
        public var description: String
    }

    /// The event an entry of `entity`'s stream carries.
    public static func event(_ entry: StreamEntry, entity: Entity) throws(Unreadable) -> KPIState.Event {
        let fields = EventFields(entry)
        do {
            let eventID = try fields.required(EventEnvelope.eventID)
            switch entity {
            case .orders:
                guard let status = OrderStatus(rawValue: try fields.required("status")) else {
                    throw Unreadable(description: "status: '\(fields.value("status") ?? "")' is not a line status")
                }
                let quantity = try int(fields, "quantity")
                let price = try decimal(fields, "unit_price")
                let discount = fields.optional("discount").flatMap(DecimalValue.init) ?? DecimalValue(units: 0, scale: 0)
                return .line(KPIState.Line(
                    orderID: try fields.required("order_id"), lineNumber: Int(try int(fields, "line_number")),
                    customerID: try fields.required("customer_id"), productID: try fields.required("product_id"), status: status,
                    quantity: quantity, netCents: DecimalValue.lineNetCents(quantity: quantity, unitPrice: price, discount: discount),
                    orderTime: try time(fields, "order_ts"),
                    version: KPIState.Version(time: try time(fields, "updated_at"), eventID: eventID)))
            case .customers:
                return .customer(KPIState.Customer(
                    id: try fields.required("customer_id"),
                    version: KPIState.Version(time: try time(fields, "updated_at"), eventID: eventID),
                    segment: try fields.required("segment"), state: fields.optional("state")))
            case .products:
                return .product(KPIState.Product(
                    id: try fields.required("product_id"),
                    version: KPIState.Version(time: try time(fields, "updated_at"), eventID: eventID),
                    category: try fields.required("category")))
            case .suppliers:
                return .supplier(KPIState.Supplier(
                    id: try fields.required("supplier_id"),
                    version: KPIState.Version(time: try time(fields, "updated_at"), eventID: eventID)))
            case .payments:
                return .payment(KPIState.Payment(
                    id: try fields.required("payment_id"),
                    version: KPIState.Version(time: try time(fields, "paid_at"), eventID: eventID),
                    method: try fields.required("method"), status: try fields.required("status"),
                    amountMicros: try decimal(fields, "amount").rescaled(to: 6).units))
            case .inventory:
                return .movement(KPIState.Movement(
                    id: try fields.required("movement_id"),
                    version: KPIState.Version(time: try time(fields, "moved_at"), eventID: eventID),
                    productID: try fields.required("product_id"), quantity: try int(fields, "quantity")))
            }
        } catch let error as EventFields.Missing {
            throw Unreadable(description: error.reason)
        } catch let error as Unreadable {
            throw error
        } catch {
            throw Unreadable(description: "\(error)")
        }
    }

    private static func time(_ fields: EventFields, _ name: String) throws -> Timestamp {
        let text = try fields.required(name)
        guard let value = Timestamp(iso8601: text) else { throw Unreadable(description: "\(name): '\(text)' is not a timestamp") }
        return value
    }

    private static func int(_ fields: EventFields, _ name: String) throws -> Int64 {
        let text = try fields.required(name)
        guard let value = Int64(text), Int32(exactly: value) != nil else { throw Unreadable(description: "\(name): '\(text)' is not an integer") }
        return value
    }

    private static func decimal(_ fields: EventFields, _ name: String) throws -> DecimalValue {
        let text = try fields.required(name)
        guard let value = DecimalValue(text) else { throw Unreadable(description: "\(name): '\(text)' is not a decimal") }
        return value
    }

    // MARK: - Persisted records

    /// The hash field (natural key, plus the version for dimensions, whose every version is kept)
    /// and the value (everything the state needs) of an event's record.
    public static func record(_ event: KPIState.Event) -> (field: [UInt8], value: [UInt8]) {
        var field: [UInt8] = [], value: [UInt8] = []
        func version(_ v: KPIState.Version) -> [String] { [String(v.time.microseconds), v.eventID] }
        switch event {
        case .line(let e):
            EventEncoder.pack([e.orderID, String(e.lineNumber)], into: &field)
            EventEncoder.pack(
                ["L", e.orderID, String(e.lineNumber), e.customerID, e.productID, e.status.rawValue, String(e.quantity),
                 String(e.netCents), String(e.orderTime.microseconds)] + version(e.version), into: &value)
        case .customer(let e):
            EventEncoder.pack([e.id] + version(e.version), into: &field)
            EventEncoder.pack(["C", e.id, e.segment, e.state ?? "", e.state == nil ? "0" : "1"] + version(e.version), into: &value)
        case .product(let e):
            EventEncoder.pack([e.id] + version(e.version), into: &field)
            EventEncoder.pack(["P", e.id, e.category] + version(e.version), into: &value)
        case .supplier(let e):
            EventEncoder.pack([e.id], into: &field)
            EventEncoder.pack(["S", e.id] + version(e.version), into: &value)
        case .payment(let e):
            EventEncoder.pack([e.id], into: &field)
            EventEncoder.pack(["Y", e.id, e.method, e.status, String(e.amountMicros)] + version(e.version), into: &value)
        case .movement(let e):
            EventEncoder.pack([e.id], into: &field)
            EventEncoder.pack(["M", e.id, e.productID, String(e.quantity)] + version(e.version), into: &value)
        }
        return (field, value)
    }

    /// The event a persisted record holds; nil for bytes this version did not write.
    public static func decode(_ value: [UInt8]) -> KPIState.Event? {
        let v = value.withUnsafeBytes { EventEncoder.unpack($0) }
        guard let kind = v.first, v.count >= 3 else { return nil }
        func version(_ at: Int) -> KPIState.Version? {
            guard at + 1 < v.count, let us = Int64(v[at]) else { return nil }
            return KPIState.Version(time: Timestamp(microseconds: us), eventID: v[at + 1])
        }
        switch kind {
        case "L":
            guard v.count == 11, let line = Int(v[2]), let status = OrderStatus(rawValue: v[5]), let quantity = Int64(v[6]),
                  let net = Int64(v[7]), let orderTime = Int64(v[8]), let version = version(9) else { return nil }
            return .line(KPIState.Line(
                orderID: v[1], lineNumber: line, customerID: v[3], productID: v[4], status: status, quantity: quantity,
                netCents: net, orderTime: Timestamp(microseconds: orderTime), version: version))
        case "C":
            guard v.count == 7, let version = version(5) else { return nil }
            return .customer(KPIState.Customer(id: v[1], version: version, segment: v[2], state: v[4] == "1" ? v[3] : nil))
        case "P":
            guard v.count == 5, let version = version(3) else { return nil }
            return .product(KPIState.Product(id: v[1], version: version, category: v[2]))
        case "S":
            guard v.count == 4, let version = version(2) else { return nil }
            return .supplier(KPIState.Supplier(id: v[1], version: version))
        case "Y":
            guard v.count == 7, let amount = Int64(v[4]), let version = version(5) else { return nil }
            return .payment(KPIState.Payment(id: v[1], version: version, method: v[2], status: v[3], amountMicros: amount))
        case "M":
            guard v.count == 6, let quantity = Int64(v[3]), let version = version(4) else { return nil }
            return .movement(KPIState.Movement(id: v[1], version: version, productID: v[2], quantity: quantity))
        default:
            return nil
        }
    }
}
