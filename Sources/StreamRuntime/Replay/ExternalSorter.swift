import Synchronization
import Foundation
#if canImport(Glibc)
import Glibc
#endif
public import Contract

/// Orders records on one timeline by (event time, event id), in bounded memory: each record (a
/// small header and an opaque payload, for replay the event's encoded XADD) is packed into an
/// arena; past `memoryBudget` bytes the arena is sorted and written to a run file in a temporary
/// folder, and `finish()` merges the runs (a k-way merge over a min-heap). Exact duplicates (same
/// time and id) come out next to each other.
///
/// `@unchecked Sendable`: a sorter is owned by one task at a time — filled by a reading task, then
/// handed to the publishing task — and never used by two at once.
public final class ExternalSorter: @unchecked Sendable {
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

    /// The disk the sorters of one replay may fill, shared between them.
    public let disk: SpillAllowance

    /// `directory` is created if needed and removed by `cleanUp()`.
    public init(memoryBudget: Int = 256 << 20, directory: String? = nil, disk: SpillAllowance = SpillAllowance()) throws {
        self.memoryBudget = memoryBudget
        self.disk = disk
        self.directory = directory
            ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("sw-sort-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
    }

    deinit { cleanUp() }

    /// Removes the run files and the folder.
    public func cleanUp() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Adds a record; `payload` is copied.
    public func add(time: Timestamp, id: EventID, entity: Entity, line: Int, partition: Int = 0, payload: UnsafeRawBufferPointer) throws {
        let offset = arena.count
        let length = UInt32(Self.headerSize + payload.count)
        Self.append(length, to: &arena)
        Self.append(time.microseconds, to: &arena)
        Self.append(id.high, to: &arena)
        Self.append(id.low, to: &arena)
        arena.append(UInt8(entity.index))
        Self.append(UInt32(truncatingIfNeeded: line), to: &arena)
        Self.append(UInt16(truncatingIfNeeded: partition), to: &arena)
        arena.append(contentsOf: payload)
        keys.append(Key(time: time.microseconds, high: id.high, low: id.low, offset: offset))
        count += 1
        if arena.count + keys.count * MemoryLayout<Key>.stride >= memoryBudget {
            try spill()
        }
    }

    /// Adds a record whose payload is `bytes`.
    public func add(time: Timestamp, id: EventID, entity: Entity, line: Int, partition: Int = 0, payload bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try add(time: time, id: id, entity: entity, line: line, partition: partition, payload: $0) }
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
        try disk.reserve(arena.count, in: directory)
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
    // [partition u16] [payload]

    static let headerSize = 4 + 8 + 8 + 8 + 1 + 4 + 2

    static func header(_ raw: UnsafeRawBufferPointer, at offset: Int) -> SortedRecord {
        SortedRecord(
            time: Timestamp(microseconds: raw.loadUnaligned(fromByteOffset: offset + 4, as: Int64.self)),
            id: EventID(high: raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt64.self),
                        low: raw.loadUnaligned(fromByteOffset: offset + 20, as: UInt64.self)),
            entity: Entity.allCases[Int(raw[offset + 28])],
            line: Int(raw.loadUnaligned(fromByteOffset: offset + 29, as: UInt32.self)),
            partition: Int(raw.loadUnaligned(fromByteOffset: offset + 33, as: UInt16.self)))
    }

    static func payload(_ raw: UnsafeRawBufferPointer, at offset: Int) -> UnsafeRawBufferPointer {
        let length = Int(raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        return UnsafeRawBufferPointer(rebasing: raw[(offset + headerSize)..<(offset + length)])
    }

    @inline(__always)
    static func append<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }
}

/// The header of a sorted record.
public struct SortedRecord: Sendable, Equatable {
    public var time: Timestamp
    public var id: EventID
    public var entity: Entity
    public var line: Int
    public var partition: Int

    public init(time: Timestamp, id: EventID, entity: Entity, line: Int, partition: Int = 0) {
        self.time = time
        self.id = id
        self.entity = entity
        self.line = line
        self.partition = partition
    }
}

/// The sorted records, from memory or merged from run files. `advance()` moves to the next record
/// and returns its header; `withPayload` lends the current record's payload without copying it.
public final class SortedRows: RecordSource {
    private var memory: [UInt8] = []
    private var keys: [ExternalSorter.Key] = []
    private var position = -1
    private var readers: [RunReader] = []
    private var heap: [Int] = []
    private var current: Int?

    init(memory: [UInt8], keys: [ExternalSorter.Key]) {
        self.memory = memory
        self.keys = keys
    }

    init(runs: [String]) throws {
        readers = try runs.map { try RunReader(path: $0) }
        for index in readers.indices where readers[index].hasRecord {
            heap.append(index)
            siftUp(heap.count - 1)
        }
    }

