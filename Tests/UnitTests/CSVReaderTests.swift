import Foundation
import Testing
@testable import Contract
@testable import KPIModel
@testable import StreamRuntime
@testable import WarehouseSink
@testable import KPIStore
@testable import DataGenerator
@testable import RedisWire
import RedisClient
import PostgresClient

@Suite struct CSVReaderTests {
    /// A reader over `text`: in memory, or from a file read `chunk` bytes at a time.
    private func reader(_ text: String, chunk: Int?) throws -> CSVReader {
        guard let chunk else { return CSVReader(bytes: Array(text.utf8), file: "t.csv") }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sw-csv-\(UUID().uuidString).csv").path
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        let reader = try CSVReader(path: path, file: "t.csv", chunkSize: chunk)
        try FileManager.default.removeItem(atPath: path)   // the open descriptor keeps the bytes readable
        return reader
    }

    private func records(_ text: String, chunk: Int? = nil) throws -> [(Int, [String])] {
        var reader = try reader(text, chunk: chunk)
        var out: [(Int, [String])] = []
        while let record = try reader.next() { out.append((record.line, record.fields)) }
        return out
    }

    @Test(arguments: [nil, 1, 2, 3, 7, 64])
    func rfc4180EdgeCases(chunk: Int?) throws {
        let text = "\u{FEFF}a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n,,\n\nlast,\"\",z"
        let result = try records(text, chunk: chunk)
        #expect(result.map(\.0) == [1, 2, 4, 6])
        #expect(result.map(\.1) == [["a", "b", "c"], ["x, y", "say \"hi\"", "two\nlines"], ["", "", ""], ["last", "", "z"]])
    }

    @Test(arguments: [nil, 5])
    func finalNewlineIsOptionalAndTrailingCommaMeansEmptyField(chunk: Int?) throws {
        #expect(try records("a,b\n1,2", chunk: chunk).map(\.1) == [["a", "b"], ["1", "2"]])
        #expect(try records("a,b\n1,\n", chunk: chunk).map(\.1) == [["a", "b"], ["1", ""]])
        #expect(try records("a,b\n1,", chunk: chunk).map(\.1) == [["a", "b"], ["1", ""]])
        #expect(try records("a\r\n", chunk: chunk).map(\.1) == [["a"]])
    }

    @Test(arguments: [nil, 1, 5, 64])
    func rawRecordsMatchStringRecords(chunk: Int?) throws {
        let text = "\u{FEFF}a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n,,\n\nlast,\"\",z\n\"q\"\"1\",\"q2\"\"\",plain"
        let expected = try records(text, chunk: chunk)
        var reader = try reader(text, chunk: chunk)
        var raw: [(Int, [String])] = []
        while let record = try reader.nextRaw({ line, fields in (line, fields.map { String(decoding: $0, as: UTF8.self) }) }) {
            raw.append(record)
        }
        #expect(raw.map(\.0) == expected.map(\.0))
        #expect(raw.map(\.1) == expected.map(\.1))
        #expect(raw.last?.1 == ["q\"1", "q2\"", "plain"])
    }

    @Test func nonASCIIAndStrayQuotes() throws {
        #expect(try records("José,Zoë 北京,ab\"c\n").map(\.1) == [["José", "Zoë 北京", "ab\"c"]])
        #expect(try records("\"ab\"c,d\n").map(\.1) == [["abc", "d"]])
    }

    /// Every record and every error, reading on after each error as replay does.
    private func recordsAndErrors(_ text: String, chunk: Int? = nil, limit: Int = CSVReader.defaultMaxRecordBytes) throws -> ([(Int, [String])], [CSVError], Int) {
        var reader: CSVReader
        if let chunk {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("sw-csv-\(UUID().uuidString).csv").path
            _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
            reader = try CSVReader(path: path, file: "t.csv", chunkSize: chunk, maxRecordBytes: limit)
            try FileManager.default.removeItem(atPath: path)
        } else {
            reader = CSVReader(bytes: Array(text.utf8), file: "t.csv", maxRecordBytes: limit)
        }
        var records: [(Int, [String])] = []
        var errors: [CSVError] = []
        var largest = 0
        while true {
            do {
                guard let record = try reader.next() else { break }
                records.append((record.line, record.fields))
            } catch let error as CSVError {
                errors.append(error)
            }
            largest = max(largest, reader.bufferCapacity)
        }
        return (records, errors, largest)
    }

