import Foundation
public import PostgresClient
public import RedisClient
public import Contract
public import StreamRuntime
import RedisWire

/// Applies a `LoaderBatch` to the star schema in ONE transaction of set-based statements (unnest
/// arrays), recording the highest entry id applied per stream in the same transaction.
///
/// Every statement is idempotent and order-independent: dimension versions are inserted once and
/// each touched natural key's SCD2 history is rebuilt from all its versions; facts keep the latest
/// version by (version time, event id); surrogate keys are deterministic. So redelivery, replay
/// and any arrival order leave the same tables.
public struct WarehouseLoader: Sendable {
    public let group: String
    private let calendar = CalendarCoverage()

    public init(group: String = "warehouse") {
        self.group = group
    }

    /// The days dim_dates is known to cover, so most batches skip the calendar statement.
    /// `@unchecked Sendable`: `days` is read and written only under `lock`.
    final class CalendarCoverage: @unchecked Sendable {
        private let lock = NSLock()
        private var days: ClosedRange<Int64>?

        func covers(_ range: ClosedRange<Int64>) -> Bool {
            lock.lock(); defer { lock.unlock() }
            return days.map { $0.contains(range.lowerBound) && $0.contains(range.upperBound) } ?? false
        }

        func record(_ range: ClosedRange<Int64>) {
            lock.lock(); defer { lock.unlock() }
            // ensure_dim_dates keeps the calendar one contiguous range: the hull of what was asked.
            if let days {
                self.days = min(days.lowerBound, range.lowerBound)...max(days.upperBound, range.upperBound)
            } else {
                days = range
            }
        }
    }

    /// What one batch changed.
    public struct Outcome: Sendable, Equatable {
        public var sales = 0, payments = 0, movements = 0, customerVersions = 0, productVersions = 0, suppliers = 0
        public var inferredCustomers = 0, inferredProducts = 0
    }

    /// The newest migration this loader's statements rely on (`lock_natural_keys` came with 3,
    /// `line_net_amount` and `line_gross_amount` with 4).
    public static let requiredSchemaVersion = 4

