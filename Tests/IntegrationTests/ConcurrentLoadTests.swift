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

/// A data set built to make concurrent loaders collide: few natural keys with dozens of versions
/// each (tracked attributes changing, sometimes not), order lines between them with status
/// changes, payments and movements, all published in shuffled order (so versions arrive out of
/// order and spread over every batch).
struct ManyVersionsDataSet {
    var customers = 20
    var customerVersions = 40
    var products = 10
    var productVersions = 40
    var orders = 4000
    var seed: UInt64 = 7

    /// Every event's stream key and fields, shuffled by `seed`.
    func events(layout: StreamLayout) throws -> [(key: String, fields: [String])] {
        var random = SplitMix64(seed: seed)
        func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }
        func chance(_ p: Double) -> Bool { Double(random.next() % 10_000) / 10_000 < p }
        let encoder = EventEncoder(layout: layout)
        var out: [(key: String, fields: [String])] = []
        var line = 1
        func add(_ validator: RowValidator, _ fields: [String]) throws {
            line += 1
            let row = try validator.validate(fields, line: line).get()
            out.append((encoder.streamKey(for: row), encoder.fields(row, source: "many:\(line)")))
        }
        let base = Timestamp(iso8601: "2024-01-01T00:00:00Z")!.microseconds
        func time(hours: Int, minutes: Int = 0) -> String {
            Timestamp(microseconds: base + Int64(hours * 3600 + minutes * 60) * 1_000_000).description
        }
        let customers = try RowValidator(entity: .customers, header: ["customer_id", "first_name", "city", "state", "country", "segment", "updated_at"])
        let products = try RowValidator(entity: .products, header: ["product_id", "name", "category", "supplier_id", "unit_price", "unit_cost", "updated_at"])
        let suppliers = try RowValidator(entity: .suppliers, header: ["supplier_id", "name", "country", "rating", "updated_at"])
        let orders = try RowValidator(entity: .orders, header: ["order_id", "line_number", "customer_id", "product_id", "quantity",
                                                                "unit_price", "discount", "status", "order_ts", "updated_at"])
        let payments = try RowValidator(entity: .payments, header: ["payment_id", "order_id", "method", "amount", "currency", "status", "paid_at"])
        let movements = try RowValidator(entity: .inventory, header: ["movement_id", "product_id", "movement_type", "quantity", "unit_cost", "moved_at"])
        let hours = 24 * 60
        for s in 0..<3 {
            for v in 0..<3 {
                try add(suppliers, ["S\(s)", "Supplier \(s) v\(v)", pick(["US", "DE", "JP"]), "\(1 + v).5", time(hours: v * 200 + s)])
            }
        }
        for c in 0..<self.customers {
            for v in 0..<customerVersions {
                // Days apart, a few hours of jitter; now and then a version that changes nothing tracked.
                let segment = v % 5 == 4 ? "Standard" : pick(["Standard", "Premium", "Business"])
                try add(customers, ["C\(c)", "Name\(v)", pick(["Austin", "Dallas", "Reno", "Boise"]), pick(["TX", "NV", "ID"]), "US",
                                    segment, time(hours: v * (hours / customerVersions) + Int(random.next() % 20))])
            }
        }
        for p in 0..<self.products {
            for v in 0..<productVersions {
                try add(products, ["P\(p)", "Product \(p)", pick(["Toys", "Books", "Garden"]), "S\(p % 3)",
                                   "\(10 + Int(random.next() % 5)).\(Int(random.next() % 100))", "4.25",
                                   time(hours: v * (hours / productVersions) + Int(random.next() % 30))])
            }
        }
        for o in 0..<self.orders {
            // Some orders before every version (they join the first period), most within the history.
            let placed = Int(random.next() % UInt64(hours + 48)) - 48
            let customer = "C\(Int(random.next() % UInt64(self.customers)))"
            let lines = 1 + Int(random.next() % 3)
            var total = 0
            for l in 1...lines {
                let product = "P\(Int(random.next() % UInt64(self.products)))"
                let quantity = 1 + Int(random.next() % 4)
                let price = "\(5 + Int(random.next() % 40)).\(Int(random.next() % 100))"
                total += quantity * 10
                let base = ["O\(o)", "\(l)", customer, product, "\(quantity)", price, chance(0.2) ? "0.1" : "0"]
                try add(orders, base + ["placed", time(hours: placed), time(hours: placed)])
                var at = placed
                for status in ["shipped", "delivered"] where chance(0.6) {
                    at += 1 + Int(random.next() % 48)
                    try add(orders, base + [status, time(hours: placed), time(hours: at, minutes: l)])
                }
                if chance(0.15) {
                    at += 1 + Int(random.next() % 72)
                    try add(orders, base + [pick(["cancelled", "returned"]), time(hours: placed), time(hours: at, minutes: l)])
                }
            }
            if chance(0.5) {
                try add(payments, ["PAY\(o)", "O\(o)", pick(["card", "paypal", "bank_transfer"]), "\(total).00", "USD", "authorized",
                                   time(hours: placed, minutes: 5)])
                if chance(0.5) {
                    try add(payments, ["PAY\(o)", "O\(o)", pick(["card", "paypal"]), "\(total).00", "USD", pick(["captured", "refunded", "failed"]),
                                       time(hours: placed + 2, minutes: 5)])
                }
            }
            if chance(0.3) {
                try add(movements, ["M\(o)", "P\(Int(random.next() % UInt64(self.products)))", pick(["receipt", "sale", "adjustment"]),
                                    "\(1 + Int(random.next() % 20))", "4.25", time(hours: placed, minutes: 30)])
            }
        }
        // Fisher-Yates with the same generator: the same seed gives the same arrival order.
        for index in stride(from: out.count - 1, to: 0, by: -1) {
            out.swapAt(index, Int(random.next() % UInt64(index + 1)))
        }
        return out
    }

    /// Publishes the events, in their shuffled order, into `layout`'s streams.
    func publish(into layout: StreamLayout, redis: RedisConnection) async throws -> Int {
        let events = try events(layout: layout)
        for start in stride(from: 0, to: events.count, by: 1000) {
            var batch = RedisCommandBuffer()
            for event in events[start..<min(start + 1000, events.count)] { batch.xadd(event.key, fields: event.fields) }
            for reply in try await redis.send(batch) { if case .error(let message) = reply { throw RedisError(.server, message) } }
        }
        return events.count
    }
}

