import Foundation
public import StreamRuntime
import PostgresClient
import RedisClient
import RedisWire

/// `warehouse bench clients`: the raw speed of the two client libraries against the real servers,
/// in the shapes the pipeline uses them (pipelined XADD, XREADGROUP + XACK in batches, COPY and
/// `unnest` upserts into a table shaped like a fact table).
public struct ClientBenchmark: Sendable {
    public struct Options: Sendable {
        /// Entries written and read back per stream round.
        public var streamEntries = 200_000
        /// XADDs per pipelined batch.
        public var xaddBatch = 1000
        /// XREADGROUP COUNT.
        public var readCount = 1000
        /// Rows copied per COPY round.
        public var copyRows = 200_000
        /// Rows upserted per round, and per statement.
        public var upsertRows = 100_000
        public var upsertBatch = 1000
        /// Rounds of each measurement; the median is reported.
        public var repeats = 3
        public init() {}
    }

    /// Figures, each the median of the rounds.
    public struct Result: Sendable, Codable {
        public var xaddEntriesPerSecond: Double
        public var xreadgroupXackEntriesPerSecond: Double
        public var copyRowsPerSecond: Double
        public var upsertFreshRowsPerSecond: Double
        public var upsertConflictRowsPerSecond: Double
        public var streamEntries: Int
        public var copyRows: Int
        public var upsertRows: Int
        public var repeats: Int

        enum CodingKeys: String, CodingKey {
            case xaddEntriesPerSecond = "xadd_entries_per_s"
            case xreadgroupXackEntriesPerSecond = "xreadgroup_xack_entries_per_s"
            case copyRowsPerSecond = "copy_rows_per_s"
            case upsertFreshRowsPerSecond = "upsert_fresh_rows_per_s"
            case upsertConflictRowsPerSecond = "upsert_conflict_rows_per_s"
            case streamEntries = "stream_entries"
            case copyRows = "copy_rows"
            case upsertRows = "upsert_rows"
            case repeats
        }
    }

    public var options: Options
    public var configuration: ServerConfiguration

    public init(configuration: ServerConfiguration, options: Options = Options()) {
        self.configuration = configuration
        self.options = options
    }

    public func run(progress: @Sendable (String) -> Void = { _ in }) async throws -> Result {
        let redis = try await RedisConnection(url: configuration.redisURL)
        let postgres = try await PostgresConnection(configuration.databaseURL)
        let tag = "\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))"
        let schema = "sw_bench_\(tag.replacingOccurrences(of: "-", with: "_"))"

        var xadd: [Double] = []
        var read: [Double] = []
        for round in 1...options.repeats {
            let key = "sw:bench:{\(tag)-\(round)}"
            xadd.append(try await measureXADD(redis, key: key))
            progress("round \(round): XADD \(Int(xadd.last!)) entries/s")
            read.append(try await measureReadAck(redis, key: key))
            progress("round \(round): XREADGROUP+XACK \(Int(read.last!)) entries/s")
            _ = try await redis.command("DEL", key)
        }

        try await postgres.executeScript("CREATE SCHEMA \(schema)")
        var copy: [Double] = []
        var fresh: [Double] = []
        var conflict: [Double] = []
        do {
            for round in 1...options.repeats {
                try await createFactTable(postgres, schema: schema)
                copy.append(try await measureCopy(postgres, schema: schema))
                progress("round \(round): COPY \(Int(copy.last!)) rows/s")
                try await createFactTable(postgres, schema: schema)
                fresh.append(try await measureUpsert(postgres, schema: schema))
                progress("round \(round): upsert (fresh keys) \(Int(fresh.last!)) rows/s")
                conflict.append(try await measureUpsert(postgres, schema: schema))
                progress("round \(round): upsert (all conflicting) \(Int(conflict.last!)) rows/s")
            }
            try await postgres.executeScript("DROP SCHEMA \(schema) CASCADE")
        } catch {
            _ = try? await postgres.executeScript("DROP SCHEMA \(schema) CASCADE")
            throw error
        }
        return Result(
            xaddEntriesPerSecond: median(xadd),
            xreadgroupXackEntriesPerSecond: median(read),
            copyRowsPerSecond: median(copy),
            upsertFreshRowsPerSecond: median(fresh),
            upsertConflictRowsPerSecond: median(conflict),
            streamEntries: options.streamEntries,
            copyRows: options.copyRows,
            upsertRows: options.upsertRows,
            repeats: options.repeats
        )
    }

