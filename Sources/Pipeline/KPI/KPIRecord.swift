public import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// How the KPI aggregator reads events from stream entries, and the compact record of each state
/// change it persists next to the stream (one hash field per natural key, or per dimension
/// version), from which it rebuilds its state after a restart.
public enum KPIRecord {
    public struct Unreadable: Error, CustomStringConvertible {
        public var description: String
    }

    /// The fields each entity's events are read by, in the order `Fields` indexes them.
    static let wanted: [Entity: [[UInt8]]] = [
        .orders: ["order_id", "line_number", "customer_id", "product_id", "quantity", "unit_price", "discount", "status",
                  "order_ts", "updated_at", EventEnvelope.eventID],
        .customers: ["customer_id", "segment", "state", "updated_at", EventEnvelope.eventID],
        .products: ["product_id", "category", "updated_at", EventEnvelope.eventID],
        .suppliers: ["supplier_id", "updated_at", EventEnvelope.eventID],
        .payments: ["payment_id", "method", "status", "amount", "paid_at", EventEnvelope.eventID],
        .inventory: ["movement_id", "product_id", "quantity", "moved_at", EventEnvelope.eventID],
    ].mapValues { $0.map { Array($0.utf8) } }

    /// The values of the wanted fields of one entry, located in one pass over its packed bytes.
    struct Fields {
        let raw: UnsafeRawBufferPointer
        let names: [[UInt8]]
        let found: UnsafeMutableBufferPointer<(offset: Int, count: Int)>

        func bytes(_ index: Int) -> UnsafeBufferPointer<UInt8>? {
            let (offset, count) = found[index]
            guard offset >= 0, count > 0 else { return nil }
            return UnsafeBufferPointer(rebasing: raw.bindMemory(to: UInt8.self)[offset..<(offset + count)])
        }

        func name(_ index: Int) -> String { String(decoding: names[index], as: UTF8.self) }

        func required(_ index: Int) throws(Unreadable) -> UnsafeBufferPointer<UInt8> {
            guard let value = bytes(index) else { throw Unreadable(description: "\(name(index)): missing from the event") }
            return value
        }

        func string(_ index: Int) throws(Unreadable) -> String { String(decoding: try required(index), as: UTF8.self) }
        func optionalString(_ index: Int) -> String? { bytes(index).map { String(decoding: $0, as: UTF8.self) } }

        func time(_ index: Int) throws(Unreadable) -> Timestamp {
            let value = try required(index)
            guard let time = Timestamp.parse(value) else {
                throw Unreadable(description: "\(name(index)): '\(String(decoding: value, as: UTF8.self))' is not a timestamp")
            }
            return time
        }

        func int(_ index: Int) throws(Unreadable) -> Int64 {
            let value = try required(index)
            guard let number = RowValidator.parseInteger(value), Int32(exactly: number) != nil else {
                throw Unreadable(description: "\(name(index)): '\(String(decoding: value, as: UTF8.self))' is not an integer")
            }
            return number
        }

        func decimal(_ index: Int) throws(Unreadable) -> DecimalValue {
            let value = try required(index)
            guard let number = DecimalValue.parse(value) else {
                throw Unreadable(description: "\(name(index)): '\(String(decoding: value, as: UTF8.self))' is not a decimal")
            }
            return number
        }
    }

    /// The event an entry of `entity`'s stream carries.
    public static func event(_ entry: StreamEntry, entity: Entity) throws(Unreadable) -> KPIState.Event {
        let names = wanted[entity]!
        let result: Result<KPIState.Event, Unreadable> = entry.packed.withUnsafeBytes { raw in
            withUnsafeTemporaryAllocation(of: (offset: Int, count: Int).self, capacity: names.count) { found in
                found.initialize(repeating: (-1, 0))
                var offset = 0, index = 0, slot = -1
                while offset < raw.count {
                    var length = 0, shift = 0
                    while true {
                        let byte = raw[offset]
                        offset += 1
                        length |= Int(byte & 0x7F) << shift
                        if byte < 0x80 { break }
                        shift += 7
                    }
                    if index % 2 == 0 {
                        slot = -1
                        for (candidate, name) in names.enumerated() where name.count == length && found[candidate].offset < 0 {
                            if name.withUnsafeBytes({ memcmp($0.baseAddress!, raw.baseAddress! + offset, length) == 0 }) {
                                slot = candidate
                                break
                            }
                        }
                    } else if slot >= 0 {
                        found[slot] = (offset, length)
                    }
                    offset += length
                    index += 1
                }
                let fields = Fields(raw: raw, names: names, found: found)
                do throws(Unreadable) {
                    return .success(try decode(fields, entity: entity))
                } catch {
                    return .failure(error)
                }
            }
        }
        return try result.get()
    }

