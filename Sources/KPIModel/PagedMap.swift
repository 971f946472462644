/// A keyed store for millions of records: the values live in fixed-size pages, and the
/// dictionary maps each key to its slot (four bytes), so the dictionary's slack (it stays under
/// three-quarters full, a power of two in size: between 37 % and 75 % used) costs a key and a slot
/// number per empty bucket rather than a whole record, and growing never copies the records
/// (a new page is added; a resize of the dictionary moves only keys and slot numbers).
///
/// `bench scale` (2.6 M events, 820 k order lines) found the aggregator's `[LineKey: Applied]` at
/// 2^21 buckets of 208 bytes, 436 MB, and 654 MB while it last resized.
struct PagedMap<Key: Hashable & Sendable, Value: Sendable>: Sendable, Sequence {
    static var pageBits: Int { 14 }
    static var pageSize: Int { 1 << pageBits }

    private var slots: [Key: Int32] = [:]
    private var pages: [ContiguousArray<Value?>] = []
    /// Slots freed by a removal, reused first.
    private var free: [Int32] = []
    /// Slots ever handed out (the next new one).
    private var used: Int32 = 0

    init() {}

    var count: Int { slots.count }
    var isEmpty: Bool { slots.isEmpty }

    /// The slot holding `key`'s value.
    func slot(for key: Key) -> Int32? { slots[key] }

    /// The value in a slot that holds one (`slot(for:)`).
    subscript(slot slot: Int32) -> Value {
        get { pages[Int(slot) >> Self.pageBits][Int(slot) & (Self.pageSize - 1)]! }
        _modify {
            let page = Int(slot) >> Self.pageBits, offset = Int(slot) & (Self.pageSize - 1)
            var value = pages[page][offset]!
            pages[page][offset] = nil  // so `value` is the only reference while it is changed
            defer { pages[page][offset] = value }
            yield &value
        }
    }

    subscript(key: Key) -> Value? {
        get { slots[key].map { self[slot: $0] } }
        set {
            if let newValue { insert(newValue, for: key) } else { removeValue(forKey: key) }
        }
    }

    /// Sets `key`'s value; its slot.
    @discardableResult
    mutating func insert(_ value: Value, for key: Key) -> Int32 {
        if let slot = slots[key] {
            self[slot: slot] = value
            return slot
        }
        let slot: Int32
        if let reused = free.popLast() {
            slot = reused
        } else {
            slot = used
            used += 1
            if Int(slot) >> Self.pageBits == pages.count {
                pages.append(ContiguousArray(repeating: nil, count: Self.pageSize))
            }
        }
        pages[Int(slot) >> Self.pageBits][Int(slot) & (Self.pageSize - 1)] = value
        slots[key] = slot
        return slot
    }

    @discardableResult
    mutating func removeValue(forKey key: Key) -> Value? {
        guard let slot = slots.removeValue(forKey: key) else { return nil }
        let page = Int(slot) >> Self.pageBits, offset = Int(slot) & (Self.pageSize - 1)
        let value = pages[page][offset]
        pages[page][offset] = nil
        free.append(slot)
        return value
    }

    struct Iterator: IteratorProtocol {
        var keys: Dictionary<Key, Int32>.Iterator
        let map: PagedMap

        mutating func next() -> (key: Key, value: Value)? {
            guard let (key, slot) = keys.next() else { return nil }
            return (key, map[slot: slot])
        }
    }

    func makeIterator() -> Iterator { Iterator(keys: slots.makeIterator(), map: self) }
}
