import Foundation
import PostgresClient
import RedisClient
import Testing
import Contract
import KPIModel
import StreamRuntime
import WarehouseSink
import KPIStore
import DataGenerator
import RedisWire
import Dashboard

/// Every row of data/README.md's table of hostile values, through replay and through
/// `produce --stdin`: stored byte for byte (warehouse and KPIs) or rejected with its code.
@Suite(.serialized) struct HostileInputTests {
    struct Case {
        var name: String
        var value: [UInt8]
        /// nil: stored; else the rejection code.
        var rejected: String?
    }

    /// The table between the `hostile-values` markers of data/README.md.
    static func cases() throws -> [Case] {
        let text = try String(contentsOfFile: TestServers.packageRoot.appendingPathComponent("data/README.md").path, encoding: .utf8)
        let start = try #require(text.range(of: "<!-- hostile-values"))
        let end = try #require(text.range(of: "<!-- /hostile-values -->"))
        var out: [Case] = []
        for line in text[start.upperBound..<end.lowerBound].split(separator: "\n") where line.hasPrefix("| ") && !line.hasPrefix("| case") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 4 else { continue }
            let value = String(cells[2].dropFirst().dropLast())   // inside the backticks
            let outcome = cells[3]
            out.append(Case(name: cells[1], value: try decode(value),
                            rejected: outcome.hasPrefix("rejected: ") ? String(outcome.dropFirst("rejected: ".count)) : nil))
            try #require(outcome == "stored" || outcome.hasPrefix("rejected: "), "unknown outcome \(outcome)")
        }
        return out
    }

    /// The table's escapes: `\n`, `\r`, `\0`, `\xHH`, `\u{H…}`, `{x*N}`.
    static func decode(_ text: String) throws -> [UInt8] {
        if text.hasPrefix("{"), text.hasSuffix("}"), let star = text.firstIndex(of: "*") {
            let unit = Array(text[text.index(after: text.startIndex)..<star].utf8)
            let count = try #require(Int(text[text.index(after: star)..<text.index(before: text.endIndex)]))
            return Array([[UInt8]](repeating: unit, count: count).joined())
        }
        var out: [UInt8] = []
        var characters = Array(text.unicodeScalars)[...]
        while let scalar = characters.popFirst() {
            guard scalar == "\\", let next = characters.popFirst() else { out += Array(String(scalar).utf8); continue }
            switch next {
            case "n": out.append(10)
            case "r": out.append(13)
            case "0": out.append(0)
            case "x":
                let hex = String(String.UnicodeScalarView(characters.prefix(2)))
                characters = characters.dropFirst(2)
                out.append(try #require(UInt8(hex, radix: 16)))
            case "u":
                let close = try #require(characters.firstIndex(of: "}"))
                let hex = String(String.UnicodeScalarView(characters[characters.index(after: characters.startIndex)..<close]))
                characters = characters[characters.index(after: close)...]
                let code = try #require(UInt32(hex, radix: 16))
                let scalar = try #require(Unicode.Scalar(code))
                out += Array(String(scalar).utf8)
            default: out += Array(String(next).utf8)
            }
        }
        return out
    }

    /// One CSV field holding `bytes` exactly (quoted when it must be).
    static func field(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.contains(where: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 10 || $0 == 13 }) else { return bytes }
        var out: [UInt8] = [UInt8(ascii: "\"")]
        for byte in bytes {
            out.append(byte)
            if byte == UInt8(ascii: "\"") { out.append(byte) }
        }
        return out + [UInt8(ascii: "\"")]
    }

    /// Records to append per file: case i is customer C9i (its last_name), product P9i (its
    /// category) and an order line H9i of P9i. Returns the bytes and, per case, the line each record starts on.
    static func records(_ cases: [Case], customerLine: Int, productLine: Int) -> (customers: [UInt8], products: [UInt8], orders: [UInt8], lines: [(Int, Int)]) {
        var customers: [UInt8] = [], products: [UInt8] = [], orders: [UInt8] = []
        var lines: [(Int, Int)] = []
        var customerAt = customerLine, productAt = productLine
        for (index, item) in cases.enumerated() {
            lines.append((customerAt, productAt))
            let customer = Array("C9\(index),Hostile,".utf8) + field(item.value) + Array(",h\(index)@example.com,Austin,TX,US,Standard,2023-01-01,2024-06-01T00:00:00Z\n".utf8)
            let product = Array("P9\(index),Hostile \(index),".utf8) + field(item.value) + Array(",S01,10.00,5.00,2024-06-01T00:00:00Z\n".utf8)
            customers += customer
            products += product
            customerAt += customer.filter { $0 == 10 }.count
            productAt += product.filter { $0 == 10 }.count
            orders += Array("H9\(index),1,C001,P9\(index),1,10.00,0,placed,2024-06-02T00:00:00Z,2024-06-02T00:00:00Z\n".utf8)
        }
        return (customers, products, orders, lines)
    }

    static func append(_ bytes: [UInt8], to path: String) throws {
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(bytes))
        try handle.close()
    }

    /// Loads `layout` into a fresh warehouse and aggregates it; checks every case's outcome.
    static func check(_ cases: [Case], layout: StreamLayout, rejectedLines: (Int) -> [String]?) async throws {
        let redis = try await TestServers.redis()
        let warehouse = try await WarehouseFixture.make()
        try await warehouse.load(layout, redis: redis, batch: 100)
        try await KPITests.aggregate(layout)
        let snapshot = try await KPISnapshot.read(KPIKeys(layout: layout), on: redis)
        let dead = try await redis.xrange(layout.deadLetterKey, count: 10_000)
        for (index, item) in cases.enumerated() {
            let name = try await warehouse.postgres.query("SELECT convert_to(last_name, 'UTF8') FROM dim_customers WHERE customer_id = $1", [.text("C9\(index)")])
            let category = try await warehouse.postgres.query(
                "SELECT convert_to(category, 'UTF8') FROM dim_products WHERE product_id = $1 AND NOT is_inferred", [.text("P9\(index)")])
            if item.rejected == nil {
                let value = String(decoding: item.value, as: UTF8.self)
                #expect(name.first?[0] == Self.byteaHex(item.value), "\(item.name): last_name stored byte for byte")
                #expect(category.first?[0] == Self.byteaHex(item.value), "\(item.name): category stored byte for byte")
                #expect(snapshot.totals["revenue:category:\(value)"] == "10.00", "\(item.name): the KPI by category has it as its key")
            } else {
                #expect(name.rows.isEmpty && category.rows.isEmpty, "\(item.name): nothing stored")
                if let lines = rejectedLines(index) {
                    for line in lines {
                        #expect(dead.contains { $0["source"] == line && $0["code"] == item.rejected }, "\(item.name): \(line) dead-lettered as \(item.rejected!)")
                    }
                }
            }
        }
        // The order lines of every case load (a rejected product is a late-arriving member).
        let orders = try await warehouse.postgres.query("SELECT count(*) FROM fact_sales WHERE order_id LIKE 'H9%'")
        #expect(orders.first?[0] == String(cases.count))
        let reconcile = try await TestServers.runWarehouse(["reconcile", "--namespace", layout.namespace], environment: ["DATABASE_URL": warehouse.url])
        #expect(reconcile.status == 0, "KPIs equal SQL over the warehouse: \(reconcile.stdout)")
        // Nothing ran: both servers still hold what they held.
        #expect(try await warehouse.postgres.query("SELECT count(*) FROM dim_customers").first?[0] != "0")
        #expect(try await redis.command("DBSIZE").int ?? 0 > 0)
    }

    static func byteaHex(_ bytes: [UInt8]) -> String {
        "\\x" + bytes.map { String(format: "%02x", $0) }.joined()
    }

    @Test(.timeLimit(.minutes(5)))
    func everyHostileValueThroughReplay() async throws {
        let cases = try Self.cases()
        #expect(cases.count >= 9)
        let folder = try LimitsTests.sampleCopy()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let customerLine = try LimitsTests.lines(of: folder + "/customers.csv") + 1
        let productLine = try LimitsTests.lines(of: folder + "/products.csv") + 1
        let records = Self.records(cases, customerLine: customerLine, productLine: productLine)
        try Self.append(records.customers, to: folder + "/customers.csv")
        try Self.append(records.products, to: folder + "/products.csv")
        try Self.append(records.orders, to: folder + "/orders.csv")
        let layout = StreamLayout(namespace: TestServers.unique("swhost"))
        let replay = try await TestServers.runWarehouse(["replay", "--data", folder, "--namespace", layout.namespace, "--max-record-bytes", String(1 << 20)])
        #expect(replay.status == 0, "\(replay.stderr)")
        try await Self.check(cases, layout: layout) { index in
            ["customers.csv:\(records.lines[index].0)", "products.csv:\(records.lines[index].1)"]
        }
    }

    @Test(.timeLimit(.minutes(5)))
    func everyHostileValueThroughProduce() async throws {
        let cases = try Self.cases()
        let layout = StreamLayout(namespace: TestServers.unique("swhostp"))
        // The sample first (the order lines need customer C001), then each entity's hostile records on stdin.
        let replay = try await TestServers.runWarehouse(["replay", "--data", SampleExpectations.dataFolder, "--namespace", layout.namespace])
        #expect(replay.status == 0)
        let records = Self.records(cases, customerLine: 2, productLine: 2)
        var stderr = ""
        for (entity, header, body) in [
            ("customers", "customer_id,first_name,last_name,email,city,state,country,segment,signup_date,updated_at\n", records.customers),
            ("products", "product_id,name,category,supplier_id,unit_price,unit_cost,updated_at\n", records.products),
            ("orders", "order_id,line_number,customer_id,product_id,quantity,unit_price,discount,status,order_ts,updated_at\n", records.orders),
        ] {
            let run = try await TestServers.runWarehouse(
                ["produce", "--stdin", "--entity", entity, "--format", "csv", "--namespace", layout.namespace],
                stdinBytes: Data(Array(header.utf8) + body))
            let anyRejected = entity != "orders" && cases.contains { $0.rejected != nil }
            #expect(run.status == (anyRejected ? 1 : 0), "\(entity): \(run.stderr.prefix(2000))")
            stderr += run.stderr
        }
        for (index, item) in cases.enumerated() {
            guard let code = item.rejected else { continue }
            let words = ["invalid_utf8": "UTF-8", "nul_byte": "NUL", "record_too_long": "--max-record-bytes"][code] ?? code
            #expect(stderr.contains("stdin:\(records.lines[index].0)") && stderr.contains(words), "\(item.name): produce says why")
        }
        try await Self.check(cases, layout: layout) { _ in nil }
    }

    /// JSON lines with bytes that are not UTF-8 inside a string are rejected, not stored with
    /// U+FFFD in their place (JSON's own parser would accept the replaced text).
    @Test func jsonLinesThatAreNotUTF8AreRejected() async throws {
        let layout = StreamLayout(namespace: TestServers.unique("swjsu"))
        let good = #"{"customer_id":"CJ1","first_name":"A","last_name":"B","country":"US","segment":"Standard","updated_at":"2024-01-01T00:00:00Z"}"#
        let bad = Array(#"{"customer_id":"CJ2","first_name":"Jos"#.utf8) + [0xE9]
            + Array(#"","last_name":"B","country":"US","segment":"Standard","updated_at":"2024-01-01T00:00:00Z"}"#.utf8)
        let run = try await TestServers.runWarehouse(
            ["produce", "--stdin", "--entity", "customers", "--format", "jsonl", "--namespace", layout.namespace],
            stdinBytes: Data(Array(good.utf8) + [10] + bad + [10]))
        #expect(run.status == 1)
        #expect(run.stderr.contains("stdin:2") && run.stderr.contains("not valid UTF-8"), "\(run.stderr)")
        let redis = try await TestServers.redis()
        let published = try await redis.xrange(layout.streamKey(.customers, partition: 0)).compactMap { $0["customer_id"] }
        #expect(published == ["CJ1"])
    }

    /// The file-level rows of the table: 10,000 columns, an empty file, a header only, a BOM in
    /// the middle.
    @Test func hostileFiles() async throws {
        let redis = try await TestServers.redis()
        // 10,000 columns: the contract's 10 and 9,990 unknown ones.
        let wide = try LimitsTests.sampleCopy()
        defer { try? FileManager.default.removeItem(atPath: wide) }
        let extra = (1...9_990).map { "extra_\($0)" }
        var text = "customer_id,first_name,last_name,email,city,state,country,segment,signup_date,updated_at," + extra.joined(separator: ",") + "\n"
        let filler = String(repeating: ",v", count: 9_990)
        for index in 1...3 { text += "CW\(index),Wide,Row,w@example.com,Austin,TX,US,Standard,2023-01-01,2024-01-01T00:00:00Z\(filler)\n" }
        try text.write(toFile: wide + "/customers.csv", atomically: true, encoding: .utf8)
        let layout = StreamLayout(namespace: TestServers.unique("swwide"))
        let run = try await TestServers.runWarehouse(["replay", "--data", wide, "--namespace", layout.namespace])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("ignoring 9990 unknown column(s): extra_1, extra_2"), "\(run.stderr.prefix(500))")
        #expect(run.stderr.utf8.count < 2_000, "the warning is bounded")
        #expect(try await redis.xlen(layout.streamKey(.customers, partition: 0)) == 3)

        // An empty file: refused, naming it.
        let empty = try LimitsTests.sampleCopy()
        defer { try? FileManager.default.removeItem(atPath: empty) }
        try "".write(toFile: empty + "/customers.csv", atomically: true, encoding: .utf8)
        let refused = try await TestServers.runWarehouse(["replay", "--data", empty, "--namespace", TestServers.unique("swempty")])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("customers.csv is empty: it needs at least a header row"), "\(refused.stderr)")

        // A header only: nothing published, nothing rejected.
        try "customer_id,first_name,last_name,email,city,state,country,segment,signup_date,updated_at\n"
            .write(toFile: empty + "/customers.csv", atomically: true, encoding: .utf8)
        let headerOnly = StreamLayout(namespace: TestServers.unique("swhdr"))
        let quiet = try await TestServers.runWarehouse(["replay", "--data", empty, "--namespace", headerOnly.namespace, "--json"])
        #expect(quiet.status == 0, "\(quiet.stderr)")
        #expect(try await redis.command("EXISTS", headerOnly.streamKey(.customers, partition: 0)).int == 0)
        #expect(try await redis.xrange(headerOnly.deadLetterKey).filter { $0["file"] == "customers.csv" }.isEmpty)

        // Two exports concatenated: the second one's BOM and header are a bad row, with its line.
        let joined = try LimitsTests.sampleCopy()
        defer { try? FileManager.default.removeItem(atPath: joined) }
        let sample = try String(contentsOfFile: SampleExpectations.dataFolder + "/customers.csv", encoding: .utf8)
        let firstLines = sample.split(separator: "\n").count
        try (sample + "\u{FEFF}customer_id,first_name,last_name,email,city,state,country,segment,signup_date,updated_at\n"
             + "CB1,After,Bom,b@example.com,Austin,TX,US,Standard,2023-01-01,2024-01-01T00:00:00Z\n")
            .write(toFile: joined + "/customers.csv", atomically: true, encoding: .utf8)
        let bom = StreamLayout(namespace: TestServers.unique("swbom"))
        let concatenated = try await TestServers.runWarehouse(["replay", "--data", joined, "--namespace", bom.namespace])
        #expect(concatenated.status == 0, "\(concatenated.stderr)")
        let dead = try await redis.xrange(bom.deadLetterKey).filter { $0["file"] == "customers.csv" && $0["line"] == String(firstLines + 1) }
        #expect(dead.count == 1, "the second header is rejected with its line")
        #expect(try await redis.xrange(bom.streamKey(.customers, partition: 0), count: 1000).contains { $0["customer_id"] == "CB1" })
    }
}
