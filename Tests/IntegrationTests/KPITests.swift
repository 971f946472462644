import Foundation
import RedisClient
import Testing
import Contract
import KPIModel
import StreamRuntime
import WarehouseSink
import KPIStore
import DataGenerator
import RedisWire
import PostgresClient
import Dashboard

/// The `kpi` group on a real Redis (and PostgreSQL, for reconciliation).
@Suite struct KPITests {
    /// Runs the aggregator in this process until the group is drained.
    @discardableResult
    static func aggregate(_ layout: StreamLayout, batch: Int = 1000) async throws -> ConsumerGroupRunner.Stats {
        var options = ConsumerGroupRunner.Options(group: "kpi", consumer: "aggregator", streams: layout.allStreams)
        options.batchSize = batch
        options.block = .milliseconds(50)
        options.untilDrained = true
        return try await KPIAggregator.consume(options, layout: layout, url: try TestServers.redisURL(), leaseTTL: .seconds(2))
    }

    /// What differs between two snapshots: the totals that do not match, by name, then "buckets",
    /// "summary" and "top products of the latest day" when those do not. Empty when they agree.
    static func differences(_ actual: KPISnapshot, _ expected: KPISnapshot) -> [String] {
        var out = Set(actual.totals.keys).union(expected.totals.keys).filter { actual.totals[$0] != expected.totals[$0] }.sorted()
        if actual.buckets != expected.buckets { out.append("buckets") }
        if actual.summary != expected.summary { out.append("summary") }
        if actual.topProductsLatestDay != expected.topProductsLatestDay { out.append("top products of the latest day") }
        return out
    }

    static var expectedSummary: Summary {
        get throws {
            let json = try JSONSerialization.data(withJSONObject: try #require(try SampleExpectations.json["summary"]))
            return try JSONDecoder().decode(Summary.self, from: json)
        }
    }

    @Test func theSampleGivesTheExpectedKPIsAndReconcilesWithTheWarehouse() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swk"))
        _ = try await TestServers.replay(SampleExpectations.dataFolder, into: layout, redis: redis)
        let warehouse = try await WarehouseFixture.make()
        try await warehouse.load(layout, redis: redis, batch: 50)

        let consumed = try await TestServers.runWarehouse(
            ["consume", "--group", "kpi", "--namespace", layout.namespace, "--batch", "40", "--block-ms", "100", "--until-drained"])
        #expect(consumed.status == 0, "\(consumed.stderr)")
        #expect(consumed.stderr.contains("kpi: 417 entries"), "\(consumed.stderr)")

        let kpis = try await TestServers.runWarehouse(["kpis", "--json", "--namespace", layout.namespace])
        #expect(kpis.status == 0, "\(kpis.stderr)")
        let summary = try JSONDecoder().decode(Summary.self, from: Data(kpis.stdout.utf8))
        let expected = try Self.expectedSummary
        #expect(summary.revenue == expected.revenue)
        #expect(summary.topProducts == expected.topProducts)
        #expect(summary.payments == expected.payments)
        #expect(summary.linesByStatus == expected.linesByStatus)
        #expect(summary.inventory == expected.inventory)
        #expect(summary.counts == expected.counts)
        // The extra keys are there too.
        let object = try #require(try JSONSerialization.jsonObject(with: Data(kpis.stdout.utf8)) as? [String: Any])
        for key in ["windows", "buckets", "aov", "orders_with_revenue", "top_products_latest_day", "payment_rates", "low_stock", "watermark"] {
            #expect(object[key] != nil, "kpis --json has \(key)")
        }

        // Top products of one day: the sample's last day has three products with revenue.
        let day = try await TestServers.runWarehouse(["kpis", "--json", "--day", "2024-12-07", "--namespace", layout.namespace])
        let top = try JSONDecoder().decode(KPISnapshot.DayTop.self, from: Data(day.stdout.utf8))
        #expect(top.products.map(\.productID) == ["P020", "P015", "P010"] && top.products.first?.revenue == "185.22", "\(day.stdout)")

        let reconcile = try await TestServers.runWarehouse(
            ["reconcile", "--json", "--namespace", layout.namespace], environment: ["DATABASE_URL": warehouse.url])
        #expect(reconcile.status == 0, "\(reconcile.stdout) \(reconcile.stderr)")
        let result = try JSONDecoder().decode(Reconciliation.self, from: Data(reconcile.stdout.utf8))
        #expect(result.drift.isEmpty && result.compared > 100)

        // Reconciliation notices a KPI that is off by a cent.
        let keys = KPIKeys(layout: layout)
        _ = try await redis.command("HSET", keys.totals, "revenue", "9582.91", "revenue:category:Electronics", "0.01")
        let drifted = try await TestServers.runWarehouse(
            ["reconcile", "--namespace", layout.namespace], environment: ["DATABASE_URL": warehouse.url])
        #expect(drifted.status == 1)
        #expect(drifted.stdout.contains("DRIFT in 2 of") && drifted.stdout.contains("revenue.total"), "\(drifted.stdout)")
    }