    // MARK: - Redis

    /// Ten fields of about ten bytes, like an order-line event.
    static func eventFields(_ index: Int) -> [String] {
        [
            "type", "order_line", "order_id", "o-\(100_000 + index)", "line", String(index % 5 + 1),
            "customer", "c-\(10_000 + index % 5000)", "product", "p-\(1000 + index % 700)",
            "quantity", String(index % 9 + 1), "price", "\(index % 500).99", "status", "delivered",
            "order_ts", "2024-03-01T14:05:00Z", "source", "bench:\(index)",
        ]
    }

    private func measureXADD(_ redis: RedisConnection, key: String) async throws -> Double {
        let total = options.streamEntries
        let batchSize = options.xaddBatch
        let clock = ContinuousClock()
        let start = clock.now
        var next = 0
        // Encode the next batch on the pool while the connection thread sends the current one.
        var pending = Self.encodeXADD(key: key, from: 0, count: min(batchSize, total))
        next = min(batchSize, total)
        while true {
            let sending = pending
            async let replies = redis.send(sending)
            let hasMore = next < total
            if hasMore {
                pending = Self.encodeXADD(key: key, from: next, count: min(batchSize, total - next))
                next += min(batchSize, total - next)
            }
            for reply in try await replies {
                if case .error(let message) = reply { throw RedisError(.server, message) }
            }
            if !hasMore { break }
        }
        return Double(total) / (clock.now - start).seconds
    }

    static func encodeXADD(key: String, from: Int, count: Int) -> RedisCommandBuffer {
        var buffer = RedisCommandBuffer(reservingCapacity: count * 260)
        for index in from..<(from + count) {
            let fields = eventFields(index)
            buffer.beginXADD(key, fieldPairs: fields.count / 2)
            for field in fields { buffer.add(field) }
        }
        return buffer
    }

    private func measureReadAck(_ redis: RedisConnection, key: String) async throws -> Double {
        let group = "bench"
        try await redis.xgroupCreate(key, group: group, id: "0")
        let clock = ContinuousClock()
        let start = clock.now
        var read = 0
        while read < options.streamEntries {
            let batch = try await redis.xreadgroup(
                group: group, consumer: "bench-1", streams: [(key, ">")], count: options.readCount,
                block: .milliseconds(100))
            guard let stream = batch.first, !stream.entries.isEmpty else { break }
            // Touch the decoded fields, as a consumer would.
            var checksum = 0
            for entry in stream.entries { checksum &+= entry.fields.count }
            precondition(checksum > 0)
            try await redis.xack(key, group: group, ids: stream.entries.map(\.id))
            read += stream.entries.count
        }
        guard read == options.streamEntries else {
            throw RedisError(.unexpectedReply, "read \(read) of \(options.streamEntries) entries")
        }
        return Double(read) / (clock.now - start).seconds
    }

    // MARK: - PostgreSQL

    private func createFactTable(_ postgres: PostgresConnection, schema: String) async throws {
        try await postgres.executeScript("""
            DROP TABLE IF EXISTS \(schema).fact;
            CREATE TABLE \(schema).fact (
                order_id     text          NOT NULL,
                line_number  integer       NOT NULL,
                customer_key bigint        NOT NULL,
                product_key  bigint        NOT NULL,
                date_key     integer       NOT NULL,
                quantity     integer       NOT NULL,
                unit_price   numeric(12,2) NOT NULL,
                discount     numeric(5,4)  NOT NULL,
                net_amount   numeric(14,2) NOT NULL,
                status       text          NOT NULL,
                order_ts     timestamptz   NOT NULL,
                PRIMARY KEY (order_id, line_number)
            );
            CREATE INDEX ON \(schema).fact (customer_key);
            CREATE INDEX ON \(schema).fact (date_key);
            """)
    }

