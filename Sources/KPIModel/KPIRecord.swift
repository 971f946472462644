public import RedisWire
#if canImport(Glibc)
import Glibc
#endif
public import Contract

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
                // Field offsets relative to `raw`, for `Fields`.
                var slot = -1
                StreamEntry.forEachPacked(raw) { index, bytes in
                    if index % 2 == 0 {
                        slot = -1
                        for (candidate, name) in names.enumerated() where name.count == bytes.count && found[candidate].offset < 0 {
                            if bytes.count == 0 || name.withUnsafeBytes({ memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0 }) {
                                slot = candidate
                                break
                            }
                        }
                    } else if slot >= 0 {
                        found[slot] = (bytes.baseAddress.map { $0 - raw.baseAddress! } ?? 0, bytes.count)
                    }
                    return true
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
            var id = v.eventID
            let packed: Bool = id.withUTF8 { utf8 in
                guard utf8.count == 32 else { return false }
                let start = bytes.count
                bytes.append(1)
                var index = 0
                while index < 32 {
                    guard let high = Self.nibble(utf8[index]), let low = Self.nibble(utf8[index + 1]) else {
                        bytes.removeSubrange(start...)
                        return false
                    }
                    bytes.append(high << 4 | low)
                    index += 2
                }
                return true
            }
            if !packed {
                bytes.append(0)
                string(v.eventID)
            }
        }

        @inline(__always)
        static func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            default: nil
            }
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
                let hexDigits = Array("0123456789abcdef".utf8)
                var text: [UInt8] = []
                text.reserveCapacity(32)
                for b in bytes[offset..<(offset + 16)] {
                    text.append(hexDigits[Int(b >> 4)])
                    text.append(hexDigits[Int(b & 0xF)])
                }
                offset += 16
                return KPIState.Version(time: Timestamp(microseconds: time), eventID: String(decoding: text, as: UTF8.self))
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