    /// A quote left open to the end of the file costs its line only: the lines after it are read.
    @Test(arguments: [nil, 1, 4, 64])
    func unterminatedQuoteNamesTheLineAndReadingGoesOn(chunk: Int?) throws {
        let (records, errors, _) = try recordsAndErrors("a\nb\n\"open,\nmore\nlast\n", chunk: chunk)
        #expect(errors.map(\.line) == [3])
        #expect(errors.first?.file == "t.csv")
        #expect(errors.first?.message.contains("not closed") == true)
        #expect(records.map(\.0) == [1, 2, 4, 5])
        #expect(records.map(\.1) == [["a"], ["b"], ["more"], ["last"]])
    }

    /// An unclosed quote early in a large file never pulls the rest of it into memory: past the
    /// record limit the line is rejected and reading resumes on the next one.
    @Test func anUnclosedQuoteInALargeFileIsBoundedByTheRecordLimit() throws {
        var text = "id,name\n1,\"never closed\n"
        for index in 2...20_000 { text += "\(index),row \(index)\n" }
        let (records, errors, largest) = try recordsAndErrors(text, chunk: 4096, limit: 64 * 1024)
        #expect(errors.count == 1)
        #expect(errors.first?.line == 2)
        #expect(errors.first?.message.contains("not closed within 65536 bytes") == true, "\(errors)")
        #expect(records.count == 20_000)   // the header and rows 2…20000 (line 3 onwards)
        #expect(records.last?.1 == ["20000", "row 20000"])
        #expect(largest <= 64 * 1024 + 2 * 4096, "the buffer stayed near the limit (\(largest) bytes)")
    }

    @Test(arguments: [nil, 512])
    func aRecordLongerThanTheLimitIsRejectedAndSkipped(chunk: Int?) throws {
        let long = String(repeating: "x", count: 5000)
        let (records, errors, _) = try recordsAndErrors("a,b\n1,\(long)\n2,\"\(long)\"\n3,ok\n", chunk: chunk, limit: 1000)
        #expect(errors.map(\.line) == [2, 3])
        #expect(errors.first?.message.contains("longer than 1000 bytes") == true, "\(errors)")
        #expect(records.map(\.1) == [["a", "b"], ["3", "ok"]])
        #expect(records.last?.0 == 4)
    }

    @Test func fieldOfOneMegabyte() throws {
        let big = String(repeating: "x", count: 1 << 20)
        let quoted = String(repeating: "q\"\"", count: 100_000)
        var reader: CSVReader
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sw-csv-\(UUID().uuidString).csv").path
        _ = FileManager.default.createFile(atPath: path, contents: Data("id,payload\n1,\(big)\n2,\"\(quoted)\"\n".utf8))
        reader = try CSVReader(path: path, file: "t.csv", chunkSize: 4096, maxRecordBytes: 2 << 20)
        try FileManager.default.removeItem(atPath: path)
        var result: [(Int, [String])] = []
        while let record = try reader.next() { result.append((record.line, record.fields)) }
        #expect(result.count == 3)
        #expect(result[1].1[1].utf8.count == 1 << 20)
        #expect(result[2].1[1] == String(repeating: "q\"", count: 100_000))
        #expect(result[2].0 == 3)
    }
}

@Suite struct TimestampTests {
    @Test func parsesOffsetsAndFractions() throws {
        let z = try #require(Timestamp(iso8601: "2024-03-01T14:05:00Z"))
        #expect(Timestamp(iso8601: "2024-03-01T09:05:00-05:00") == z)
        #expect(Timestamp(iso8601: "2024-03-01T19:35:00+0530") == z)
        #expect(Timestamp(iso8601: "2024-03-01 14:05:00+00") == z)
        #expect(z.description == "2024-03-01T14:05:00Z")
        #expect(z.microseconds == 1_709_301_900_000_000)
        let fraction = try #require(Timestamp(iso8601: "2024-03-01T14:05:00.25Z"))
        #expect(fraction.microseconds == z.microseconds + 250_000)
        #expect(fraction.description == "2024-03-01T14:05:00.250000Z")
        #expect(Timestamp(iso8601: "2024-03-01T14:05:00.123456789Z")?.microseconds == z.microseconds + 123_456)
        #expect(Timestamp(iso8601: "1969-12-31T23:59:59Z")?.microseconds == -1_000_000)
        #expect(Timestamp(iso8601: "1969-12-31T23:59:59Z")?.description == "1969-12-31T23:59:59Z")
        #expect(Timestamp(iso8601: "2024-02-29T00:00:00Z") != nil)
        #expect(Timestamp(iso8601: "9999-12-31T23:59:59.999999Z")?.description == "9999-12-31T23:59:59.999999Z")
        #expect(Timestamp(iso8601: "0000-01-01T00:00:00Z")?.description == "0000-01-01T00:00:00Z")
        #expect(Timestamp(iso8601: "9999-12-31T23:55:00+05")?.description == "9999-12-31T18:55:00Z")
    }

