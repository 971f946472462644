public import RedisWire
#if canImport(Glibc)
import Glibc
#endif
public import Contract

/// How the KPI aggregator reads events from stream entries, and the compact record of each state
/// change it persists next to the stream (one hash field per natural key, or per dimension
/// version), from which it rebuilds its state after a restart.
public enum KPIRecord {
    /// An entry that is not an event (the contract's one decoder, `EventDecoder`, says why).
    public typealias Unreadable = EventDecoder.Unreadable

    /// The event an entry of `entity`'s stream carries, read by the contract's one decoder.
    public static func event(_ entry: StreamEntry, entity: Entity) throws(Unreadable) -> KPIState.Event {
        try EventDecoder.withFields(entry, entity: entity) { (f: EventFields) throws(Unreadable) -> KPIState.Event in
            switch entity {
            case .orders:
                typealias C = Columns.OrderLine
                let quantity = f.int(C.quantity)
                return .line(KPIState.Line(
                    orderID: f.string(C.orderID), lineNumber: Int(f.int(C.lineNumber)), customerID: f.string(C.customerID),
                    productID: f.string(C.productID), status: f.status, quantity: quantity,
                    netCents: LineAmounts(quantity: quantity, unitPrice: f.decimal(C.unitPrice), discount: f.decimal(C.discount)).netCents,
                    orderTime: f.time(C.orderTS), version: f.version(C.updatedAt)))
            case .customers:
                typealias C = Columns.Customer
                return .customer(KPIState.Customer(
                    id: f.string(C.customerID), version: f.version(C.updatedAt), segment: f.string(C.segment), state: f.text(C.state)))
            case .products:
                typealias C = Columns.Product
                return .product(KPIState.Product(id: f.string(C.productID), version: f.version(C.updatedAt), category: f.string(C.category)))
            case .suppliers:
                typealias C = Columns.Supplier
                return .supplier(KPIState.Supplier(id: f.string(C.supplierID), version: f.version(C.updatedAt)))
            case .payments:
                typealias C = Columns.Payment
                return .payment(KPIState.Payment(
                    id: f.string(C.paymentID), version: f.version(C.paidAt), method: f.string(C.method), status: f.string(C.status),
                    amountMicros: f.decimal(C.amount).rescaled(to: 6).units))
            case .inventory:
                typealias C = Columns.Movement
                return .movement(KPIState.Movement(
                    id: f.string(C.movementID), version: f.version(C.movedAt), productID: f.string(C.productID), quantity: f.int(C.quantity)))
            }
        }
    }

    // MARK: - Persisted records

    /// The hash field (natural key, plus the version for dimensions, whose every version is kept)
    /// and the value of an event's record. The value is compact: the kind (a lowercase letter),
    /// then what the state needs beyond the field's key — strings with a LEB128 length, numbers
    /// as zigzag LEB128, times in microseconds, event ids of 32 hex digits as their 16 bytes.
    public static func record(_ event: KPIState.Event) -> (field: [UInt8], value: [UInt8]) {
        var field = Writer(capacity: 40), value = Writer(capacity: 96)
        switch event {
        case .line(let e):
            field.string(e.orderID); field.string(String(e.lineNumber))
            value.kind("l"); value.string(e.customerID); value.string(e.productID)
            value.byte(UInt8(OrderStatus.allCases.firstIndex(of: e.status)!)); value.int(e.quantity); value.int(e.netCents)
            value.int(e.orderTime.microseconds); value.version(e.version)
        case .customer(let e):
            field.string(e.id); field.string(String(e.version.time.microseconds)); field.string(e.version.eventID)
            value.kind("c"); value.string(e.segment); value.byte(e.state == nil ? 0 : 1); value.string(e.state ?? ""); value.version(e.version)
        case .product(let e):
            field.string(e.id); field.string(String(e.version.time.microseconds)); field.string(e.version.eventID)
            value.kind("p"); value.string(e.category); value.version(e.version)
        case .supplier(let e):
            field.string(e.id)
            value.kind("s"); value.version(e.version)
        case .payment(let e):
            field.string(e.id)
            value.kind("y"); value.string(e.method); value.string(e.status); value.int(e.amountMicros); value.version(e.version)
        case .movement(let e):
            field.string(e.id)
            value.kind("m"); value.string(e.productID); value.int(e.quantity); value.version(e.version)
        }
        return (field.bytes, value.bytes)
    }

    /// The hash field of an order line's record.
    public static func lineField(orderID: String, lineNumber: Int) -> [UInt8] {
        var field = Writer(capacity: 40)
        field.string(orderID); field.string(String(lineNumber))
        return field.bytes
    }

    /// The hash field of a payment's, movement's or supplier's record.
    public static func keyField(_ id: String) -> [UInt8] {
        var field = Writer(capacity: 24)
        field.string(id)
        return field.bytes
    }