    private func measureCopy(_ postgres: PostgresConnection, schema: String) async throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        var encoder = PostgresCopyEncoder(reservingCapacity: 1 << 20)
        let sql = "COPY \(schema).fact FROM STDIN"
        var chunks: [[UInt8]] = []
        for index in 0..<options.copyRows {
            encoder.add("o-\(index)")
            encoder.add(index % 5 + 1)
            encoder.add(index % 5000)
            encoder.add(index % 700)
            encoder.add(20240101 + index % 28)
            encoder.add(index % 9 + 1)
            encoder.addVerbatim("19.99")
            encoder.addVerbatim("0.1000")
            encoder.addVerbatim("35.98")
            encoder.add("delivered")
            encoder.addVerbatim("2024-03-01 14:05:00+00")
            encoder.endRow()
            if encoder.bytes.count >= 1 << 20 {
                chunks.append(encoder.bytes)
                encoder.removeAll()
            }
        }
        if !encoder.bytes.isEmpty { chunks.append(encoder.bytes) }
        let copied = try await postgres.copyIn(sql, chunks: chunks)
        guard copied == options.copyRows else {
            throw PostgresError(.protocolError, "copied \(copied) of \(options.copyRows) rows")
        }
        return Double(copied) / (clock.now - start).seconds
    }

    private func measureUpsert(_ postgres: PostgresConnection, schema: String) async throws -> Double {
        let sql = """
            INSERT INTO \(schema).fact AS f
            SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[], $5::int[], $6::int[],
                                 $7::numeric[], $8::numeric[], $9::numeric[], $10::text[], $11::timestamptz[])
            ON CONFLICT (order_id, line_number) DO UPDATE SET
                customer_key = EXCLUDED.customer_key, product_key = EXCLUDED.product_key,
                date_key = EXCLUDED.date_key, quantity = EXCLUDED.quantity, unit_price = EXCLUDED.unit_price,
                discount = EXCLUDED.discount, net_amount = EXCLUDED.net_amount, status = EXCLUDED.status,
                order_ts = EXCLUDED.order_ts
            WHERE f.order_ts <= EXCLUDED.order_ts
            """
        let clock = ContinuousClock()
        let start = clock.now
        var written = 0
        var from = 0
        while from < options.upsertRows {
            let count = min(options.upsertBatch, options.upsertRows - from)
            var orderIDs: [String?] = [], lines: [String?] = [], customers: [String?] = [], products: [String?] = []
            var dates: [String?] = [], quantities: [String?] = [], prices: [String?] = [], discounts: [String?] = []
            var nets: [String?] = [], statuses: [String?] = [], timestamps: [String?] = []
            for index in from..<(from + count) {
                orderIDs.append("o-\(index)"); lines.append(String(index % 5 + 1))
                customers.append(String(index % 5000)); products.append(String(index % 700))
                dates.append(String(20240101 + index % 28)); quantities.append(String(index % 9 + 1))
                prices.append("19.99"); discounts.append("0.1000"); nets.append("35.98")
                statuses.append("shipped"); timestamps.append("2024-03-01 14:05:00+00")
            }
            written += try await postgres.execute(sql, [
                .array(orderIDs), .array(lines), .array(customers), .array(products), .array(dates),
                .array(quantities), .array(prices), .array(discounts), .array(nets), .array(statuses), .array(timestamps),
            ])
            from += count
        }
        guard written == options.upsertRows else {
            throw PostgresError(.protocolError, "upserted \(written) of \(options.upsertRows) rows")
        }
        return Double(written) / (clock.now - start).seconds
    }
}

func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}
