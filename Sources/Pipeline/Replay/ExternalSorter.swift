import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Orders rows on one timeline by (event time, event id), in bounded memory: rows are packed into
/// an arena; past `memoryBudget` bytes the arena is sorted and written to a run file in a
/// temporary folder, and `finish()` merges the runs (a k-way merge over a min-heap).
/// Exact duplicates (same id) come out next to each other.
public final class ExternalSorter {
    struct Key {
        var time: Int64
        var high: UInt64
        var low: UInt64
        var offset: Int

        @inline(__always)
        static func precedes(_ a: Key, _ b: Key) -> Bool {
            if a.time != b.time { return a.time < b.time }
            if a.high != b.high { return a.high < b.high }
            return a.low < b.low
        }
    }

    public let memoryBudget: Int
    public let directory: String
    private var arena: [UInt8] = []
    private var keys: [Key] = []
    private var runs: [String] = []
    /// Rows added.
    public private(set) var count = 0
    /// Runs written to disk so far.
    public var spilledRuns: Int { runs.count }

    /// `directory` is created if needed and removed by `cleanUp()`.
    public init(memoryBudget: Int = 256 << 20, directory: String? = nil) throws {
        self.memoryBudget = memoryBudget
        self.directory = directory
            ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("sw-sort-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
    }

    deinit { cleanUp() }

    /// Removes the run files and the folder.
    public func cleanUp() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    public func add(_ row: ValidatedRow) throws {
        let offset = arena.count
        Self.encode(row, into: &arena)
        keys.append(Key(time: row.eventTime.microseconds, high: row.eventID.high, low: row.eventID.low, offset: offset))
        count += 1
        if arena.count + keys.count * MemoryLayout<Key>.stride >= memoryBudget {
            try spill()
        }
    }

    /// Everything added, in order. Call once, after the last `add`.
    public func finish() throws -> SortedRows {
        if runs.isEmpty {
            keys.sort(by: Key.precedes)
            return SortedRows(memory: arena, keys: keys)
        }
        if !keys.isEmpty { try spill() }
        return try SortedRows(runs: runs)
    }

    private func spill() throws {
        keys.sort(by: Key.precedes)
        let path = (directory as NSString).appendingPathComponent("run-\(runs.count).bin")
        guard let file = fopen(path, "wb") else {
            throw ContractError("cannot write the sort spill file \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        setvbuf(file, nil, _IOFBF, 1 << 20)
        try arena.withUnsafeBytes { raw in
            for key in keys {
                let length = Int(raw.loadUnaligned(fromByteOffset: key.offset, as: UInt32.self))
                if fwrite(raw.baseAddress! + key.offset, 1, length, file) != length {
                    throw ContractError("cannot write the sort spill file \(path): \(String(cString: strerror(errno)))")
                }
            }
        }
        runs.append(path)
        arena.removeAll(keepingCapacity: true)
        keys.removeAll(keepingCapacity: true)
    }

    // MARK: - Record format
    // [length u32 (whole record)] [time i64] [id high u64] [id low u64] [entity u8] [line u32]
    // [value count u16] then per value [length u32][bytes]

    static let headerSize = 4 + 8 + 8 + 8 + 1 + 4 + 2

    static func encode(_ row: ValidatedRow, into out: inout [UInt8]) {
        let start = out.count
        append(UInt32(0), to: &out)
        append(row.eventTime.microseconds, to: &out)
        append(row.eventID.high, to: &out)
        append(row.eventID.low, to: &out)
        out.append(UInt8(row.entity.index))
        append(UInt32(truncatingIfNeeded: row.line), to: &out)
        append(UInt16(row.values.count), to: &out)
        for value in row.values {
            append(UInt32(value.utf8.count), to: &out)
            out.append(contentsOf: value.utf8)
        }
        let length = UInt32(out.count - start)
        withUnsafeBytes(of: length.littleEndian) { bytes in
            for index in 0..<4 { out[start + index] = bytes[index] }
        }
    }

    static func decode(_ raw: UnsafeRawBufferPointer, at offset: Int) -> ValidatedRow {
        var position = offset + 4
        let time = raw.loadUnaligned(fromByteOffset: position, as: Int64.self); position += 8
        let high = raw.loadUnaligned(fromByteOffset: position, as: UInt64.self); position += 8
        let low = raw.loadUnaligned(fromByteOffset: position, as: UInt64.self); position += 8
        let entity = Entity.allCases[Int(raw[position])]; position += 1
        let line = Int(raw.loadUnaligned(fromByteOffset: position, as: UInt32.self)); position += 4
        let count = Int(raw.loadUnaligned(fromByteOffset: position, as: UInt16.self)); position += 2
        var values: [String] = []
        values.reserveCapacity(count)
        for _ in 0..<count {
            let length = Int(raw.loadUnaligned(fromByteOffset: position, as: UInt32.self)); position += 4
            values.append(String(decoding: UnsafeRawBufferPointer(rebasing: raw[position..<(position + length)]), as: UTF8.self))
            position += length
        }
        return ValidatedRow(
            entity: entity, line: line, values: values, eventTime: Timestamp(microseconds: time),
            eventID: EventID(high: high, low: low))
    }

    @inline(__always)
    static func append<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }
}

/// The sorted rows, from memory or merged from run files.
public final class SortedRows {
    private var memory: [UInt8] = []
    private var keys: [ExternalSorter.Key] = []
    private var position = 0
    private var readers: [RunReader] = []
    private var heap: [Int] = []

    init(memory: [UInt8], keys: [ExternalSorter.Key]) {
        self.memory = memory
        self.keys = keys
    }

    init(runs: [String]) throws {
        readers = try runs.map { try RunReader(path: $0) }
        for index in readers.indices where readers[index].current != nil {
            heap.append(index)
            siftUp(heap.count - 1)
        }
    }

    /// The next row in (event time, event id) order, or nil at the end.
    public func next() throws -> ValidatedRow? {
        if readers.isEmpty {
            guard position < keys.count else { return nil }
            let key = keys[position]
            position += 1
            return memory.withUnsafeBytes { ExternalSorter.decode($0, at: key.offset) }
        }
        guard let top = heap.first else { return nil }
        let row = readers[top].current!
        try readers[top].advance()
        if readers[top].current == nil {
            heap[0] = heap[heap.count - 1]
            heap.removeLast()
        }
        if !heap.isEmpty { siftDown(0) }
        return row
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        let x = readers[a].current!, y = readers[b].current!
        if x.eventTime != y.eventTime { return x.eventTime < y.eventTime }
        if x.eventID != y.eventID { return x.eventID < y.eventID }
        return a < b
    }

    private func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            if less(heap[child], heap[parent]) { heap.swapAt(child, parent); child = parent } else { return }
        }
    }

