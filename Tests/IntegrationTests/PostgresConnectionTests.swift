import Foundation
import PostgresClient
import Testing
import Contract
import KPIModel
import StreamRuntime
import WarehouseSink
import KPIStore
import DataGenerator
import RedisWire
import RedisClient
import Dashboard

@Suite struct PostgresConnectionTests {
    @Test func copiesOneHundredThousandRows() async throws {
        let postgres = try await TestServers.postgres()
        let table = TestServers.unique("copy_test")
        try await postgres.executeScript("CREATE TABLE \(table) (id bigint PRIMARY KEY, name text, note text, amount numeric(12,2))")
        var encoder = PostgresCopyEncoder()
        var chunks: [[UInt8]] = []
        for index in 0..<100_000 {
            encoder.add(index)
            encoder.add("name \(index)\twith tab")
            if index % 10 == 0 { encoder.addNull() } else { encoder.add("line\nbreak \\ \(index)") }
            encoder.addVerbatim("\(index % 1000).25")
            encoder.endRow()
            if encoder.bytes.count > 300_000 { chunks.append(encoder.bytes); encoder.removeAll() }
        }
        chunks.append(encoder.bytes)
        #expect(try await postgres.copyIn("COPY \(table) (id, name, note, amount) FROM STDIN", chunks: chunks) == 100_000)
        let summary = try #require(try await postgres.query(
            "SELECT count(*), sum(id), count(note), sum(amount)::text FROM \(table)").first)
        #expect(try summary.decode(Int.self, at: 0) == 100_000)
        #expect(try summary.decode(Int.self, at: 1) == 4_999_950_000)
        #expect(try summary.decode(Int.self, at: 2) == 90_000)
        #expect(summary[3] == "49975000.00")
        let row = try #require(try await postgres.query("SELECT name, note FROM \(table) WHERE id = $1", [7]).first)
        #expect(row["name"] == "name 7\twith tab")
        #expect(row["note"] == "line\nbreak \\ 7")
        try await postgres.executeScript("DROP TABLE \(table)")
    }

    @Test func copyWithBadDataFailsAndLeavesConnectionUsable() async throws {
        let postgres = try await TestServers.postgres()
        let table = TestServers.unique("copy_bad")
        try await postgres.executeScript("CREATE TABLE \(table) (id bigint)")
        await #expect(throws: PostgresError.self) {
            try await postgres.copyIn("COPY \(table) FROM STDIN", data: Array("1\nnot-a-number\n".utf8))
        }
        #expect(try await postgres.query("SELECT count(*) FROM \(table)").first?[0] == "0")
        try await postgres.executeScript("DROP TABLE \(table)")
    }

    @Test func throwingTransactionLeavesNothingBehind() async throws {
        let postgres = try await TestServers.postgres()
        let table = TestServers.unique("tx_test")
        try await postgres.executeScript("CREATE TABLE \(table) (id int PRIMARY KEY)")
        struct Planned: Error {}
        await #expect(throws: Planned.self) {
            try await postgres.withTransaction { connection in
                try await connection.execute("INSERT INTO \(table) VALUES ($1), ($2)", [1, 2])
                #expect(try await connection.query("SELECT count(*) FROM \(table)").first?[0] == "2")
                throw Planned()
            }
        }
        #expect(try await postgres.query("SELECT count(*) FROM \(table)").first?[0] == "0")
        #expect(await postgres.inTransaction == false)

        // A failing statement inside rolls back too, and a nested savepoint can fail alone.
        await #expect(throws: PostgresError.self) {
            try await postgres.withTransaction { connection in
                try await connection.execute("INSERT INTO \(table) VALUES (1)")
                try await connection.execute("INSERT INTO \(table) VALUES (1)")
            }
        }
        #expect(try await postgres.query("SELECT count(*) FROM \(table)").first?[0] == "0")
        let committed = try await postgres.withTransaction { connection -> Int in
            try await connection.execute("INSERT INTO \(table) VALUES (10)")
            _ = try? await connection.withTransaction { inner in
                try await inner.execute("INSERT INTO \(table) VALUES (10)")
            }
            try await connection.execute("INSERT INTO \(table) VALUES (11)")
            return 2
        }
        #expect(committed == 2)
        #expect(try await postgres.query("SELECT array_agg(id ORDER BY id)::text FROM \(table)").first?[0] == "{10,11}")
        try await postgres.executeScript("DROP TABLE \(table)")
    }

    @Test func hostileParametersAreStoredVerbatim() async throws {
        let postgres = try await TestServers.postgres()
        let table = TestServers.unique("params")
        try await postgres.executeScript("CREATE TABLE \(table) (id int, value text)")
        let hostile = [
            "'); DROP TABLE \(table); --",
            "it's \"quoted\"; semi;colons",
            #"back\slash \\ and \N and \x00"#,
            "Zoë Ångström — 北京 🚀",
            "{\"a\",NULL}",
            "",
        ]
        for (index, value) in hostile.enumerated() {
            try await postgres.execute("INSERT INTO \(table) VALUES ($1, $2)", [PostgresBind(index), .text(value)])
        }
        let rows = try await postgres.query("SELECT value FROM \(table) ORDER BY id")
        #expect(rows.rows.map { $0[0] } == hostile)
        // The same values as array elements of one unnest batch.
        try await postgres.execute("DELETE FROM \(table)")
        try await postgres.execute(
            "INSERT INTO \(table) SELECT * FROM unnest($1::int[], $2::text[])",
            [PostgresBind(Array(0..<hostile.count)), PostgresBind(hostile)])
        let fromArray = try await postgres.query("SELECT value FROM \(table) ORDER BY id")
        #expect(fromArray.rows.map { $0[0] } == hostile)
        let nulls = try await postgres.query("SELECT unnest($1::text[]) AS v", [.array([nil, "NULL", "x"])])
        #expect(nulls.rows.map { $0["v"] } == [nil, "NULL", "x"])
        #expect(try await postgres.query("SELECT to_regclass($1) IS NOT NULL", [.text(table)]).first?[0] == "t")
        try await postgres.executeScript("DROP TABLE \(table)")
    }

    @Test func typedValuesAndBytea() async throws {
        let postgres = try await TestServers.postgres()
        let bytes = (0...255).map(UInt8.init)
        let row = try #require(try await postgres.query(
            "SELECT $1::bigint AS n, $2::bool AS b, $3::float8 AS d, $4::text AS t, $5::bytea AS raw",
            [PostgresBind(Int64.min + 1), true, 2.5, nil, .bytea(bytes)]).first)
        #expect(try row.decode(Int64.self, column: "n") == Int64.min + 1)
        #expect(try row.decode(Bool.self, column: "b"))
        #expect(try row.decode(Double.self, column: "d") == 2.5)
        #expect(try row.decode(String?.self, column: "t") == nil)
        #expect(try row.decode([UInt8].self, column: "raw") == bytes)
    }

    @Test func serverErrorsCarrySQLState() async throws {
        let postgres = try await TestServers.postgres()
        let table = TestServers.unique("errors")
        try await postgres.executeScript("CREATE TABLE \(table) (id int PRIMARY KEY)")
        try await postgres.execute("INSERT INTO \(table) VALUES (424242)")
        do {
            try await postgres.execute("INSERT INTO \(table) VALUES ($1)", [424242])
            Issue.record("duplicate key should fail")
        } catch let error as PostgresError {
            #expect(error.code == .server)
            #expect(error.sqlState == "23505")
            #expect(error.detail?.contains("424242") == true)
            #expect(!error.description.contains("424242"), "description must not print values")
        }
        do {
            try await postgres.query("SELECT * FROM \(table)_missing")
        } catch let error as PostgresError {
            #expect(error.sqlState == "42P01")
        }
        #expect(try await postgres.query("SELECT 1").first?[0] == "1")
        try await postgres.executeScript("DROP TABLE \(table)")
    }

    @Test func terminatedBackendReportsThenReconnects() async throws {
        let postgres = try await TestServers.postgres()
        let admin = try await TestServers.postgres()
        let pid = try await postgres.backendPID()
        #expect(try await admin.query("SELECT pg_terminate_backend($1)", [PostgresBind(Int(pid))]).first?[0] == "t")
        do {
            try await postgres.query("SELECT 1")
            Issue.record("a terminated connection should fail once")
        } catch let error as PostgresError {
            #expect(error.code == .connection)
            #expect(FailureClass.of(error) == .transient)
        }
        #expect(try await postgres.query("SELECT 1").first?[0] == "1")
        #expect(await postgres.connects == 2)
        #expect(try await postgres.backendPID() != pid)
    }

    /// Prepared statements: run by name after the first time (the server's pg_prepared_statements
    /// lists them), with the same results; a statement that does not parse is reported as before
    /// and not kept; a new session after a lost connection prepares again.
    @Test func preparedStatementsAreKeptPerSession() async throws {
        let postgres = try await TestServers.postgres()
        let admin = try await TestServers.postgres()
        await postgres.setPreparesStatements(true)
        let sql = "SELECT sum(x)::bigint FROM unnest($1::int[]) AS x WHERE x > $2"
        for round in 1...7 {
            let rows = try await postgres.query(sql, [PostgresBind([1, 2, 3, round]), PostgresBind(1)])
            #expect(rows.first?[0] == String(5 + (round > 1 ? round : 0)))
        }
        let listed = "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1"
        #expect(try await postgres.query(listed, [.text(sql)]).first?[0] == "1")
        do {
            try await postgres.query("SELEC $1::int", [PostgresBind(1)])
            Issue.record("a statement that does not parse must fail")
        } catch let error as PostgresError {
            #expect(error.sqlState == "42601")
        }
        #expect(try await postgres.query("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE $1", [.text("SELEC %")])
            .first?[0] == "0")

        let pid = try await postgres.backendPID()
        _ = try await admin.query("SELECT pg_terminate_backend($1)", [PostgresBind(Int(pid))])
        _ = try? await postgres.query("SELECT 1")
        #expect(try await postgres.query(sql, [PostgresBind([4, 5]), PostgresBind(0)]).first?[0] == "9")
        #expect(await postgres.connects == 2)
    }

    @Test func connectsFromAKeywordString() async throws {
        let url = try #require(URLComponents(string: try TestServers.databaseURL()))
        var keywords = "host=\(url.host ?? "127.0.0.1") port=\(url.port ?? 5432) dbname=\(url.path.dropFirst())"
        if let user = url.user { keywords += " user=\(user)" }
        let postgres = try await PostgresConnection(keywords)
        #expect(try await postgres.query("SELECT current_database()").first?[0] == String(url.path.dropFirst()))
    }

    @Test func unreachableServerIsAConnectionError() async throws {
        do {
            _ = try await PostgresConnection("postgresql://nobody:secret-pw@127.0.0.1:1/none", connectTimeout: .seconds(1))
            Issue.record("connecting to a closed port should fail")
        } catch let error as PostgresError {
            #expect(error.code == .connection)
            #expect(FailureClass.of(error) == .transient)
            #expect(!error.description.contains("secret-pw"))
        }
    }
}