    private static func decode(_ f: Fields, entity: Entity) throws(Unreadable) -> KPIState.Event {
        switch entity {
        case .orders:
            let statusText = try f.string(7)
            guard let status = OrderStatus(rawValue: statusText) else {
                throw Unreadable(description: "status: '\(statusText)' is not a line status")
            }
            let quantity = try f.int(4)
            let price = try f.decimal(5)
            let discount = f.bytes(6) == nil ? DecimalValue.zero : try f.decimal(6)
            return .line(KPIState.Line(
                orderID: try f.string(0), lineNumber: Int(try f.int(1)), customerID: try f.string(2), productID: try f.string(3),
                status: status, quantity: quantity,
                netCents: DecimalValue.lineNetCents(quantity: quantity, unitPrice: price, discount: discount),
                orderTime: try f.time(8), version: KPIState.Version(time: try f.time(9), eventID: try f.string(10))))
        case .customers:
            return .customer(KPIState.Customer(
                id: try f.string(0), version: KPIState.Version(time: try f.time(3), eventID: try f.string(4)),
                segment: try f.string(1), state: f.optionalString(2)))
        case .products:
            return .product(KPIState.Product(
                id: try f.string(0), version: KPIState.Version(time: try f.time(2), eventID: try f.string(3)), category: try f.string(1)))
        case .suppliers:
            return .supplier(KPIState.Supplier(id: try f.string(0), version: KPIState.Version(time: try f.time(1), eventID: try f.string(2))))
        case .payments:
            return .payment(KPIState.Payment(
                id: try f.string(0), version: KPIState.Version(time: try f.time(4), eventID: try f.string(5)),
                method: try f.string(1), status: try f.string(2), amountMicros: try f.decimal(3).rescaled(to: 6).units))
        case .inventory:
            return .movement(KPIState.Movement(
                id: try f.string(0), version: KPIState.Version(time: try f.time(3), eventID: try f.string(4)),
                productID: try f.string(1), quantity: try f.int(2)))
        }
    }

    // MARK: - Persisted records

    /// The hash field (natural key, plus the version for dimensions, whose every version is kept)
    /// and the value (everything the state needs) of an event's record.
    public static func record(_ event: KPIState.Event) -> (field: [UInt8], value: [UInt8]) {
        var field: [UInt8] = [], value: [UInt8] = []
        field.reserveCapacity(48)
        value.reserveCapacity(128)
        func put(_ text: String, _ out: inout [UInt8]) {
            var text = text
            text.withUTF8 { StreamEntry.append(UnsafeRawBufferPointer($0), to: &out) }
        }
        func put(_ number: Int64, _ out: inout [UInt8]) {
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { buffer in
                var magnitude = number.magnitude, end = 24
                repeat {
                    end -= 1
                    buffer[end] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                    magnitude /= 10
                } while magnitude > 0
                if number < 0 { end -= 1; buffer[end] = UInt8(ascii: "-") }
                StreamEntry.append(UnsafeRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[end..<24]), to: &out)
            }
        }
        func version(_ v: KPIState.Version, _ out: inout [UInt8]) {
            put(v.time.microseconds, &out)
            put(v.eventID, &out)
        }
        switch event {
        case .line(let e):
            put(e.orderID, &field); put(Int64(e.lineNumber), &field)
            put("L", &value); put(e.orderID, &value); put(Int64(e.lineNumber), &value); put(e.customerID, &value)
            put(e.productID, &value); put(e.status.rawValue, &value); put(e.quantity, &value); put(e.netCents, &value)
            put(e.orderTime.microseconds, &value); version(e.version, &value)
        case .customer(let e):
            put(e.id, &field); version(e.version, &field)
            put("C", &value); put(e.id, &value); put(e.segment, &value); put(e.state ?? "", &value); put(e.state == nil ? "0" : "1", &value)
            version(e.version, &value)
        case .product(let e):
            put(e.id, &field); version(e.version, &field)
            put("P", &value); put(e.id, &value); put(e.category, &value); version(e.version, &value)
        case .supplier(let e):
            put(e.id, &field)
            put("S", &value); put(e.id, &value); version(e.version, &value)
        case .payment(let e):
            put(e.id, &field)
            put("Y", &value); put(e.id, &value); put(e.method, &value); put(e.status, &value); put(e.amountMicros, &value)
            version(e.version, &value)
        case .movement(let e):
            put(e.id, &field)
            put("M", &value); put(e.id, &value); put(e.productID, &value); put(e.quantity, &value); version(e.version, &value)
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