    private func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count, less(heap[left], heap[smallest]) { smallest = left }
            if right < heap.count, less(heap[right], heap[smallest]) { smallest = right }
            if smallest == parent { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}

/// Reads one run file sequentially through a buffer.
final class RunReader {
    private let file: UnsafeMutablePointer<FILE>
    private var buffer: [UInt8] = []
    private var start = 0
    private var atEOF = false
    private(set) var current: ValidatedRow?

    init(path: String) throws {
        guard let file = fopen(path, "rb") else { throw ContractError("cannot read the sort spill file \(path)") }
        self.file = file
        try advance()
    }

    deinit { fclose(file) }

    func advance() throws {
        guard try ensure(4) else { current = nil; return }
        let length = buffer.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: start, as: UInt32.self)) }
        guard try ensure(length) else { throw ContractError("a sort spill file is truncated") }
        current = buffer.withUnsafeBytes { ExternalSorter.decode($0, at: start) }
        start += length
    }

    /// Makes `count` bytes available at `start`; false at a clean end of file.
    private func ensure(_ count: Int) throws -> Bool {
        if buffer.count - start >= count { return true }
        buffer.removeFirst(start)
        start = 0
        while buffer.count < count && !atEOF {
            let want = max(count - buffer.count, 1 << 20)
            let old = buffer.count
            buffer.append(contentsOf: repeatElement(0, count: want))
            let read = buffer.withUnsafeMutableBytes { fread($0.baseAddress! + old, 1, want, file) }
            buffer.removeLast(want - read)
            if read == 0 { atEOF = true }
        }
        return buffer.count >= count
    }
}