    struct Writer {
        var bytes: [UInt8] = []
        init(capacity: Int) { bytes.reserveCapacity(capacity) }
        mutating func kind(_ letter: Unicode.Scalar) { bytes.append(UInt8(letter.value)) }
        mutating func byte(_ value: UInt8) { bytes.append(value) }
        mutating func string(_ text: String) {
            var text = text
            text.withUTF8 { StreamEntry.append(UnsafeRawBufferPointer($0), to: &bytes) }
        }
        mutating func int(_ value: Int64) {
            var zigzag = UInt64(bitPattern: (value << 1) ^ (value >> 63))
            while zigzag >= 0x80 {
                bytes.append(UInt8(zigzag & 0x7F) | 0x80)
                zigzag >>= 7
            }
            bytes.append(UInt8(zigzag))
        }
        mutating func version(_ v: KPIState.Version) {
            int(v.time.microseconds)
            if let id = v.id {
                // The common case (every id this project makes): the 16 bytes, no text made.
                bytes.append(1)
                for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: id.high >> UInt64(shift))) }
                for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: id.low >> UInt64(shift))) }
                return
            }
            // Any other id is kept as its text (it is not 32 lowercase hex digits).
            bytes.append(0)
            string(v.eventID)
        }
    }

    struct Reader {
        let bytes: [UInt8]
        var offset = 0
        init(_ bytes: [UInt8], from offset: Int = 0) {
            self.bytes = bytes
            self.offset = offset
        }
        var atEnd: Bool { offset == bytes.count }
        mutating func byte() -> UInt8? {
            guard offset < bytes.count else { return nil }
            defer { offset += 1 }
            return bytes[offset]
        }
        mutating func varint() -> UInt64? {
            var value: UInt64 = 0, shift: UInt64 = 0
            while let b = byte() {
                value |= UInt64(b & 0x7F) << shift
                if b < 0x80 { return value }
                shift += 7
                if shift > 63 { return nil }
            }
            return nil
        }
        mutating func int() -> Int64? {
            guard let z = varint() else { return nil }
            return Int64(bitPattern: z >> 1) ^ -Int64(bitPattern: z & 1)
        }
        mutating func string() -> String? {
            // Compared unsigned: a damaged length near 2^64 must not trap converting to Int.
            guard let length = varint(), length <= UInt64(bytes.count - offset) else { return nil }
            defer { offset += Int(length) }
            return String(decoding: bytes[offset..<(offset + Int(length))], as: UTF8.self)
        }
        mutating func version() -> KPIState.Version? {
            guard let time = int(), let tag = byte() else { return nil }
            if tag == 1 {
                guard offset + 16 <= bytes.count else { return nil }
                var high: UInt64 = 0, low: UInt64 = 0
                for index in 0..<8 { high = high << 8 | UInt64(bytes[offset + index]) }
                for index in 8..<16 { low = low << 8 | UInt64(bytes[offset + index]) }
                offset += 16
                return KPIState.Version(time: Timestamp(microseconds: time), id: EventID(high: high, low: low))
            }
            guard tag == 0, let id = string() else { return nil }
            return KPIState.Version(time: Timestamp(microseconds: time), eventID: id)
        }
    }

    /// The event a persisted record (its field and value) holds; nil for bytes no version wrote.
    public static func decode(field: [UInt8], value: [UInt8]) -> KPIState.Event? {
        guard let kind = value.first else { return nil }
        guard kind >= UInt8(ascii: "a") && kind <= UInt8(ascii: "z") else { return decode(value) }
        var key = Reader(field)
        var v = Reader(value, from: 1)
        guard let id = key.string() else { return nil }
        let event: KPIState.Event?
        switch kind {
        case UInt8(ascii: "l"):
            guard let lineText = key.string(), let line = Int(lineText), let customer = v.string(), let product = v.string(),
                  let statusIndex = v.byte(), Int(statusIndex) < OrderStatus.allCases.count, let quantity = v.int(), let net = v.int(),
                  let orderTime = v.int(), let version = v.version() else { return nil }
            event = .line(KPIState.Line(
                orderID: id, lineNumber: line, customerID: customer, productID: product, status: OrderStatus.allCases[Int(statusIndex)],
                quantity: quantity, netCents: net, orderTime: Timestamp(microseconds: orderTime), version: version))
        case UInt8(ascii: "c"):
            guard let segment = v.string(), let hasState = v.byte(), let state = v.string(), let version = v.version() else { return nil }
            event = .customer(KPIState.Customer(id: id, version: version, segment: segment, state: hasState == 1 ? state : nil))
        case UInt8(ascii: "p"):
            guard let category = v.string(), let version = v.version() else { return nil }
            event = .product(KPIState.Product(id: id, version: version, category: category))
        case UInt8(ascii: "s"):
            guard let version = v.version() else { return nil }
            event = .supplier(KPIState.Supplier(id: id, version: version))
        case UInt8(ascii: "y"):
            guard let method = v.string(), let status = v.string(), let amount = v.int(), let version = v.version() else { return nil }
            event = .payment(KPIState.Payment(id: id, version: version, method: method, status: status, amountMicros: amount))
        case UInt8(ascii: "m"):
            guard let product = v.string(), let quantity = v.int(), let version = v.version() else { return nil }
            event = .movement(KPIState.Movement(id: id, version: version, productID: product, quantity: quantity))
        default:
            return nil
        }
        return v.atEnd ? event : nil
    }

    /// The first format (uppercase kinds, every value a string): still read, so state written by an
    /// earlier version survives an upgrade.
    static func decode(_ value: [UInt8]) -> KPIState.Event? {
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