    /// Runs the consumer group with this loader as its handler, until a graceful shutdown or (with
    /// `untilDrained`) caught up. Throws `ConsumerStop` on a fatal failure (nothing in hand acked).
    public func consume(
        _ options: ConsumerGroupRunner.Options, layout: StreamLayout, redis: RedisConnection, postgres: PostgresConnection,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> ConsumerGroupRunner.Stats {
        let runner = ConsumerGroupRunner(options: options, deadLetters: DeadLetterQueue(layout: layout), log: log)
        // The analytics cache's generation moves after every commit that changed rows, and once at
        // start, for a commit a crash left unannounced.
        let cache = CacheKeys(layout: layout)
        return try await runner.run(redis: redis, prepare: {
            // The same dozen statements, batch after batch: parsed and planned once per session
            // (WAREHOUSE_PG_PREPARE=0 turns it off, for a pooler in transaction mode that cannot
            // keep a session's prepared statements).
            await postgres.setPreparesStatements(ProcessInfo.processInfo.environment["WAREHOUSE_PG_PREPARE"] != "0")
            try await Self.checkSchema(postgres)
            _ = try await redis.command("INCR", cache.generation)
        }) { reads in
            let batch = LoaderBatch(reads, layout: layout)
            let outcome = try await self.apply(batch, on: postgres)
            if outcome != Outcome() { _ = try? await redis.command("INCR", cache.generation) }
            return batch.rejects
        }
    }

    /// Refuses a schema older than the code (a deployment that skipped `warehouse migrate`).
    public static func checkSchema(_ postgres: PostgresConnection) async throws {
        let version = try await postgres.query("SELECT coalesce(max(version), 0) FROM schema_migrations").first?[0].flatMap(Int.init) ?? 0
        guard version >= requiredSchemaVersion else {
            throw ConsumerStop(
                cause: "the warehouse schema is at migration \(version) and this loader needs migration \(requiredSchemaVersion)",
                advice: "run `warehouse migrate` against DATABASE_URL, then start the loader again")
        }
    }

    public func apply(_ batch: LoaderBatch, on postgres: PostgresConnection) async throws -> Outcome {
        let group = self.group
        let calendar = self.calendar
        // The calendar covers every fact date and a year either side; extended outside the batch's
        // transaction would be as good (it is idempotent), but inside keeps one commit per batch.
        let days = batch.sales.compactMap { Timestamp(iso8601: $0.orderTS)?.utcDay }
        // Whole calendar years, from the year before the earliest fact to the year after the
        // latest: what the calendar covers then depends only on the facts, never on their order.
        let needed = days.min().flatMap { first in
            days.max().map { last -> ClosedRange<Int64> in
                let firstYear = CivilDate.civilFromDays(first).year - 1
                let lastYear = CivilDate.civilFromDays(last).year + 1
                return CivilDate.daysFromCivil(year: firstYear, month: 1, day: 1)...CivilDate.daysFromCivil(year: lastYear, month: 12, day: 31)
            }
        }
        let extend = needed.map { !calendar.covers($0) } ?? false
        let widened = needed
        let locks = batch.naturalKeyLocks
        let outcome = try await postgres.withTransaction { connection in
            // First, the natural keys this batch touches (see sql/0003_concurrent_loaders.sql), so
            // every statement below sees what concurrent loaders committed for them.
            if !locks.keys.isEmpty {
                try await connection.execute(Self.lockNaturalKeys, [PostgresBind(locks.keys), PostgresBind(locks.exclusive)])
            }
            if extend, let widened {
                try await connection.execute("SELECT ensure_dim_dates($1::date, $2::date)", [
                    .text(CivilDate.format(days: widened.lowerBound)), .text(CivilDate.format(days: widened.upperBound)),
                ])
            }
            return try await Self.applyInTransaction(batch, group: group, on: connection)
        }
        if extend, let widened { calendar.record(widened) }
        return outcome
    }

    static func applyInTransaction(_ batch: LoaderBatch, group: String, on db: isolated PostgresConnection) async throws -> Outcome {
        var outcome = Outcome()
        // 1. Dimensions: suppliers (type 1), then every version of customers and products, then
        //    the SCD2 history of each touched natural key is rebuilt.
        if !batch.suppliers.isEmpty {
            let s = batch.suppliers
            outcome.suppliers = try await db.execute(Self.upsertSuppliers, [
                PostgresBind(s.map(\.id)), PostgresBind(s.map(\.name)), PostgresBind(s.map(\.country)),
                PostgresBind(s.map(\.contactEmail)), PostgresBind(s.map(\.contractStart)), PostgresBind(s.map(\.contractEnd)),
                PostgresBind(s.map(\.leadTimeDays)), PostgresBind(s.map(\.rating)), PostgresBind(s.map(\.updatedAt)),
                PostgresBind(s.map(\.eventID)),
            ])
        }
        var customerIDs: [String] = []
        if !batch.customers.isEmpty {
            let c = batch.customers
            outcome.customerVersions = try await db.execute(Self.insertCustomerVersions, [
                PostgresBind(c.map(\.id)), PostgresBind(c.map(\.versionTime)), PostgresBind(c.map(\.eventID)),
                PostgresBind(c.map(\.firstName)), PostgresBind(c.map(\.lastName)), PostgresBind(c.map(\.email)),
                PostgresBind(c.map(\.city)), PostgresBind(c.map(\.state)), PostgresBind(c.map(\.country)),
                PostgresBind(c.map(\.segment)), PostgresBind(c.map(\.signupDate)),
            ])
            customerIDs = Array(Set(c.map(\.id))).sorted()
            try await db.execute(Self.rebuildCustomers, [PostgresBind(customerIDs)])
        }
        var productIDs: [String] = []
        if !batch.products.isEmpty {
            let p = batch.products
            outcome.productVersions = try await db.execute(Self.insertProductVersions, [
                PostgresBind(p.map(\.id)), PostgresBind(p.map(\.versionTime)), PostgresBind(p.map(\.eventID)),
                PostgresBind(p.map(\.name)), PostgresBind(p.map(\.category)), PostgresBind(p.map(\.supplierID)),
                PostgresBind(p.map(\.unitPrice)), PostgresBind(p.map(\.unitCost)),
            ])
            productIDs = Array(Set(p.map(\.id))).sorted()
            try await db.execute(Self.rebuildProducts, [PostgresBind(productIDs)])
        }

        // 2. Late-arriving dimensions: an inferred member for every referenced key not seen yet.
        let referencedCustomers = Array(Set(batch.sales.map(\.customerID))).sorted()
        if !referencedCustomers.isEmpty {
            outcome.inferredCustomers = try await db.execute(Self.inferCustomers, [PostgresBind(referencedCustomers)])
        }
        let referencedProducts = Array(Set(batch.sales.map(\.productID) + batch.movements.map(\.productID))).sorted()
        if !referencedProducts.isEmpty {
            outcome.inferredProducts = try await db.execute(Self.inferProducts, [PostgresBind(referencedProducts)])
        }

        // 3. Facts, each guarded by its version.
        if !batch.sales.isEmpty {
            let s = batch.sales
            outcome.sales = try await db.execute(Self.upsertSales, [
                PostgresBind(s.map(\.orderID)), PostgresBind(s.map(\.lineNumber)), PostgresBind(s.map(\.customerID)),
                PostgresBind(s.map(\.productID)), PostgresBind(s.map(\.quantity)), PostgresBind(s.map(\.unitPrice)),
                PostgresBind(s.map(\.discount)), PostgresBind(s.map(\.status)), PostgresBind(s.map(\.orderTS)),
                PostgresBind(s.map(\.updatedAt)), PostgresBind(s.map(\.eventID)),
            ])
        }
        if !batch.payments.isEmpty {
            let p = batch.payments
            outcome.payments = try await db.execute(Self.upsertPayments, [
                PostgresBind(p.map(\.id)), PostgresBind(p.map(\.orderID)), PostgresBind(p.map(\.method)),
                PostgresBind(p.map(\.processor)), PostgresBind(p.map(\.amount)), PostgresBind(p.map(\.currency)),
                PostgresBind(p.map(\.status)), PostgresBind(p.map(\.paidAt)), PostgresBind(p.map(\.eventID)),
            ])
        }
        if !batch.movements.isEmpty {
            let m = batch.movements
            outcome.movements = try await db.execute(Self.upsertMovements, [
                PostgresBind(m.map(\.id)), PostgresBind(m.map(\.productID)), PostgresBind(m.map(\.type)),
                PostgresBind(m.map(\.quantity)), PostgresBind(m.map(\.unitCost)), PostgresBind(m.map(\.movedAt)),
                PostgresBind(m.map(\.reference)), PostgresBind(m.map(\.eventID)),
            ])
        }

        // 4. History that changed moves the facts it covers to the right period.
        if !customerIDs.isEmpty {
            try await db.execute(Self.repointSalesByCustomer, [PostgresBind(customerIDs)])
        }
        if !productIDs.isEmpty {
            try await db.execute(Self.repointSalesByProduct, [PostgresBind(productIDs)])
            try await db.execute(Self.repointMovementsByProduct, [PostgresBind(productIDs)])
        }

        // 5. Positions and counters, in the same transaction as the data they describe.
        if !batch.positions.isEmpty {
            let streams = batch.positions.keys.sorted()
            try await db.execute(Self.recordPositions, [
                .text(group), PostgresBind(streams),
                PostgresBind(streams.map { Int64(bitPattern: batch.positions[$0]!.milliseconds) }),
                PostgresBind(streams.map { Int64(bitPattern: batch.positions[$0]!.sequence) }),
            ])
        }
        try await db.execute(Self.countEvents, [.text(group), PostgresBind(batch.entries - batch.rejects.count), PostgresBind(batch.rejects.count)])
        return outcome
    }

    // MARK: - SQL

    static let lockNaturalKeys = "SELECT lock_natural_keys($1::text[], $2::boolean[])"

    static let upsertSuppliers = """
        INSERT INTO dim_suppliers AS d (supplier_id, name, country, contact_email, contract_start, contract_end,
                                        lead_time_days, rating, updated_at, event_id)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::date[], $6::date[], $7::int[],
                             $8::numeric[], $9::timestamptz[], $10::text[])
        ON CONFLICT (supplier_id) DO UPDATE SET
            name = EXCLUDED.name, country = EXCLUDED.country, contact_email = EXCLUDED.contact_email,
            contract_start = EXCLUDED.contract_start, contract_end = EXCLUDED.contract_end,
            lead_time_days = EXCLUDED.lead_time_days, rating = EXCLUDED.rating, updated_at = EXCLUDED.updated_at,
            event_id = EXCLUDED.event_id
        WHERE (d.updated_at, d.event_id) < (EXCLUDED.updated_at, EXCLUDED.event_id)
        """

    static let insertCustomerVersions = """
        INSERT INTO customer_versions (customer_id, version_time, event_id, first_name, last_name, email, city, state,
                                       country, segment, signup_date)
        SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                             $8::text[], $9::text[], $10::text[], $11::date[])
        ON CONFLICT DO NOTHING
        """

    static let insertProductVersions = """
        INSERT INTO product_versions (product_id, version_time, event_id, name, category, supplier_id, unit_price, unit_cost)
        SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[],
                             $7::numeric[], $8::numeric[])
        ON CONFLICT DO NOTHING
        """

    /// Rebuilds the SCD2 rows of the given natural keys from all their versions: of versions at
    /// one instant only the latest (by event id) counts, as in the contract's `ValidAt`;
    /// consecutive versions with the same tracked attributes form one period, whose untracked
    /// attributes are those of its latest version. The earliest period takes the natural key's
    /// own surrogate key. Periods therefore start at distinct instants, and their keys differ.
    static func rebuild(
        table: String, versions: String, id: String, key: String, prefix: String, tracked: [String], attributes: [String]
    ) -> String {
        let trackedArray = "ARRAY[" + tracked.map { "\($0)::text" }.joined(separator: ", ") + "]"
        let latest = attributes.map { "(array_agg(\($0) ORDER BY version_time DESC, event_id DESC))[1] AS \($0)" }
            .joined(separator: ",\n                   ")
        let columns = attributes.joined(separator: ", ")
        let updates = attributes.map { "\($0) = EXCLUDED.\($0)" }.joined(separator: ", ")
        return """
            WITH s AS (
                SELECT DISTINCT ON (\(id), version_time) * FROM \(versions) WHERE \(id) = ANY($1::text[])
                ORDER BY \(id), version_time, event_id DESC
            ), v AS (
                SELECT *, (lag(\(trackedArray)) OVER w) IS DISTINCT FROM \(trackedArray) AS starts
                FROM s
                WINDOW w AS (PARTITION BY \(id) ORDER BY version_time, event_id)
            ), r AS (
                SELECT *, sum(starts::int) OVER (PARTITION BY \(id) ORDER BY version_time, event_id) AS run FROM v
            ), p AS (
                SELECT \(id), run, min(version_time) AS valid_from,
                       \(latest)
                FROM r GROUP BY \(id), run
            ), k AS (
                SELECT p.*, lead(valid_from, 1, 'infinity') OVER (PARTITION BY \(id) ORDER BY valid_from) AS valid_to,
                       row_number() OVER (PARTITION BY \(id) ORDER BY valid_from) AS n
                FROM p
            ), n AS (
                SELECT CASE WHEN n = 1 THEN hashtextextended('\(prefix):' || \(id), 0)
                            ELSE hashtextextended('\(prefix):' || \(id) || '@' || (extract(epoch FROM valid_from) * 1000000)::bigint::text, 0)
                       END AS \(key), *
                FROM k
            ), gone AS (
                DELETE FROM \(table) d WHERE d.\(id) = ANY($1::text[]) AND NOT EXISTS (SELECT 1 FROM n WHERE n.\(key) = d.\(key))
            )
            INSERT INTO \(table) AS d (\(key), \(id), \(columns), valid_from, valid_to, is_current, is_inferred, inferred_at)
            SELECT \(key), \(id), \(columns), valid_from, valid_to, valid_to = 'infinity', false, NULL FROM n
            ON CONFLICT (\(key)) DO UPDATE SET \(id) = EXCLUDED.\(id), \(updates), valid_from = EXCLUDED.valid_from,
                valid_to = EXCLUDED.valid_to, is_current = EXCLUDED.is_current, is_inferred = false, inferred_at = NULL
            """
    }

    static let rebuildCustomers = rebuild(
        table: "dim_customers", versions: "customer_versions", id: "customer_id", key: "customer_key", prefix: "customer",
        tracked: ["segment", "state", "country"],
        attributes: ["first_name", "last_name", "email", "city", "state", "country", "segment", "signup_date"])

    static let rebuildProducts = rebuild(
        table: "dim_products", versions: "product_versions", id: "product_id", key: "product_key", prefix: "product",
        tracked: ["category", "unit_price", "supplier_id"],
        attributes: ["name", "category", "supplier_id", "unit_price", "unit_cost"])

    static let inferCustomers = """
        INSERT INTO dim_customers (customer_key, customer_id, valid_from, valid_to, is_current, is_inferred, inferred_at)
        SELECT hashtextextended('customer:' || id, 0), id, '-infinity', 'infinity', true, true, now()
        FROM unnest($1::text[]) AS id
        WHERE NOT EXISTS (SELECT 1 FROM dim_customers d WHERE d.customer_id = id)
        ON CONFLICT (customer_key) DO NOTHING
        """

    static let inferProducts = """
        INSERT INTO dim_products (product_key, product_id, valid_from, valid_to, is_current, is_inferred, inferred_at)
        SELECT hashtextextended('product:' || id, 0), id, '-infinity', 'infinity', true, true, now()
        FROM unnest($1::text[]) AS id
        WHERE NOT EXISTS (SELECT 1 FROM dim_products d WHERE d.product_id = id)
        ON CONFLICT (product_key) DO NOTHING
        """

    /// The surrogate keys of the dimension periods valid at each fact's time, resolved for the
    /// whole batch in one join and returned as one array indexed by the fact's ordinal `n` (the
    /// latest period starting at or before the time; else the earliest). An array, not a join
    /// back: the planner cannot size an unnest, and a nested loop over two CTEs is quadratic.
    static func keyResolution(_ name: String, dimension: String, id: String, key: String, factID: String, factTime: String) -> String {
        """
        \(name) AS (
            SELECT array_agg(k ORDER BY n) AS keys FROM (
                SELECT DISTINCT ON (t.n) t.n, d.\(key) AS k
                FROM t LEFT JOIN \(dimension) d ON d.\(id) = t.\(factID)
                ORDER BY t.n, (d.valid_from <= t.\(factTime)) DESC, CASE WHEN d.valid_from <= t.\(factTime) THEN d.valid_from END DESC,
                         d.valid_from
            ) AS resolved
        )
        """
    }

    static let upsertSales = """
        WITH t AS (
            SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::int[], $6::numeric[], $7::numeric[],
                                 $8::text[], $9::timestamptz[], $10::timestamptz[], $11::text[])
                     WITH ORDINALITY AS t(o, l, c, p, q, up, d, s, ts, u, e, n)
        ),
        \(keyResolution("ck", dimension: "dim_customers", id: "customer_id", key: "customer_key", factID: "c", factTime: "ts")),
        \(keyResolution("pk", dimension: "dim_products", id: "product_id", key: "product_key", factID: "p", factTime: "ts"))
        INSERT INTO fact_sales AS f (order_id, line_number, customer_key, product_key, date_key, customer_id, product_id,
                                     quantity, unit_price, discount, gross_amount, discount_amount, net_amount, status,
                                     order_ts, updated_at, event_id)
        SELECT t.o, t.l, ck.keys[t.n], pk.keys[t.n], to_char(t.ts AT TIME ZONE 'UTC', 'YYYYMMDD')::int, t.c, t.p,
               t.q, t.up, t.d, line_gross_amount(t.q, t.up), line_gross_amount(t.q, t.up) - line_net_amount(t.q, t.up, t.d),
               line_net_amount(t.q, t.up, t.d), t.s, t.ts, t.u, t.e
        FROM t, ck, pk
        ON CONFLICT (order_id, line_number) DO UPDATE SET
            customer_key = EXCLUDED.customer_key, product_key = EXCLUDED.product_key, date_key = EXCLUDED.date_key,
            customer_id = EXCLUDED.customer_id, product_id = EXCLUDED.product_id, quantity = EXCLUDED.quantity,
            unit_price = EXCLUDED.unit_price, discount = EXCLUDED.discount, gross_amount = EXCLUDED.gross_amount,
            discount_amount = EXCLUDED.discount_amount, net_amount = EXCLUDED.net_amount, status = EXCLUDED.status,
            order_ts = EXCLUDED.order_ts, updated_at = EXCLUDED.updated_at, event_id = EXCLUDED.event_id
        WHERE (f.updated_at, f.event_id) < (EXCLUDED.updated_at, EXCLUDED.event_id)
        """

    static let upsertPayments = """
        INSERT INTO fact_payments AS f (payment_id, order_id, method, processor, amount, currency, status, paid_at, event_id)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[], $6::text[], $7::text[],
                             $8::timestamptz[], $9::text[])
        ON CONFLICT (payment_id) DO UPDATE SET
            order_id = EXCLUDED.order_id, method = EXCLUDED.method, processor = EXCLUDED.processor, amount = EXCLUDED.amount,
            currency = EXCLUDED.currency, status = EXCLUDED.status, paid_at = EXCLUDED.paid_at, event_id = EXCLUDED.event_id
        WHERE (f.paid_at, f.event_id) < (EXCLUDED.paid_at, EXCLUDED.event_id)
        """

    static let upsertMovements = """
        WITH t AS (
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::numeric[], $6::timestamptz[], $7::text[],
                                 $8::text[]) WITH ORDINALITY AS x(i, p, ty, q, c, at, r, e, n)
        ),
        \(keyResolution("pk", dimension: "dim_products", id: "product_id", key: "product_key", factID: "p", factTime: "at"))
        INSERT INTO fact_inventory_movements AS f (movement_id, product_key, product_id, movement_type, quantity, unit_cost,
                                                   extended_cost, moved_at, reference, event_id)
        SELECT t.i, pk.keys[t.n], t.p, t.ty, t.q, t.c, round(t.q * t.c, 2), t.at, t.r, t.e
        FROM t, pk
        ON CONFLICT (movement_id) DO UPDATE SET
            product_key = EXCLUDED.product_key, product_id = EXCLUDED.product_id, movement_type = EXCLUDED.movement_type,
            quantity = EXCLUDED.quantity, unit_cost = EXCLUDED.unit_cost, extended_cost = EXCLUDED.extended_cost,
            moved_at = EXCLUDED.moved_at, reference = EXCLUDED.reference, event_id = EXCLUDED.event_id
        WHERE (f.moved_at, f.event_id) < (EXCLUDED.moved_at, EXCLUDED.event_id)
        """

    // Re-pointing: each fact of a key whose history changed joins the period valid at its time.
    // The last condition matters under concurrency: a fact whose row a concurrent loader moved to
    // another customer (or product) while this statement waited for it is re-checked against its
    // new row, and left alone.
    static let repointSalesByCustomer = """
        UPDATE fact_sales f SET customer_key = k.key
        FROM (SELECT order_id, line_number, customer_key_at(customer_id, order_ts) AS key
              FROM fact_sales WHERE customer_id = ANY($1::text[])) AS k
        WHERE f.order_id = k.order_id AND f.line_number = k.line_number AND f.customer_key IS DISTINCT FROM k.key
          AND f.customer_id = ANY($1::text[])
        """

    static let repointSalesByProduct = """
        UPDATE fact_sales f SET product_key = k.key
        FROM (SELECT order_id, line_number, product_key_at(product_id, order_ts) AS key
              FROM fact_sales WHERE product_id = ANY($1::text[])) AS k
        WHERE f.order_id = k.order_id AND f.line_number = k.line_number AND f.product_key IS DISTINCT FROM k.key
          AND f.product_id = ANY($1::text[])
        """

    static let repointMovementsByProduct = """
        UPDATE fact_inventory_movements f SET product_key = k.key
        FROM (SELECT movement_id, product_key_at(product_id, moved_at) AS key
              FROM fact_inventory_movements WHERE product_id = ANY($1::text[])) AS k
        WHERE f.movement_id = k.movement_id AND f.product_key IS DISTINCT FROM k.key
          AND f.product_id = ANY($1::text[])
        """

    static let recordPositions = """
        INSERT INTO stream_positions AS p (consumer_group, stream, last_ms, last_seq)
        SELECT $1, s, m, q FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS t(s, m, q)
        ON CONFLICT (consumer_group, stream) DO UPDATE SET
            last_ms = EXCLUDED.last_ms, last_seq = EXCLUDED.last_seq, updated_at = now()
        WHERE (p.last_ms, p.last_seq) < (EXCLUDED.last_ms, EXCLUDED.last_seq)
        """

    static let countEvents = """
        INSERT INTO loader_counters AS c (consumer_group, name, value)
        VALUES ($1, 'events_applied', $2), ($1, 'events_rejected', $3), ($1, 'batches', 1)
        ON CONFLICT (consumer_group, name) DO UPDATE SET value = c.value + EXCLUDED.value
        """
}