    /// The next record in (event time, event id) order, or nil at the end.
    public func advance() throws -> SortedRecord? {
        if readers.isEmpty {
            position += 1
            guard position < keys.count else { return nil }
            return memory.withUnsafeBytes { ExternalSorter.header($0, at: keys[position].offset) }
        }
        if let current {
            try readers[current].advance()
            if !readers[current].hasRecord {
                heap[0] = heap[heap.count - 1]
                heap.removeLast()
            }
            if !heap.isEmpty { siftDown(0) }
        }
        guard let top = heap.first else { current = nil; return nil }
        current = top
        return readers[top].header
    }

    /// Calls `body` with the current record's payload (valid only during the call).
    public func withPayload<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if readers.isEmpty {
            return try memory.withUnsafeBytes { try body(ExternalSorter.payload($0, at: keys[position].offset)) }
        }
        return try readers[current!].withPayload(body)
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        let x = readers[a].header!, y = readers[b].header!
        if x.time != y.time { return x.time < y.time }
        if x.id != y.id { return x.id < y.id }
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

/// Sorted records that can be read one by one.
public protocol RecordSource: AnyObject {
    /// Moves to the next record and returns its header; nil at the end.
    func advance() throws -> SortedRecord?
    /// Calls `body` with the current record's payload (valid only during the call).
    func withPayload<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

/// Merges several sorted sources into one (event time, event id) order.
public final class MergedRows: RecordSource {
    private let sources: [any RecordSource]
    private var heads: [SortedRecord?]
    private var current: Int?

    public init(_ sources: [any RecordSource]) throws {
        self.sources = sources
        heads = try sources.map { try $0.advance() }
    }

    public func advance() throws -> SortedRecord? {
        if let current { heads[current] = try sources[current].advance() }
        var best: Int?
        for index in heads.indices {
            guard let head = heads[index] else { continue }
            if let chosen = best, let other = heads[chosen], (other.time, other.id) <= (head.time, head.id) { continue }
            best = index
        }
        current = best
        return best.flatMap { heads[$0] }
    }

    public func withPayload<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try sources[current!].withPayload(body)
    }
}

/// Reads one run file sequentially through a buffer.
final class RunReader {
    private let file: UnsafeMutablePointer<FILE>
    private var buffer: [UInt8] = []
    private var start = 0
    private var length = 0
    private var atEOF = false
    private(set) var header: SortedRecord?

    var hasRecord: Bool { header != nil }

    init(path: String) throws {
        guard let file = fopen(path, "rb") else { throw ContractError("cannot read the sort spill file \(path)") }
        self.file = file
        try advance()
    }

    deinit { fclose(file) }

    func advance() throws {
        start += length
        length = 0
        guard try ensure(4) else { header = nil; return }
        let recordLength = buffer.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: start, as: UInt32.self)) }
        guard try ensure(recordLength) else { throw ContractError("a sort spill file is truncated") }
        length = recordLength
        header = buffer.withUnsafeBytes { ExternalSorter.header($0, at: start) }
    }

    func withPayload<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeBytes { try body(ExternalSorter.payload($0, at: start)) }
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

/// How much a replay's sort may write to disk: at most `limit` bytes in all, and never so much
/// that less than `reserve` bytes stay free on the spill folder's file system. A spill past either
/// is refused before it is written, with an error that says which limit and what to do.
public final class SpillAllowance: Sendable {
    public let limit: Int
    public let reserve: Int
    private let used = Mutex(0)

    /// The defaults: 20 GiB of spill at most, and 1 GiB left free.
    public init(limit: Int = 20 << 30, reserve: Int = 1 << 30) {
        self.limit = limit
        self.reserve = reserve
    }

    /// Bytes spilled so far.
    public var spilled: Int { used.withLock { $0 } }

    func reserve(_ bytes: Int, in directory: String) throws {
        let mib = { (value: Int) in "\(value >> 20) MiB" }
        try used.withLock { used in
            guard used + bytes <= limit else {
                throw ContractError(
                    "the sort would spill more than \(mib(limit)) to \(directory) (--max-spill-mb): raise --max-spill-mb or --memory-mb, or replay a narrower --from/--to window")
            }
            var stats = statvfs()
            if statvfs(directory, &stats) == 0 {
                let free = Int(stats.f_bavail) * Int(stats.f_frsize)
                guard free - bytes >= reserve else {
                    throw ContractError(
                        "the sort needs \(mib(bytes)) more on \(directory), which has \(mib(free)) free and must keep \(mib(reserve)): free space, or point TMPDIR at a larger disk")
                }
            }
            used += bytes
        }
    }
}