    /// A restart rebuilds the same figures from the persisted records; replaying every event again
    /// (new entries, same events) changes nothing; a lost KPI key comes back on the next start.
    @Test func restartsAndReplaysChangeNothing() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swk"))
        let keys = KPIKeys(layout: layout)
        _ = try await TestServers.replay(SampleExpectations.dataFolder, into: layout, redis: redis)
        let first = try await Self.aggregate(layout, batch: 7)
        #expect(first.entries == 417 && first.deadLettered == 0)
        let before = try await KPISnapshot.read(keys, on: redis)
        #expect(before.summary == (try Self.expectedSummary))

        _ = try await TestServers.replay(SampleExpectations.dataFolder, into: layout, redis: redis)
        _ = try await redis.command("DEL", keys.totals, keys.hours)
        let second = try await Self.aggregate(layout)
        #expect(second.entries == 417)
        let after = try await KPISnapshot.read(keys, on: redis)
        #expect(after == before)
        let totals = try await redis.command("HLEN", keys.totals).int ?? 0
        #expect(totals > 80, "the totals hash was rewritten (\(totals) fields)")
    }

    /// State retention on the sample (which spans two years; no line changes more than 20 days
    /// after its order): most records retire into the archive, the KPIs stay exactly the expected
    /// answers and reconcile with the warehouse, a restart rebuilds the same figures from what is
    /// held plus the archive (converting retired keys an older aggregator wrote), and late
    /// changes to retired records are revived and counted once.
    @Test func stateRetentionKeepsTheKPIsExactWithFewerRecords() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swk"))
        let keys = KPIKeys(layout: layout)
        _ = try await TestServers.replay(SampleExpectations.dataFolder, into: layout, redis: redis)
        let warehouse = try await WarehouseFixture.make()
        try await warehouse.load(layout, redis: redis, batch: 50)
        let retained = ["consume", "--group", "kpi", "--namespace", layout.namespace, "--batch", "20", "--block-ms", "100",
                        "--until-drained", "--state-retention", "30d", "--retire-every-ms", "0"]
        let consumed = try await TestServers.runWarehouse(retained)
        #expect(consumed.status == 0, "\(consumed.stderr)")
        let retiredLog = try #require(consumed.stderr.split(separator: "\n").first { $0.contains("kpi: retired") }, "\(consumed.stderr)")
        let retired = Int(retiredLog.split(separator: "retired ").last?.split(separator: " ").first ?? "") ?? 0
        #expect(retired > 150, "\(retiredLog)")
        #expect(try await Self.deadLetters(layout, redis: redis, stage: "kpi") == 0, "nothing refused within the retention")

        let before = try await KPISnapshot.read(keys, on: redis)
        #expect(before.summary == (try Self.expectedSummary))
        var held = 0
        for entity in [Entity.orders, .payments, .inventory] {
            for stream in layout.streamKeys(entity) {
                held += try await redis.command("HLEN", KPIKeys.stateKey(stream: stream)).int ?? 0
                #expect(try await redis.command("HGET", KPIKeys.retiredKey(stream: stream), "format").string == KPIKeys.retiredFormat,
                        "\(stream) retired (format \(KPIKeys.retiredFormat))")
            }
        }
        #expect(held + retired == 80 + 51 + 111, "each line, payment and movement is either held or retired (\(held) held)")
        let reconcile = try await TestServers.runWarehouse(
            ["reconcile", "--json", "--namespace", layout.namespace], environment: ["DATABASE_URL": warehouse.url])
        #expect(reconcile.status == 0, "\(reconcile.stdout) \(reconcile.stderr)")

        // A restart rebuilds the same figures; a KPI key lost meanwhile comes back. The retired
        // keys are first rewritten as an older aggregator left them (format 1: the counters of
        // every archived record, no format): the rebuild converts them, and counts each once.
        for entity in [Entity.orders, .payments, .inventory] {
            for stream in layout.streamKeys(entity) {
                let items = try await redis.command("HGETALL", KPIKeys.archiveKey(stream: stream)).array ?? []
                let entries = stride(from: 1, to: items.count, by: 2).map { (field: items[$0 - 1].bytes!, value: items[$0].bytes!) }
                var legacy = ["HSET", KPIKeys.retiredKey(stream: stream)]
                for (field, amount) in try KPIState().archivedCounters(entries) { legacy += [field, String(amount)] }
                _ = try await redis.command(legacy).throwingServerError()
                _ = try await redis.command("HDEL", KPIKeys.retiredKey(stream: stream), "format")
            }
        }
        _ = try await redis.command("DEL", keys.totals, keys.days)
        let restarted = try await TestServers.runWarehouse(retained)
        #expect(restarted.status == 0, "\(restarted.stderr)")
        #expect(restarted.stderr.contains("3 retired key(s) converted to format \(KPIKeys.retiredFormat)"), "\(restarted.stderr)")
        #expect(try await KPISnapshot.read(keys, on: redis) == before)
        for entity in [Entity.orders, .payments, .inventory] {
            for stream in layout.streamKeys(entity) {
                let fields = try await redis.command("HKEYS", KPIKeys.retiredKey(stream: stream)).array?.compactMap(\.string) ?? []
                #expect(Set(fields) == ["wm", "horizon", "format"], "\(stream): every retired record is archived, so no counter remains")
            }
        }

        // Changes that reach retired records, however late: a return of a line retired long ago, and
        // a correction of C003's history dated before its retired orders (it re-attributes their
        // as-was segment and state). Both are revived and counted once: the KPIs equal an
        // aggregation that kept every record, and reconcile with the warehouse that loaded them.
        let late = Self.lateChanges
        let reference = StreamLayout(namespace: TestServers.unique("swk"))
        _ = try await TestServers.replay(SampleExpectations.dataFolder, into: reference, redis: redis)
        for target in [layout, reference] {
            for (entity, fields) in late { _ = try await redis.xadd(target.streamKey(entity, partition: 0), fields: fields) }
        }
        let again = try await TestServers.runWarehouse(retained)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stderr.contains("revived"), "\(again.stderr)")
        #expect(try await Self.deadLetters(layout, redis: redis, stage: "kpi") == 0, "nothing refused")
        try await Self.aggregate(reference)
        let expected = try await KPISnapshot.read(KPIKeys(layout: reference), on: redis)
        let after = try await KPISnapshot.read(keys, on: redis)
        #expect(Self.differences(after, expected).isEmpty, "\(Self.differences(after, expected).prefix(10))")
        #expect(after != before, "the late changes moved the figures")
        for entity in Entity.allCases {
            #expect(try await redis.xpending(layout.streamKey(entity, partition: 0), group: "kpi").count == 0)
        }

        // A version of C001 dated after all its orders: its index names no order from then on, so
        // nothing is read back (an empty read once stopped the aggregator); its segment moves.
        var later = late[1].1
        later[1] = "C001"
        for name in ["updated_at", "event_time"] { later[later.firstIndex(of: name)! + 1] = "2025-06-01T00:00:00Z" }
        later[later.firstIndex(of: "event_id")! + 1] = "later-version"
        for target in [layout, reference] { _ = try await redis.xadd(target.streamKey(.customers, partition: 0), fields: later) }
        let last = try await TestServers.runWarehouse(retained)
        #expect(last.status == 0, "\(last.stderr)")
        try await Self.aggregate(reference)
        let expectedLast = try await KPISnapshot.read(KPIKeys(layout: reference), on: redis)
        let afterLast = try await KPISnapshot.read(keys, on: redis)
        #expect(Self.differences(afterLast, expectedLast).isEmpty, "\(Self.differences(afterLast, expectedLast).prefix(10))")

        try await warehouse.load(layout, redis: redis, batch: 50)
        let reconciled = try await TestServers.runWarehouse(
            ["reconcile", "--json", "--namespace", layout.namespace], environment: ["DATABASE_URL": warehouse.url])
        #expect(reconciled.status == 0, "\(reconciled.stdout) \(reconciled.stderr)")
    }

    /// A return of O0014's first line (ordered 2023-08-13) in December 2024, and a version of
    /// C003 dated 2023-06-01 (between its versions of 2023-03-04 and 2024-01-15).
    static var lateChanges: [(Entity, [String])] {
        var ret = orderFields("O0014", eventID: "late-return")
        ret[ret.firstIndex(of: "customer_id")! + 1] = "C003"
        ret[ret.firstIndex(of: "product_id")! + 1] = "P020"
        ret[ret.firstIndex(of: "quantity")! + 1] = "3"
        ret[ret.firstIndex(of: "unit_price")! + 1] = "64.99"
        ret[ret.firstIndex(of: "status")! + 1] = "returned"
        ret[ret.firstIndex(of: "order_ts")! + 1] = "2023-08-13T09:49:00Z"
        ret[ret.firstIndex(of: "updated_at")! + 1] = "2024-12-08T10:00:00Z"
        ret[ret.firstIndex(of: "event_time")! + 1] = "2024-12-08T10:00:00Z"
        let customer = ["customer_id", "C003", "first_name", "Mia", "last_name", "Brown", "email", "customer3@example.com",
                        "city", "Newark", "state", "NJ", "country", "US", "segment", "Business", "signup_date", "2023-03-04",
                        "updated_at", "2023-06-01T00:00:00Z", "type", "customer", "schema_version", "1",
                        "event_time", "2023-06-01T00:00:00Z", "event_id", "late-correction", "source", "test:1"]
        return [(.orders, ret), (.customers, customer)]
    }

    static func deadLetters(_ layout: StreamLayout, redis: RedisConnection, stage: String) async throws -> Int {
        try await redis.xrange(layout.deadLetterKey).filter { $0["stage"] == stage }.count
    }

    /// A restart compares the partition's persisted contribution with the rebuilt state and
    /// writes only what differs: nothing when it is intact; a damaged, a lost and a stray field
    /// mended; a contribution lost whole written again. The global view follows every time.
    @Test func aRestartWritesOnlyWhatTheContributionLacks() async throws {
        let (redis, layout, run) = try await Self.aggregatedSample()
        let keys = KPIKeys(layout: layout)
        let before = try await KPISnapshot.read(keys, on: redis)
        #expect(before.summary == (try Self.expectedSummary))
        let part = keys.contribution(partition: 0)
        let whole = try await redis.command("HGETALL", part).array?.compactMap(\.string) ?? []
        #expect(whole.count > 200, "the contribution has fields: \(whole.count / 2)")

        let intact = try await TestServers.runWarehouse(run)
        #expect(intact.status == 0 && intact.stderr.contains(", 0 contribution field(s) rewritten"), "\(intact.stderr)")
        #expect(try await KPISnapshot.read(keys, on: redis) == before)

        let product = try #require(stride(from: 0, to: whole.count, by: 2).map { whole[$0] }.first { $0.hasPrefix("p:") })
        _ = try await redis.command("HSET", part, "tot", "1 1 1 1", "cat:Nowhere", "500 1", "cat:Garbled", "not a value")
        _ = try await redis.command("HDEL", part, product)
        let damaged = try await TestServers.runWarehouse(run)
        #expect(damaged.status == 0 && damaged.stderr.contains(", 4 contribution field(s) rewritten"), "\(damaged.stderr)")
        #expect(try await KPISnapshot.read(keys, on: redis) == before)
        let mended = try await redis.command("HGETALL", part).array?.compactMap(\.string) ?? []
        #expect(Self.pairs(mended) == Self.pairs(whole), "the contribution is as it was")

        _ = try await redis.command("DEL", part)
        let lost = try await TestServers.runWarehouse(run)
        #expect(lost.status == 0 && lost.stderr.contains(", \(whole.count / 2) contribution field(s) rewritten"), "\(lost.stderr)")
        #expect(try await KPISnapshot.read(keys, on: redis) == before)
    }

    /// A merge stage's start rewrites only the day × product rankings that differ from its state
    /// (written whole, at 26 M events that was 3.3 M members in one script holding Redis 3.7 s).
    @Test func aMergeStageStartWritesOnlyWhatTheViewLacks() async throws {
        let (redis, layout, run) = try await Self.aggregatedSample()
        let keys = KPIKeys(layout: layout)
        func rankings() async throws -> [String: [String]] {
            var out: [String: [String]] = [:]
            for key in try await redis.scanKeys(match: keys.dayProductsPrefix + "*") {
                out[key] = try await redis.command("ZRANGE", key, "0", "-1", "WITHSCORES").array?.compactMap(\.string) ?? []
            }
            return out
        }
        let before = try await rankings()
        let members = before.values.map { $0.count / 2 }.reduce(0, +)
        #expect(before.count > 3 && members > 20, "\(before.count) days, \(members) members")
        let snapshot = try await KPISnapshot.read(keys, on: redis)

        let intact = try await TestServers.runWarehouse(run)
        #expect(intact.status == 0 && intact.stderr.contains(", 0 day × product member(s) rewritten"), "\(intact.stderr)")
        #expect(try await rankings() == before)

        let days = before.keys.sorted()
        let changed = try #require(before[days[0]]), dropped = try #require(before[days[1]])
        _ = try await redis.command("ZADD", days[0], "123456789", changed[0])            // a score changed
        _ = try await redis.command("ZADD", days[0], "5", "P-nowhere")                   // a member too many
        _ = try await redis.command("ZREM", days[1], dropped[0])                          // a member lost
        _ = try await redis.command("DEL", days[2])                                      // a whole day lost
        _ = try await redis.command("ZADD", keys.dayProductsPrefix + "1999-01-01", "7", "P1") // a day too many
        let damaged = try await TestServers.runWarehouse(run)
        let expected = 3 + (before[days[2]]?.count ?? 0) / 2
        #expect(damaged.status == 0 && damaged.stderr.contains(", \(expected) day × product member(s) rewritten"), "\(damaged.stderr)")
        #expect(try await rankings() == before)
        #expect(try await KPISnapshot.read(keys, on: redis) == snapshot)
    }

    /// The process's dimension feed hands every aggregator what it reads, from its first moment.
    /// An aggregator whose partition is not taken over yet must hold those entries, not rebuild
    /// for them: a rebuild before the takeover reads what the previous owner may still change, and
    /// the takeover's own rebuild then ran a second time, holding two states (at 26 M events a
    /// restart took 126 s and 1.69 GB instead of 70 s and 0.96 GB).
    @Test func dimensionEntriesWaitForTheTakeoverRebuild() async throws {
        let (redis, layout, _) = try await Self.aggregatedSample()
        let keys = KPIKeys(layout: layout)
        let part = keys.contribution(partition: 0)
        let before = try await redis.command("HGETALL", part).array?.compactMap(\.string) ?? []
        #expect(before.count > 200)
        let fence = Int(try await redis.command("GET", keys.fence(partition: 0)).string ?? "0") ?? 0

        let aggregator = KPIAggregator(layout: layout, partition: 0, redis: try await TestServers.redis(), epoch: fence + 1)
        var reads: [StreamRead] = []
        for entity in [Entity.customers, .products, .suppliers] {
            let stream = layout.streamKey(entity, partition: 0)
            reads.append(StreamRead(key: stream, entries: try await redis.xrange(stream)))
        }
        #expect(reads.map(\.entries.count).reduce(0, +) > 50)
        try await aggregator.applyDimensions(reads)
        #expect(await aggregator.rebuilds == 0, "the feed's entries started a rebuild before the takeover")
        try await aggregator.takeOver(consumer: "t")
        try await aggregator.rebuild()
        try await aggregator.settle()
        #expect(await aggregator.rebuilds == 1)
        #expect(await aggregator.rewrittenFields == 0)
        let after = try await redis.command("HGETALL", part).array?.compactMap(\.string) ?? []
        #expect(Self.pairs(after) == Self.pairs(before), "the held entries, applied after the rebuild, changed nothing")
    }

    /// The sample data replayed into a fresh namespace and aggregated until drained; `run` runs
    /// the aggregator again (a restart).
    static func aggregatedSample() async throws -> (redis: RedisConnection, layout: StreamLayout, run: [String]) {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swk"))
        _ = try await TestServers.replay(SampleExpectations.dataFolder, into: layout, redis: redis)
        let run = ["consume", "--group", "kpi", "--namespace", layout.namespace, "--block-ms", "100", "--until-drained"]
        let first = try await TestServers.runWarehouse(run)
        #expect(first.status == 0, "\(first.stderr)")
        return (redis, layout, run)
    }

    /// An HGETALL reply's fields and values.
    static func pairs(_ items: [String]) -> [String: String] {
        var out: [String: String] = [:]
        for index in stride(from: 0, to: items.count - 1, by: 2) { out[items[index]] = items[index + 1] }
        return out
    }

    @Test func unreadableEventsAreDeadLetteredAndAcknowledged() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swk"))
        let stream = layout.streamKey(.orders, partition: 0)
        _ = try await redis.xadd(stream, fields: Self.orderFields("O1", eventID: "e1"))
        _ = try await redis.xadd(stream, fields: Self.orderFields("O2", eventID: "e2").map { $0 == "2024-03-01T10:00:00Z" ? "yesterday" : $0 })
        let stats = try await Self.aggregate(layout)
        #expect(stats.entries == 2)
        let dead = try await redis.xrange(layout.deadLetterKey)
        #expect(dead.count == 1)
        #expect(dead.first?["stage"] == "kpi" && dead.first?["reason"]?.contains("order_ts") == true, "\(dead)")
        #expect(try await redis.xpending(stream, group: "kpi").count == 0)
        let snapshot = try await KPISnapshot.read(KPIKeys(layout: layout), on: redis)
        #expect(snapshot.summary.counts.orderLines == 1 && snapshot.summary.revenue.total == "10.00")
    }

    @Test(.timeLimit(.minutes(2)))
    func tailShowsAChangeWithinASecondOfAnOrder() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swk"))
        _ = try await TestServers.replay(SampleExpectations.dataFolder, into: layout, redis: redis)
        let consumer = try TestServers.startWarehouse(["consume", "--group", "kpi", "--namespace", layout.namespace, "--block-ms", "1000"])
        defer { if consumer.isRunning { kill(consumer.processIdentifier, SIGKILL) } }
        let keys = KPIKeys(layout: layout)
        for _ in 0..<200 {
            if try await KPISnapshot.read(keys, on: redis).summary.counts.orderLines == 80 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        async let tail = TestServers.runWarehouse(
            ["tail", "--json", "--count", "1", "--kpi", "count:order_lines", "--namespace", layout.namespace])
        try await Task.sleep(for: .milliseconds(1500))   // tail has started and read its starting point
        let sent = ContinuousClock.now
        _ = try await redis.xadd(layout.streamKey(.orders, partition: 0), fields: Self.orderFields("NEW-1", eventID: "new1"))
        let output = try await tail
        let elapsed = ContinuousClock.now - sent
        #expect(output.status == 0, "\(output.stderr)")
        #expect(elapsed < .seconds(1), "tail printed the change \(elapsed) after the order")
        let line = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
        #expect((line["changes"] as? [String: String])?["count:order_lines"] == "81", "\(output.stdout)")
        kill(consumer.processIdentifier, SIGTERM)
        await TestServers.waitForExit(consumer)
        #expect(consumer.terminationStatus == 0)
    }

    /// Two aggregators in one process, the partitions shared between them, both until drained:
    /// both return, and the KPIs are the expected answers.
    @Test(.timeLimit(.minutes(2)))
    func twoAggregatorsSharePartitionsAndDrain() async throws {
        let redis = try await TestServers.redis()
        let layout = StreamLayout(namespace: TestServers.unique("swk2"), partitions: 4)
        _ = try await TestServers.replay(SampleExpectations.dataFolder, into: layout, redis: redis)
        let url = try TestServers.redisURL()
        let log = TestServers.unique("/tmp/sw-k2") + ".log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let sink = FileHandle(forWritingAtPath: log)!
        let write: @Sendable (String) -> Void = { line in sink.write(Data((line + "\n").utf8)) }
        let entries = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<2 {
                group.addTask {
                    var options = ConsumerGroupRunner.Options(group: "kpi", consumer: "k2-\(index)", streams: layout.allStreams)
                    options.block = .milliseconds(50)
                    options.untilDrained = true
                    let aggregator = KPIAggregatorService(options: options, layout: layout, url: url, leaseTTL: .seconds(2),
                                                          log: { write("\(index): \($0)") })
                    try await aggregator.run()
                    return aggregator.stats.entries
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(entries >= 417)
        #expect(try await KPISnapshot.read(KPIKeys(layout: layout), on: redis).summary == (try Self.expectedSummary),
                "\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }

    /// One batch that changes far more contribution fields than a Redis script can unpack in one
    /// command (2,500 products sold and received on one day, read in one batch): the commit splits
    /// its delta into entries the merge stage applies together, and the figures equal those of
    /// small batches. Before the split, the aggregator stopped on "too many results to unpack".
    /// On a Redis of its own: its commits are long scripts, which would stall the shared server's
    /// other tests.
    @Test(.timeLimit(.minutes(3)))
    func aBatchThatChangesTensOfThousandsOfFieldsCommits() async throws {
        let server = try await PrivateRedis.start()
        defer { Task { await server.destroy() } }
        let redis = try await RedisConnection(url: server.url)
        let folder = TestServers.unique("/tmp/sw-wide")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let products = 2500
        var files: [String: [String]] = [
            "customers.csv": ["customer_id,first_name,last_name,email,city,state,country,segment,signup_date,updated_at",
                              "C1,Ada,Lovelace,ada@example.com,Austin,TX,US,Premium,2023-01-01,2023-01-01T00:00:00Z"],
            "suppliers.csv": ["supplier_id,name,country,contact_email,contract_start,contract_end,lead_time_days,rating,updated_at"],
            "payments.csv": ["payment_id,order_id,method,processor,amount,currency,status,paid_at"],
            "inventory_movements.csv": ["movement_id,product_id,movement_type,quantity,unit_cost,moved_at,reference"],
            "products.csv": ["product_id,name,category,supplier_id,unit_price,unit_cost,updated_at"],
            "orders.csv": ["order_id,line_number,customer_id,product_id,quantity,unit_price,discount,status,order_ts,updated_at"],
        ]
        for index in 1...products {
            files["products.csv"]!.append("P\(index),Product \(index),Category \(index % 7),,\(index % 90 + 1).25,,2023-01-01T00:00:00Z")
            let at = String(format: "2024-03-01T%02d:%02d:%02dZ", index / 3600, index / 60 % 60, index % 60)
            files["orders.csv"]!.append("O\(index),1,C1,P\(index),\(index % 3 + 1),\(index % 90 + 1).25,0,placed,\(at),\(at)")
            files["inventory_movements.csv"]!.append("M\(index),P\(index),receipt,\(index % 40 + 1),1.00,\(at),PO-\(index)")
        }
        for (name, lines) in files {
            try (lines.joined(separator: "\n") + "\n").write(toFile: folder + "/" + name, atomically: true, encoding: .utf8)
        }
        var snapshots: [KPISnapshot] = []
        for batch in [5000, 500] {
            let layout = StreamLayout(namespace: TestServers.unique("swkw"))
            let events = try await TestServers.replay(folder, into: layout, redis: redis)
            #expect(events == 1 + 3 * products)
            // In a process of its own, as a user runs it (in this one its wide commits would hold
            // the cooperative threads the other tests share).
            let consumed = try await TestServers.runWarehouse(
                ["consume", "--group", "kpi", "--namespace", layout.namespace, "--batch", String(batch), "--block-ms", "50", "--until-drained"],
                environment: ["REDIS_URL": server.url])
            #expect(consumed.status == 0, "\(consumed.stderr)")
            #expect(consumed.stderr.contains("kpi: \(events) entries") && consumed.stderr.contains(" 0 dead-lettered"), "\(consumed.stderr)")
            let snapshot = try await KPISnapshot.read(KPIKeys(layout: layout), on: redis)
            #expect(snapshot.summary.counts.orderLines == products)
            snapshots.append(snapshot)
            if batch > products {
                // The wide commit was split: entries saying `~more`, each within the script's reach.
                let deltas = try await redis.xrange(KPIKeys(layout: layout).deltas(partition: 0))
                #expect(deltas.contains { $0["~more"] == "1" } && deltas.allSatisfy { $0.fields.count <= 2 * 1002 }, "\(deltas.count) delta entries")
            }
        }
        #expect(Self.differences(snapshots[0], snapshots[1]).isEmpty, "\(Self.differences(snapshots[0], snapshots[1]))")
    }

    static func orderFields(_ order: String, eventID: String) -> [String] {
        ["order_id", order, "line_number", "1", "customer_id", "C001", "product_id", "P001", "quantity", "1",
         "unit_price", "10.00", "discount", "0", "status", "placed", "order_ts", "2024-03-01T10:00:00Z",
         "updated_at", "2024-03-01T10:00:00Z", "type", "order_line", "schema_version", "1",
         "event_time", "2024-03-01T10:00:00Z", "event_id", eventID, "source", "test:1"]
    }
}

@Suite(.serialized) struct KPICrashTests {
    /// kill -9 the aggregator at random moments during a 200,000-event load, five times over: the
    /// KPIs equal an uninterrupted run's, reconcile with the warehouse with zero drift, and
    /// nothing is left pending; the uninterrupted run (in process) holds every record. Retention off, at 30 days (a pass every 100 ms,
    /// so kills land around retirements) and at 3 days: the generated orders settle within 17
    /// days, so at 3 days many lines change again after their order retired, and each such change
    /// revives the order from the archive (kills land around revivals too). Every figure must
    /// equal the uninterrupted run's, and nothing may be refused.
    @Test(.timeLimit(.minutes(8)), arguments: ["off", "30d", "3d"])
    func killNineFiveTimesLosesAndDoublesNothing(retention: String) async throws {
        let redis = try await TestServers.redis()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.unique("sw-kcrash")).path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try DataGenerator(options: DataGenerator.Options(orders: 64_000, seed: 31)).write(to: folder)
        let reference = StreamLayout(namespace: TestServers.unique("swkr"))
        let crashed = StreamLayout(namespace: TestServers.unique("swkc"))
        for layout in [reference, crashed] {
            #expect(try await TestServers.replay(folder, into: layout, redis: redis) >= 195_000)
        }
        try await KPITests.aggregate(reference)
        let expected = try await KPISnapshot.read(KPIKeys(layout: reference), on: redis)

        var arguments = ["consume", "--group", "kpi", "--namespace", crashed.namespace, "--batch", "500", "--block-ms", "100",
                         "--lease-ms", "500", "--until-drained"]
        arguments += ["--state-retention", retention, "--retire-every-ms", "100"]
        let kills = try await TestServers.killRepeatedly(arguments, after: 300...1500)
        let final = try await TestServers.runWarehouse(arguments)
        #expect(final.status == 0, "stderr: \(final.stderr)")
        #expect(kills >= 3, "the aggregator should have been killed several times (was \(kills))")

        let actual = try await KPISnapshot.read(KPIKeys(layout: crashed), on: redis)
        let differing = KPITests.differences(actual, expected)
        #expect(differing.isEmpty, "KPIs that differ from the uninterrupted run's: \(differing.prefix(10))")
        for entity in Entity.allCases {
            #expect(try await redis.xpending(crashed.streamKey(entity, partition: 0), group: "kpi").count == 0, "\(entity) has pending entries")
        }
        if retention != "off" {
            let retired = try await redis.command("HLEN", KPIKeys.archiveKey(stream: crashed.streamKey(.orders, partition: 0))).int ?? 0
            #expect(retired > 100, "orders retired into the archive (\(retired))")
            let format = try await redis.command("HGET", KPIKeys.retiredKey(stream: crashed.streamKey(.orders, partition: 0)), "format").string
            #expect(format == KPIKeys.retiredFormat, "the retirement's format")
            let held = try await redis.command("HLEN", KPIKeys.stateKey(stream: crashed.streamKey(.orders, partition: 0))).int ?? 0
            let all = try await redis.command("HLEN", KPIKeys.stateKey(stream: reference.streamKey(.orders, partition: 0))).int ?? 0
            #expect(held * 4 < all, "most order lines retired (\(held) of \(all) held)")
            if retention == "3d" {
                let archived = try await redis.command("HLEN", KPIKeys.archiveKey(stream: crashed.streamKey(.orders, partition: 0))).int ?? 0
                #expect(final.stderr.contains("revived") && archived > 1000, "\(archived) orders archived; \(final.stderr.suffix(300))")
            }
            #expect(try await KPITests.deadLetters(crashed, redis: redis, stage: "kpi") == 0, "nothing refused")
        }
        let warehouse = try await WarehouseFixture.make()
        try await warehouse.load(crashed, redis: redis, batch: 2000)
        let reconcile = try await TestServers.runWarehouse(
            ["reconcile", "--json", "--namespace", crashed.namespace], environment: ["DATABASE_URL": warehouse.url])
        #expect(reconcile.status == 0, "\(reconcile.stdout) \(reconcile.stderr)")
    }
}
