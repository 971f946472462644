#if canImport(Glibc)
import Glibc
#endif

/// A malformed CSV record (an unterminated quote) or an unreadable file.
public struct CSVError: Error, Sendable, CustomStringConvertible {
    public var file: String
    /// The line where the record starts (1-based).
    public var line: Int
    public var message: String
    /// What kind of problem: `unclosed_quote`, `record_too_long`, or `csv_syntax` (a read failure).
    public var code = "csv_syntax"
    public var description: String { "\(file):\(line): \(message)" }
}

/// A streaming RFC 4180 reader: quoted fields may hold commas, doubled quotes and newlines;
/// records end with LF or CRLF; a UTF-8 byte-order mark is skipped; a final record without a
/// newline is read; blank lines are skipped. Reads the file in chunks, so memory stays at the size
/// of the largest record plus one chunk.
///
/// A quote inside an unquoted field is kept as data; text after a closing quote is kept too
/// (`"ab"c` reads `abc`), as most readers do.
///
/// Records are bounded (`maxRecordBytes`): a record longer than that, or a quote left open to the
/// end of the file, is a `CSVError` naming the line where the record started, and reading goes on
/// from the line after it (the quote is taken for a stray one). So an unclosed quote costs one
/// row, never the rest of the file, and memory stays at the limit plus one chunk.
public struct CSVReader {
    /// The default longest record: 1 MiB.
    public static let defaultMaxRecordBytes = 1 << 20
    /// The longest record read; longer ones are skipped with an error.
    public let maxRecordBytes: Int
    public let file: String
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var atEOF = false
    private var descriptor: Int32 = -1
    private var line = 1
    /// Unescaped quoted fields of the current record.
    private var scratch: [UInt8] = []
    /// Where each field of the current record is: in `buffer` (absolute offset) or in `scratch`.
    private var ranges: [FieldRange] = []
    private var views: [UnsafeBufferPointer<UInt8>] = []

    struct FieldRange {
        var inScratch: Bool
        var start: Int
        var count: Int
    }
    private var checkedBOM = false
    /// Bytes held for reading (tests check that it stays bounded).
    var bufferCapacity: Int { buffer.count }
    private let chunkSize: Int