extension WarehouseFixture {
    /// Natural keys whose SCD2 history is broken: not exactly one current row, or two periods that overlap.
    func scd2Violations() async throws -> [String] {
        var problems: [String] = []
        for (table, id, key) in [("dim_customers", "customer_id", "customer_key"), ("dim_products", "product_id", "product_key")] {
            let current = try await postgres.query(
                "SELECT \(id), count(*) FILTER (WHERE is_current) FROM \(table) GROUP BY \(id) HAVING count(*) FILTER (WHERE is_current) <> 1")
            problems += current.rows.map { "\(table) \($0[0] ?? ""): \($0[1] ?? "") current rows" }
            let overlaps = try await postgres.query("""
                SELECT a.\(id), a.valid_from::text, b.valid_from::text FROM \(table) a JOIN \(table) b
                  ON a.\(id) = b.\(id) AND a.\(key) < b.\(key) AND a.valid_from < b.valid_to AND b.valid_from < a.valid_to
                """)
            problems += overlaps.rows.map { "\(table) \($0[0] ?? ""): periods from \($0[1] ?? "") and \($0[2] ?? "") overlap" }
        }
        return problems
    }
}

@Suite(.serialized) struct ConcurrentLoadTests {
    /// Three loader processes with three workers each and batches of five, over many versions of
    /// few keys, killed with -9 at random moments and restarted: the tables equal one serial
    /// consumer's, every key has one current row and no overlapping periods, nothing is pending
    /// and nothing was dead-lettered.
    @Test(.timeLimit(.minutes(6)))
    func threeProcessesWithKillsEqualOneSerialConsumer() async throws {
        let redis = try await TestServers.redis()
        let data = ManyVersionsDataSet()
        let reference = StreamLayout(namespace: TestServers.unique("swcs"))
        let concurrent = StreamLayout(namespace: TestServers.unique("swcc"))
        let published = try await data.publish(into: reference, redis: redis)
        #expect(try await data.publish(into: concurrent, redis: redis) == published)

        let serial = try await WarehouseFixture.make()
        try await serial.load(reference, redis: redis)
        let expected = try await serial.checksums()
        #expect(try await serial.scd2Violations().isEmpty, "the serial load itself is right")
        #expect(expected["customer_versions"]?.hasPrefix("\(data.customers * data.customerVersions):") == true)

        let victim = try await WarehouseFixture.make()
        func arguments(minIdleMs: Int = 2500) -> [String] {
            ["consume", "--namespace", concurrent.namespace, "--workers", "3", "--batch", "5", "--block-ms", "100",
             "--min-idle-ms", String(minIdleMs), "--trim-every-ms", "0", "--until-drained"]
        }
        let environment = ["DATABASE_URL": victim.url]
        var processes = try (0..<3).map { _ in try TestServers.startWarehouse(arguments(), environment: environment) }
        // Kill one of the loaders still running every 0.25–0.9 s. A loader that drained and exited
        // is never picked (killing it would test nothing), so the kills stop only when all drained.
        // (Every 0.4–1.5 s, the loaders with prepared statements drained after four kills in a
        // clean-clone run: 11.6 s.)
        var kills = 0
        let started = ContinuousClock.now
        while kills < 6 {
            try await Task.sleep(for: .milliseconds(Int.random(in: 250...900)))
            let running = processes.indices.filter { processes[$0].isRunning }
            guard let index = running.randomElement() else { break }   // all drained before all the kills
            kill(processes[index].processIdentifier, SIGKILL)
            await TestServers.waitForExit(processes[index])
            kills += 1
            processes[index] = try TestServers.startWarehouse(arguments(), environment: environment)
        }
        print("concurrent loaders: \(kills) kills in \(ContinuousClock.now - started)")
        for process in processes {
            await TestServers.waitForExit(process)
            #expect(process.terminationStatus == 0 || process.terminationReason == .uncaughtSignal)
        }
        // Whatever the killed ones left pending, one more run takes back and finishes.
        let final = try await TestServers.runWarehouse(arguments(minIdleMs: 100), environment: environment)
        #expect(final.status == 0, "stderr: \(final.stderr)")
        #expect(kills >= 5, "the loaders should have been killed at least five times (were \(kills))")

        let actual = try await victim.checksums()
        for table in expected.keys.sorted() {
            #expect(actual[table] == expected[table], "\(table) differs from the serial load")
        }
        let violations = try await victim.scd2Violations()
        let count = violations.count
        #expect(count == 0, "SCD2 violations, e.g. \(violations.prefix(3).joined(separator: "; "))")
        for entity in Entity.allCases {
            let pending = try await redis.xpending(concurrent.streamKey(entity, partition: 0), group: "warehouse")
            #expect(pending.count == 0, "\(entity) has pending entries")
        }
        #expect(try await redis.xlen(concurrent.deadLetterKey) == 0, "nothing is dead-lettered")
    }
}
