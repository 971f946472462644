public import PostgresClient

/// `warehouse check`: data-quality checks over the star schema. A hard check that fails makes the
/// command exit non-zero; a soft one warns (business data can legitimately break it).
public struct QualityChecks: Sendable {
    public enum Status: String, Codable, Sendable { case ok, warn, fail }

    public struct Result: Codable, Sendable, Equatable {
        public var name: String
        public var status: Status
        public var value: Int
        public var detail: String
    }

    public struct Report: Codable, Sendable {
        public var passed: Bool
        public var checks: [Result]
    }

    struct Check {
        var name: String
        var hard: Bool
        var sql: String
        var detail: String
    }

    /// Each query returns one number: the count of offending rows (0 is good).
    static let checks: [Check] = [
        Check(name: "required_values", hard: true, sql: """
            SELECT (SELECT count(*) FROM dim_customers WHERE NOT is_inferred AND (country IS NULL OR segment IS NULL))
                 + (SELECT count(*) FROM dim_products WHERE NOT is_inferred AND (name IS NULL OR category IS NULL OR unit_price IS NULL))
                 + (SELECT count(*) FROM fact_sales WHERE status IS NULL OR order_ts IS NULL OR net_amount IS NULL)
            """, detail: "rows missing a required value"),
        Check(name: "sales_have_dimensions", hard: true, sql: """
            SELECT count(*) FROM fact_sales f
            WHERE NOT EXISTS (SELECT 1 FROM dim_customers d WHERE d.customer_key = f.customer_key)
               OR NOT EXISTS (SELECT 1 FROM dim_products d WHERE d.product_key = f.product_key)
               OR NOT EXISTS (SELECT 1 FROM dim_dates d WHERE d.date_key = f.date_key)
            """, detail: "sales whose customer, product or date row is missing"),
        Check(name: "sales_join_the_version_of_their_time", hard: true, sql: """
            SELECT count(*) FROM fact_sales f WHERE f.customer_key IS DISTINCT FROM customer_key_at(f.customer_id, f.order_ts)
                OR f.product_key IS DISTINCT FROM product_key_at(f.product_id, f.order_ts)
            """, detail: "sales pointing at a dimension period other than the one valid at order_ts"),
        Check(name: "movements_have_products", hard: true, sql: """
            SELECT count(*) FROM fact_inventory_movements f
            WHERE NOT EXISTS (SELECT 1 FROM dim_products d WHERE d.product_key = f.product_key)
            """, detail: "inventory movements whose product row is missing"),
        Check(name: "one_current_row_per_key", hard: true, sql: """
            SELECT (SELECT count(*) FROM (SELECT customer_id FROM dim_customers GROUP BY 1 HAVING count(*) FILTER (WHERE is_current) <> 1) c)
                 + (SELECT count(*) FROM (SELECT product_id FROM dim_products GROUP BY 1 HAVING count(*) FILTER (WHERE is_current) <> 1) p)
            """, detail: "natural keys without exactly one current SCD2 row"),
        Check(name: "scd2_periods_are_contiguous", hard: true, sql: """
            SELECT count(*) FROM (
                SELECT valid_to, lead(valid_from) OVER (PARTITION BY customer_id ORDER BY valid_from) AS next FROM dim_customers
                UNION ALL
                SELECT valid_to, lead(valid_from) OVER (PARTITION BY product_id ORDER BY valid_from) FROM dim_products
            ) s WHERE next IS NOT NULL AND next <> valid_to
            """, detail: "SCD2 periods with a gap or an overlap"),
        Check(name: "net_not_above_gross", hard: true, sql: "SELECT count(*) FROM fact_sales WHERE net_amount > gross_amount",
              detail: "sales whose net amount exceeds the gross"),
        Check(name: "quantity_positive", hard: true, sql: "SELECT count(*) FROM fact_sales WHERE quantity <= 0",
              detail: "sales with a quantity of zero or less"),
        Check(name: "net_amount_formula", hard: true, sql: """
            SELECT count(*) FROM fact_sales WHERE net_amount <> line_net_amount(quantity, unit_price, discount)
            """, detail: "sales whose net amount is not round(quantity x price x (1 - discount), 2)"),
        Check(name: "inferred_members_unresolved", hard: false, sql: """
            SELECT (SELECT count(*) FROM dim_customers WHERE is_inferred) + (SELECT count(*) FROM dim_products WHERE is_inferred)
            """, detail: "customers or products known only from facts (waiting for their dimension row)"),
        Check(name: "inferred_members_older_than_a_day", hard: true, sql: """
            SELECT (SELECT count(*) FROM dim_customers WHERE is_inferred AND inferred_at < now() - interval '1 day')
                 + (SELECT count(*) FROM dim_products WHERE is_inferred AND inferred_at < now() - interval '1 day')
            """, detail: "inferred members whose dimension row has not arrived within a day"),
        Check(name: "payments_match_orders", hard: false, sql: """
            SELECT count(*) FROM (
                SELECT o.order_id FROM (SELECT order_id, sum(net_amount) FILTER (WHERE counts_as_revenue(status)) AS due
                                        FROM fact_sales GROUP BY order_id) o
                LEFT JOIN (SELECT order_id, sum(amount) FILTER (WHERE status = 'captured') AS paid FROM fact_payments GROUP BY order_id) p
                       ON p.order_id = o.order_id
                WHERE abs(coalesce(o.due, 0) - coalesce(p.paid, 0)) > 0.01
            ) m
            """, detail: "orders whose captured payments differ from their revenue by more than a cent"),
        Check(name: "no_negative_stock", hard: false, sql: """
            SELECT count(*) FROM (SELECT product_id FROM fact_inventory_movements GROUP BY 1 HAVING sum(quantity) < 0) s
            """, detail: "products whose movements add up to negative stock"),
        Check(name: "payments_have_orders", hard: false, sql: """
            SELECT count(*) FROM fact_payments p WHERE NOT EXISTS (SELECT 1 FROM fact_sales f WHERE f.order_id = p.order_id)
            """, detail: "payments for orders the warehouse has not seen (yet)"),
    ]

    public init() {}

    public func run(on db: PostgresConnection) async throws -> Report {
        var results: [Result] = []
        for check in Self.checks {
            let value = try await db.query(check.sql).first?.decode(Int.self, at: 0) ?? 0
            let status: Status = value == 0 ? .ok : (check.hard ? .fail : .warn)
            results.append(Result(name: check.name, status: status, value: value, detail: check.detail))
        }
        return Report(passed: !results.contains { $0.status == .fail }, checks: results)
    }
}
