import Contract
/// The archive of retired records (`KPIState+Revival.swift`): a retired order keeps every line
/// with the attribution it was counted under (so reviving it takes back exactly what retiring it
/// added), and each customer and product keeps an index of its retired orders by order time (so a
/// late version finds the lines it re-attributes).
extension KPIRecord {
    /// A retired order's archived value: kind `o`, the line count, then per line its number, the
    /// line's record value (without its kind) and the as-was attribution (segment, state, category).
    public static func archivedOrder(_ lines: [(line: KPIState.Line, attribution: KPIState.Attribution)]) -> [UInt8] {
        var value = Writer(capacity: 16 + lines.count * 96)
        value.kind("o")
        value.int(Int64(lines.count))
        for (line, a) in lines {
            value.int(Int64(line.lineNumber))
            value.string(line.customerID); value.string(line.productID)
            value.byte(UInt8(OrderStatus.allCases.firstIndex(of: line.status)!)); value.int(line.quantity); value.int(line.netCents)
            value.int(line.orderTime.microseconds); value.version(line.version)
            value.string(a.segment); value.string(a.state); value.string(a.category)
        }
        return value.bytes
    }

    /// The lines of an archived order; nil for bytes `archivedOrder` did not write.
    public static func decodeArchivedOrder(orderID: String, value: [UInt8]) -> [(line: KPIState.Line, attribution: KPIState.Attribution)]? {
        var v = Reader(value)
        guard v.byte() == UInt8(ascii: "o"), let count = v.int(), count > 0, count <= Int64(value.count) else { return nil }
        var lines: [(line: KPIState.Line, attribution: KPIState.Attribution)] = []
        for _ in 0..<count {
            guard let number = v.int(), let lineNumber = Int(exactly: number), let customer = v.string(), let product = v.string(),
                  let statusIndex = v.byte(), Int(statusIndex) < OrderStatus.allCases.count, let quantity = v.int(), let net = v.int(),
                  let orderTime = v.int(), let version = v.version(), let segment = v.string(), let state = v.string(),
                  let category = v.string() else { return nil }
            let line = KPIState.Line(
                orderID: orderID, lineNumber: lineNumber, customerID: customer, productID: product,
                status: OrderStatus.allCases[Int(statusIndex)], quantity: quantity, netCents: net,
                orderTime: Timestamp(microseconds: orderTime), version: version)
            // The as-is segment is the customer's current one (it followed the customer while retired).
            lines.append((line, KPIState.Attribution(segment: segment, state: state, category: category, segmentNow: segment)))
        }
        return v.atEnd ? lines : nil
    }

    /// One entry of a customer's or product's index of retired orders: the order time, then the
    /// order id. Entries are appended (APPEND) to one string per customer or product.
    public static func indexEntry(orderID: String, orderTime: Int64) -> [UInt8] {
        var entry = Writer(capacity: 24)
        entry.int(orderTime); entry.string(orderID)
        return entry.bytes
    }

    /// The orders of an index with an order time at or after `from` (every one when nil), each
    /// once; nil for bytes `indexEntry` did not write.
    public static func indexedOrders(_ bytes: [UInt8], from: Int64?) -> [String]? {
        var reader = Reader(bytes)
        var seen = Set<String>(), orders: [String] = []
        while !reader.atEnd {
            guard let time = reader.int(), let orderID = reader.string() else { return nil }
            if from.map({ time >= $0 }) ?? true, seen.insert(orderID).inserted { orders.append(orderID) }
        }
        return orders
    }
}

extension KPIRecord {
    /// One entry of an archive, decoded.
    public enum Archived: Sendable {
        case order(String, [(line: KPIState.Line, attribution: KPIState.Attribution)])
        case payment(KPIState.Payment)
        case movement(KPIState.Movement)
    }

    /// An archive's entry (its field and value); nil for bytes no retirement wrote.
    public static func decodeArchived(field: [UInt8], value: [UInt8]) -> Archived? {
        if value.first == UInt8(ascii: "o") {
            var key = Reader(field)
            guard let id = key.string(), key.atEnd, let lines = decodeArchivedOrder(orderID: id, value: value) else { return nil }
            return .order(id, lines)
        }
        switch decode(field: field, value: value) {
        case .payment(let payment)?: return .payment(payment)
        case .movement(let movement)?: return .movement(movement)
        default: return nil
        }
    }

    /// A key field (`keyField`) as text for a message: its id, or its bytes in hex.
    public static func describe(field: [UInt8]) -> String {
        var key = Reader(field)
        if let id = key.string(), key.atEnd { return id }
        return field.map { String($0, radix: 16) }.joined(separator: " ")
    }
}