    /// Found by the timestamp fuzzer: an offset that carries the instant out of years 0000–9999 in
    /// UTC gave a canonical form (`10000-01-01T04:55:00Z`) that does not parse back.
    @Test func rejectsOffsetsThatLeaveFourDigitYears() {
        #expect(Timestamp(iso8601: "9999-12-31T23:55:00-05") == nil)
        #expect(Timestamp(iso8601: "0000-01-01T00:30:00+01:00") == nil)
    }

    @Test func rejectsMalformed() {
        for bad in ["2024-03-01T14:05:00", "2024-03-01", "2024-13-01T00:00:00Z", "2023-02-29T00:00:00Z",
                    "2024-03-01T24:00:00Z", "2024-03-01T14:05Z", "yesterday", "2024-03-01T14:05:00.Z",
                    "2024-03-01T14:05:00+5", "2024-03-01T14:05:00Zjunk", ""] {
            #expect(Timestamp(iso8601: bad) == nil, "\(bad)")
        }
    }

    @Test func civilDatesRoundTrip() {
        for days in stride(from: Int64(-800_000), to: 800_000, by: 997) {
            let (y, m, d) = CivilDate.civilFromDays(days)
            #expect(CivilDate.daysFromCivil(year: y, month: m, day: d) == days)
        }
        #expect(CivilDate.parse("2024-01-31") == 19753)
        #expect(CivilDate.parse("2024-1-31") == nil)
    }
}

@Suite struct DecimalValueTests {
    @Test func parsesExactly() {
        #expect(DecimalValue("19.99") == DecimalValue(units: 1999, scale: 2))
        #expect(DecimalValue("-0.5")?.description == "-0.5")
        #expect(DecimalValue("7")?.description == "7")
        #expect(DecimalValue("19.990")?.normalized(minimumScale: 2).description == "19.99")
        #expect(DecimalValue("0.10") == DecimalValue("0.1"))
        for bad in ["", ".5", "5.", "1e5", "1,5", "1.2.3", "abc", "--1", "1234567890123456789"] {
            #expect(DecimalValue(bad) == nil, "\(bad)")
        }
    }

    @Test func lineNetRoundsHalfAwayFromZero() throws {
        // 3 × 19.99 × 0.9 = 53.973 → 53.97
        #expect(LineAmounts(quantity: 3, unitPrice: DecimalValue("19.99")!, discount: DecimalValue("0.1")!).netCents == 5397)
        // 1 × 0.05 × 0.5 = 0.025 → 0.03 (half away from zero, where binary floating point gives 0.02)
        #expect(LineAmounts(quantity: 1, unitPrice: DecimalValue("0.05")!, discount: DecimalValue("0.5")!).netCents == 3)
        // 7 × 1.15 = 8.05 exactly
        #expect(LineAmounts(quantity: 7, unitPrice: DecimalValue("1.15")!, discount: .zero).netCents == 805)
        #expect(LineAmounts(quantity: 2, unitPrice: DecimalValue("10.005")!, discount: .zero).grossCents == 2001)
        #expect(DecimalValue.formatCents(-1234) == "-12.34")
        #expect(DecimalValue.formatCents(5) == "0.05")
        #expect(DecimalValue("2.675")!.rescaled(to: 2).description == "2.68")
        #expect(DecimalValue("-2.675")!.rescaled(to: 2).description == "-2.68")
    }
}

@Suite struct XXHashTests {
    @Test func knownVectors() {
        #expect(XXHash64.hash("") == 0xEF46_DB37_51D8_E999)
        #expect(XXHash64.hash("abc") == 0x44BC_2CF5_AD77_0999)
        #expect(XXHash64.hash("Nobody inspects the spammish repetition") == 0xFBCE_A83C_8A37_8BF1)
        // The two-seed, one-pass form agrees with two single passes, for every length class.
        for length in [0, 1, 3, 4, 7, 8, 31, 32, 33, 64, 100, 257] {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            bytes.withUnsafeBufferPointer { buffer in
                let (a, b) = XXHash64.hash2(buffer, seeds: (0, 99))
                #expect(a == XXHash64.hash(buffer, seed: 0), "\(length)")
                #expect(b == XXHash64.hash(buffer, seed: 99), "\(length)")
            }
        }
    }
}