    /// Reads `path`; `file` is the name used in errors (default: the path).
    public init(path: String, file: String? = nil, chunkSize: Int = 1 << 20, maxRecordBytes: Int = CSVReader.defaultMaxRecordBytes) throws {
        self.file = file ?? path
        self.chunkSize = chunkSize
        self.maxRecordBytes = max(1, maxRecordBytes)
        descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else {
            throw CSVError(file: self.file, line: 0, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        buffer = [UInt8](repeating: 0, count: chunkSize)
    }

    /// Reads from an open descriptor (standard input, a pipe), which `close()` closes.
    /// `willWait`, when given, runs whenever the next read would wait for more input (nothing is
    /// readable yet): a streaming caller hands over what it has gathered there.
    public init(
        descriptor: Int32, file: String, chunkSize: Int = 1 << 16, maxRecordBytes: Int = CSVReader.defaultMaxRecordBytes,
        willWait: (() -> Void)? = nil
    ) {
        self.file = file
        self.chunkSize = chunkSize
        self.maxRecordBytes = max(1, maxRecordBytes)
        self.descriptor = descriptor
        self.willWait = willWait
        buffer = [UInt8](repeating: 0, count: chunkSize)
    }

    private var willWait: (() -> Void)?

    /// Reads from bytes in memory (tests, stdin).
    public init(bytes: [UInt8], file: String = "<memory>", maxRecordBytes: Int = CSVReader.defaultMaxRecordBytes) {
        self.file = file
        self.chunkSize = max(bytes.count, 1)
        self.maxRecordBytes = max(1, maxRecordBytes)
        buffer = bytes
        end = bytes.count
        atEOF = true
    }

    /// Closes the file. Called by `deinit`-free owners when done; reading past it returns nil.
    public mutating func close() {
        if descriptor >= 0 {
            _ = Glibc.close(descriptor)
            descriptor = -1
        }
        atEOF = true
    }

    /// The next record's fields, or nil at the end. `line` is where the record starts.
    public mutating func next() throws -> (line: Int, fields: [String])? {
        var fields: [String] = []
        guard let line = try next(into: &fields) else { return nil }
        return (line, fields)
    }

    /// Reads the next record and lends `body` its fields as bytes (valid only during the call; no
    /// string is made): the hot path of replay. Returns nil at the end, else `body`'s result.
    public mutating func nextRaw<R>(_ body: (_ line: Int, _ fields: [UnsafeBufferPointer<UInt8>]) throws -> R) throws -> R? {
        guard try advanceRecord() != nil else { return nil }
        let recordLine = currentLine
        return try buffer.withUnsafeBufferPointer { bytes in
            try scratch.withUnsafeBufferPointer { unescaped in
                views.removeAll(keepingCapacity: true)
                for range in ranges {
                    let source = range.inScratch ? unescaped : bytes
                    views.append(UnsafeBufferPointer(rebasing: source[range.start..<(range.start + range.count)]))
                }
                return try body(recordLine, views)
            }
        }
    }

    private var currentLine = 0

    /// Parses the next record into `ranges` (moving past it), or returns nil at the end.
    private mutating func advanceRecord() throws -> Int? {
        var unused: [String] = []
        return try next(into: &unused, materialize: false)
    }

    /// Reads the next record into `fields` (replacing its contents, keeping its storage) and
    /// returns the line where it starts, or nil at the end.
    public mutating func next(into fields: inout [String]) throws -> Int? {
        try next(into: &fields, materialize: true)
    }

    private mutating func next(into fields: inout [String], materialize: Bool) throws -> Int? {
        if !checkedBOM {
            try fill(minimum: 3)
            if end - start >= 3, buffer[start] == 0xEF, buffer[start + 1] == 0xBB, buffer[start + 2] == 0xBF {
                start += 3
            }
            checkedBOM = true
        }
        while true {
            // Skip blank lines.
            while true {
                if start == end {
                    if atEOF { close(); return nil }
                    try fill(minimum: 1)
                    continue
                }
                let byte = buffer[start]
                if byte == 10 {
                    start += 1; line += 1
                } else if byte == 13, start + 1 < end, buffer[start + 1] == 10 {
                    start += 2; line += 1
                } else if byte == 13, start + 1 == end, !atEOF {
                    try fill(minimum: 2)
                } else {
                    break
                }
            }
            let outcome = parseRecord()
            switch outcome {
            case .complete(let consumed, let newlines):
                let recordLine = line
                if consumed > maxRecordBytes {
                    start += consumed
                    line += newlines
                    throw CSVError(file: file, line: recordLine, message: "the record is longer than \(maxRecordBytes) bytes (--max-record-bytes)",
                                   code: "record_too_long")
                }
                currentLine = line
                var invalid: Int?
                if materialize {
                    fields.removeAll(keepingCapacity: true)
                    buffer.withUnsafeBufferPointer { bytes in
                        scratch.withUnsafeBufferPointer { unescaped in
                            for (index, range) in ranges.enumerated() {
                                let source = range.inScratch ? unescaped : bytes
                                let field = UnsafeBufferPointer(rebasing: source[range.start..<(range.start + range.count)])
                                // A string cannot hold bytes that are not UTF-8 (decoding would
                                // replace them, changing the value): the record is refused instead.
                                guard let text = String(validating: field, as: UTF8.self) else {
                                    invalid = invalid ?? index + 1
                                    continue
                                }
                                fields.append(text)
                            }
                        }
                    }
                }
                start += consumed
                line += newlines
                if let invalid {
                    throw CSVError(file: file, line: recordLine, message: "field \(invalid) is not valid UTF-8 (the input must be UTF-8)",
                                   code: "invalid_utf8")
                }
                return recordLine
            case .needMore:
                let recordLine = line
                if atEOF {
                    // A quote still open at the end of the input: the record's first line is the
                    // bad row; what follows it is read again as records of its own.
                    try skipLine()
                    throw CSVError(file: file, line: recordLine, message: "a quoted field opened on this line is not closed before the end of the file",
                                   code: "unclosed_quote")
                }
                if end - start >= maxRecordBytes {
                    let quoted = openQuote()
                    try skipLine()
                    throw CSVError(
                        file: file, line: recordLine,
                        message: quoted
                            ? "a quoted field opened on this line is not closed within \(maxRecordBytes) bytes (--max-record-bytes)"
                            : "the record is longer than \(maxRecordBytes) bytes (--max-record-bytes)",
                        code: quoted ? "unclosed_quote" : "record_too_long")
                }
                try fill(minimum: min(end - start + 1, maxRecordBytes))
            }
        }
    }

    private enum Outcome {
        case complete(consumed: Int, newlines: Int)
        case needMore
    }

    /// Parses one record starting at `start`. Does not move `start`.
    private mutating func parseRecord() -> Outcome {
        ranges.removeAll(keepingCapacity: true)
        scratch.removeAll(keepingCapacity: true)
        return buffer.withUnsafeBufferPointer { bytes -> Outcome in
            var index = start
            var newlines = 0
            let limit = end
            while true {
                // One field.
                if index < limit, bytes[index] == UInt8(ascii: "\"") {
                    let scratchStart = scratch.count
                    index += 1
                    var closed = false
                    while index < limit {
                        let byte = bytes[index]
                        if byte == UInt8(ascii: "\"") {
                            if index + 1 < limit {
                                if bytes[index + 1] == UInt8(ascii: "\"") {
                                    scratch.append(UInt8(ascii: "\""))
                                    index += 2
                                    continue
                                }
                                index += 1
                                closed = true
                                break
                            } else if atEOF {
                                index += 1
                                closed = true
                                break
                            } else {
                                return .needMore
                            }
                        }
                        if byte == 10 { newlines += 1 }
                        scratch.append(byte)
                        index += 1
                    }
                    if !closed { return .needMore }
                    // Lenient: anything up to the separator after the closing quote is data.
                    while index < limit, bytes[index] != UInt8(ascii: ","), bytes[index] != 10,
                          !(bytes[index] == 13 && (index + 1 < limit && bytes[index + 1] == 10)) {
                        if bytes[index] == 13 && index + 1 == limit && !atEOF { return .needMore }
                        scratch.append(bytes[index])
                        index += 1
                    }
                    ranges.append(FieldRange(inScratch: true, start: scratchStart, count: scratch.count - scratchStart))
                } else {
                    let fieldStart = index
                    while index < limit {
                        let byte = bytes[index]
                        if byte == UInt8(ascii: ",") || byte == 10 { break }
                        if byte == 13 {
                            if index + 1 < limit {
                                if bytes[index + 1] == 10 { break }
                            } else if !atEOF {
                                return .needMore
                            }
                        }
                        index += 1
                    }
                    if index == limit && !atEOF { return .needMore }
                    ranges.append(FieldRange(inScratch: false, start: fieldStart, count: index - fieldStart))
                }
                // After a field: a separator, the end of the record, or the end of the input.
                if index == limit {
                    if !atEOF { return .needMore }
                    return .complete(consumed: index - start, newlines: newlines)
                }
                let byte = bytes[index]
                if byte == UInt8(ascii: ",") {
                    index += 1
                    if index == limit && !atEOF { return .needMore }
                    if index == limit {
                        ranges.append(FieldRange(inScratch: false, start: index, count: 0))
                        return .complete(consumed: index - start, newlines: newlines)
                    }
                    continue
                }
                if byte == 13 { index += 1 }
                // byte is LF now
                index += 1
                newlines += 1
                return .complete(consumed: index - start, newlines: newlines)
            }
        }
    }

    /// Whether the record at `start` is cut off inside a quoted field (rather than merely long).
    private func openQuote() -> Bool {
        var quoted = false
        var fieldStart = true
        var index = start
        while index < end {
            let byte = buffer[index]
            if quoted {
                if byte == UInt8(ascii: "\"") {
                    if index + 1 < end, buffer[index + 1] == UInt8(ascii: "\"") { index += 2; continue }
                    quoted = false
                }
            } else if byte == UInt8(ascii: "\""), fieldStart {
                quoted = true
            } else if byte == UInt8(ascii: ",") {
                fieldStart = true
                index += 1
                continue
            } else if byte == 10 {
                return false
            }
            fieldStart = false
            index += 1
        }
        return quoted
    }

    /// Moves past the end of the line at `start` (reading on, a chunk at a time, without keeping
    /// what it skips), or to the end of the input.
    private mutating func skipLine() throws {
        while true {
            if let newline = buffer[start..<end].firstIndex(of: 10) {
                start = newline + 1
                line += 1
                return
            }
            start = end
            if atEOF { return }
            try fill(minimum: 1)
            if start == end && atEOF { return }
        }
    }

    /// Makes at least `minimum` unread bytes available (fewer at the end of the file), moving the
    /// unread part to the front and growing the buffer when one record is larger than it.
    private mutating func fill(minimum: Int) throws {
        if let failure = ChunkedRead.fill(
            descriptor: descriptor, buffer: &buffer, start: &start, end: &end, atEOF: &atEOF,
            minimum: minimum, chunkSize: chunkSize, willWait: willWait) {
            throw CSVError(file: file, line: line, message: "read failed: \(String(cString: strerror(failure)))")
        }
    }

    /// Whether a read of `descriptor` would return at once (data, or the end of the input).
    static func readable(_ descriptor: Int32) -> Bool {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&poller, 1, 0) != 0
    }
}

/// Reading a descriptor into a buffer a chunk at a time: the one loop `CSVReader` and
/// `LineReader` share.
package enum ChunkedRead {
    /// Moves the unread bytes (`start..<end`) to the front, then reads until at least `minimum`
    /// are unread or the input ends, growing `buffer` by a chunk when less than half a chunk is
    /// free. `willWait` runs before a read that would wait. Returns errno when a read fails.
    package static func fill(
        descriptor: Int32, buffer: inout [UInt8], start: inout Int, end: inout Int, atEOF: inout Bool,
        minimum: Int, chunkSize: Int, willWait: (() -> Void)?
    ) -> Int32? {
        guard descriptor >= 0 else {
            atEOF = true
            return nil
        }
        if start > 0 {
            let unread = end - start
            if unread > 0 {
                let from = start
                buffer.withUnsafeMutableBytes { raw in _ = memmove(raw.baseAddress!, raw.baseAddress! + from, unread) }
            }
            start = 0
            end = unread
        }
        while end - start < minimum && !atEOF {
            if buffer.count - end < max(1, chunkSize / 2) {
                buffer.append(contentsOf: repeatElement(0, count: max(chunkSize, buffer.count)))
            }
            if let willWait, !CSVReader.readable(descriptor) { willWait() }
            let offset = end
            let count = buffer.withUnsafeMutableBytes { raw in read(descriptor, raw.baseAddress! + offset, raw.count - offset) }
            if count < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if count == 0 { atEOF = true } else { end += count }
        }
        return nil
    }
}
