import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
public import Contract

/// Lines of bounded length from a descriptor, read a chunk at a time (JSON lines on stdin). A
/// line longer than `maxLineBytes` is skipped to its end and reported by number, so one runaway
/// line costs itself only and memory stays at the limit plus one chunk.
public struct LineReader {
    public enum Line: Equatable {
        case text(line: Int, String)
        case tooLong(line: Int, bytes: Int)
        /// Bytes that are not UTF-8 (decoding them would replace them, changing the values).
        case notUTF8(line: Int)
    }

    public let maxLineBytes: Int
    private let descriptor: Int32
    private let chunkSize: Int
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var atEOF = false
    private var line = 0
    private var willWait: (() -> Void)?

    public init(descriptor: Int32, chunkSize: Int = 1 << 16, maxLineBytes: Int = CSVReader.defaultMaxRecordBytes, willWait: (() -> Void)? = nil) {
        self.descriptor = descriptor
        self.chunkSize = chunkSize
        self.maxLineBytes = max(1, maxLineBytes)
        self.willWait = willWait
        buffer = [UInt8](repeating: 0, count: chunkSize)
    }

    /// Reads from bytes in memory (tests, fuzzing).
    public init(bytes: [UInt8], maxLineBytes: Int = CSVReader.defaultMaxRecordBytes) {
        descriptor = -1
        chunkSize = max(1, bytes.count)
        self.maxLineBytes = max(1, maxLineBytes)
        buffer = bytes
        end = bytes.count
        atEOF = true
    }

    /// The next line (without its LF or CRLF), or nil at the end of the input.
    public mutating func next() throws -> Line? {
        var skipped = 0
        while true {
            if let newline = buffer[start..<end].firstIndex(of: 10) {
                line += 1
                defer { start = newline + 1 }
                if skipped > 0 { return .tooLong(line: line, bytes: skipped + newline - start) }
                var stop = newline
                if stop > start, buffer[stop - 1] == 13 { stop -= 1 }
                if stop - start > maxLineBytes { return .tooLong(line: line, bytes: stop - start) }
                return Self.text(buffer[start..<stop], line: line)
            }
            if atEOF {
                guard start < end || skipped > 0 else { return nil }
                line += 1
                defer { start = end }
                if skipped > 0 || end - start > maxLineBytes { return .tooLong(line: line, bytes: skipped + end - start) }
                var stop = end
                if buffer[stop - 1] == 13 { stop -= 1 }
                return Self.text(buffer[start..<stop], line: line)
            }
            if end - start > maxLineBytes {
                // Past the limit without a newline: drop what is held and read on to the line's end.
                skipped += end - start
                start = end
            }
            try fill()
        }
    }

    private static func text(_ bytes: ArraySlice<UInt8>, line: Int) -> Line {
        guard let text = String(validating: bytes, as: UTF8.self) else { return .notUTF8(line: line) }
        return .text(line: line, text)
    }

    /// Reads at least one byte more (or up to the end of the input).
    private mutating func fill() throws {
        if let failure = ChunkedRead.fill(
            descriptor: descriptor, buffer: &buffer, start: &start, end: &end, atEOF: &atEOF,
            minimum: end - start + 1, chunkSize: chunkSize, willWait: willWait) {
            throw ContractError("reading the input failed: \(String(cString: strerror(failure)))")
        }
    }
}

/// Standard input for `produce --stdin`, read as it comes on a thread of its own (a blocking read
/// never ties up Swift's cooperative pool), handed over in chunks: a chunk goes when it holds
/// `chunkSize` records or when the input has nothing more for now, so a record piped in from a
/// live source is published at once. At most `depth` chunks wait for the publisher; the reading
/// thread waits while they do, so memory is bounded whatever the input's size.
public final class ProducerInput: AsyncSequence, Sendable {
    public enum Format: Sendable { case csv, jsonl }

    /// Records of one chunk: CSV fields (the first chunk's first record is the header), or JSON
    /// lines as text; and the lines that could not be read (too long, a quote left open).
    public struct Chunk: Sendable {
        public var csv: [(line: Int, fields: [String])] = []
        public var jsonl: [(line: Int, text: String)] = []
        public var unreadable: [Rejection] = []
        var isEmpty: Bool { csv.isEmpty && jsonl.isEmpty && unreadable.isEmpty }
        var count: Int { csv.count + jsonl.count + unreadable.count }
    }

    public typealias Element = Chunk
    private let stream: AsyncThrowingStream<Chunk, any Error>
    private let slots: DispatchSemaphore

    public init(descriptor: Int32 = 0, format: Format, name: String = "stdin", maxRecordBytes: Int = CSVReader.defaultMaxRecordBytes,
                chunkSize: Int = 1000, depth: Int = 4) {
        let (stream, continuation) = AsyncThrowingStream<Chunk, any Error>.makeStream()
        let slots = DispatchSemaphore(value: depth)
        self.stream = stream
        self.slots = slots
        let thread = Thread {
            final class Pending: @unchecked Sendable { var chunk = Chunk() }
            let pending = Pending()
            let handOver = {
                guard !pending.chunk.isEmpty else { return }
                slots.wait()
                continuation.yield(pending.chunk)
                pending.chunk = Chunk()
            }
            do {
                switch format {
                case .csv:
                    var reader = CSVReader(descriptor: descriptor, file: name, maxRecordBytes: maxRecordBytes, willWait: handOver)
                    while true {
                        do {
                            guard let record = try reader.next() else { break }
                            pending.chunk.csv.append(record)
                        } catch let error as CSVError {
                            pending.chunk.unreadable.append(Rejection(
                                file: name, line: error.line, column: nil, reason: error.message,
                                code: error.code, raw: ""))
                        }
                        if pending.chunk.count >= chunkSize { handOver() }
                    }
                case .jsonl:
                    var reader = LineReader(descriptor: descriptor, maxLineBytes: maxRecordBytes, willWait: handOver)
                    while let line = try reader.next() {
                        switch line {
                        case .text(let number, let text): pending.chunk.jsonl.append((number, text))
                        case .tooLong(let number, let bytes):
                            pending.chunk.unreadable.append(Rejection(
                                file: name, line: number, column: nil,
                                reason: "the line is \(bytes) bytes, longer than \(maxRecordBytes) (--max-record-bytes)",
                                code: "record_too_long", raw: ""))
                        case .notUTF8(let number):
                            pending.chunk.unreadable.append(Rejection(
                                file: name, line: number, column: nil, reason: "the line is not valid UTF-8 (the input must be UTF-8)",
                                code: "invalid_utf8", raw: ""))
                        }
                        if pending.chunk.count >= chunkSize { handOver() }
                    }
                }
                handOver()
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        thread.name = "produce-stdin"
        thread.start()
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<Chunk, any Error>.AsyncIterator
        let slots: DispatchSemaphore
        public mutating func next() async throws -> Chunk? {
            let chunk = try await base.next()
            if chunk != nil { slots.signal() }
            return chunk
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: stream.makeAsyncIterator(), slots: slots)
    }
}
