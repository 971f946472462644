import Testing
@testable import PostgresClient
import Contract
import KPIModel
import StreamRuntime
import WarehouseSink
import KPIStore
import DataGenerator
import RedisWire
import RedisClient

@Suite struct PostgresEncodingTests {
    @Test func arrayLiteralsQuoteAndEscape() {
        #expect(PostgresBind.arrayLiteral([]) == "{}")
        #expect(PostgresBind.arrayLiteral(["a", nil, "NULL"]) == #"{"a",NULL,"NULL"}"#)
        #expect(PostgresBind.arrayLiteral([#"say "hi""#, #"back\slash"#, "{,}"]) == #"{"say \"hi\"","back\\slash","{,}"}"#)
        #expect(PostgresBind.arrayLiteral(["'); DROP TABLE x; --"]) == #"{"'); DROP TABLE x; --"}"#)
    }

    @Test func copyTextFormatEscapes() {
        var copy = PostgresCopyEncoder()
        copy.add("tab\there"); copy.add("line\nbreak\r"); copy.add(#"back\slash"#); copy.addNull(); copy.add(42)
        copy.endRow()
        copy.add("é"); copy.add(nil as String?); copy.addVerbatim("1.50")
        copy.endRow()
        #expect(String(decoding: copy.bytes, as: UTF8.self)
            == "tab\\there\tline\\nbreak\\r\tback\\\\slash\t\\N\t42\né\t\\N\t1.50\n")
        #expect(copy.rows == 2)
    }

    @Test func failedConnectionsNameTheirCause() {
        #expect(PostgresError.connectionState(#"connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed for user "w""#) == "28P01")
        #expect(PostgresError.connectionState(#"FATAL:  database "nope" does not exist"#) == "3D000")
        #expect(PostgresError.connectionState(#"FATAL:  role "nobody" does not exist"#) == "28000")
        #expect(PostgresError.connectionState(#"FATAL:  no pg_hba.conf entry for host "10.0.0.1""#) == "28000")
        #expect(PostgresError.connectionState("FATAL:  the database system is starting up") == "57P03")
        #expect(PostgresError.connectionState("FATAL:  sorry, too many clients already") == "53300")
        #expect(PostgresError.connectionState(#"connection to server at "127.0.0.1", port 1 failed: Connection refused"#) == nil)
    }

    @Test func descriptionLeavesOutDetail() {
        let error = PostgresError(
            .server, "duplicate key value violates unique constraint \"t_pkey\"", sqlState: "23505",
            detail: "Key (id)=(secret-value) already exists.", constraint: "t_pkey")
        #expect(!error.description.contains("secret-value"))
        #expect(error.description.contains("23505"))
    }

    @Test func decodesTextValues() throws {
        let index = ColumnIndex([
            PostgresColumn(name: "n", typeOID: 20), PostgresColumn(name: "b", typeOID: 16),
            PostgresColumn(name: "x", typeOID: 25), PostgresColumn(name: "bytes", typeOID: 17),
        ])
        let row = PostgresRow(values: ["-42", "t", nil, "\\x00ff10"], index: index)
        #expect(try row.decode(Int.self, column: "n") == -42)
        #expect(try row.decode(Bool.self, column: "b"))
        #expect(try row.decode(String?.self, column: "x") == nil)
        #expect(try row.decode([UInt8].self, column: "bytes") == [0x00, 0xff, 0x10])
        #expect(throws: PostgresError.self) { try row.decode(String.self, column: "x") }
        #expect(throws: PostgresError.self) { try row.decode(Int.self, column: "b") }
        #expect(throws: PostgresError.self) { try row.decode(Int.self, column: "missing") }
    }
}
