public import KPIModel
public import PostgresClient
import Contract

extension Summary {
    /// Computes the summary with SQL over the star schema.
    public static func fromWarehouse(_ db: PostgresConnection) async throws -> Summary {
        let revenueFilter = "counts_as_revenue(f.status)"
        func money(_ rows: PostgresRows) throws -> [String: String] {
            var out: [String: String] = [:]
            for row in rows.rows { out[try row.decode(String.self, at: 0)] = try row.decode(String.self, at: 1) }
            return out
        }
        let total = try await db.query(
            "SELECT coalesce(sum(net_amount), 0)::numeric(16,2)::text, count(*) FROM fact_sales f WHERE \(revenueFilter)")
        let byMonth = try await db.query("""
            SELECT to_char(f.order_ts AT TIME ZONE 'UTC', 'YYYY-MM'), sum(f.net_amount)::numeric(16,2)::text
            FROM fact_sales f WHERE \(revenueFilter) GROUP BY 1
            """)
        let segmentWas = try await db.query("""
            SELECT coalesce(d.segment, 'unknown'), sum(f.net_amount)::numeric(16,2)::text
            FROM fact_sales f LEFT JOIN dim_customers d ON d.customer_key = f.customer_key
            WHERE \(revenueFilter) GROUP BY 1
            """)
        let segmentIs = try await db.query("""
            SELECT coalesce(d.segment, 'unknown'), sum(f.net_amount)::numeric(16,2)::text
            FROM fact_sales f LEFT JOIN dim_customers d ON d.customer_id = f.customer_id AND d.is_current
            WHERE \(revenueFilter) GROUP BY 1
            """)
        let categoryWas = try await db.query("""
            SELECT coalesce(d.category, 'unknown'), sum(f.net_amount)::numeric(16,2)::text
            FROM fact_sales f LEFT JOIN dim_products d ON d.product_key = f.product_key
            WHERE \(revenueFilter) GROUP BY 1
            """)
        let stateWas = try await db.query("""
            SELECT coalesce(d.state, 'unknown'), sum(f.net_amount)::numeric(16,2)::text
            FROM fact_sales f LEFT JOIN dim_customers d ON d.customer_key = f.customer_key
            WHERE \(revenueFilter) GROUP BY 1
            """)
        let top = try await db.query("""
            SELECT f.product_id, sum(f.net_amount)::numeric(16,2)::text AS revenue
            FROM fact_sales f WHERE \(revenueFilter)
            GROUP BY f.product_id ORDER BY sum(f.net_amount) DESC, f.product_id LIMIT 20
            """)
        let byMethod = try await db.query(
            "SELECT method, count(*), sum(amount)::numeric(16,2)::text FROM fact_payments GROUP BY method")
        let byStatus = try await db.query(
            "SELECT status, count(*), sum(amount)::numeric(16,2)::text FROM fact_payments GROUP BY status")
        let statuses = try await db.query("SELECT status, count(*) FROM fact_sales GROUP BY status")
        let onHand = try await db.query("""
            SELECT product_id, sum(quantity)::bigint FROM fact_inventory_movements
            GROUP BY product_id ORDER BY sum(quantity), product_id
            """)
        let counts = try requireRow(await db.query("""
            SELECT (SELECT count(DISTINCT order_id) FROM fact_sales),
                   (SELECT count(*) FROM fact_sales),
                   (SELECT count(DISTINCT customer_id) FROM dim_customers WHERE NOT is_inferred),
                   (SELECT count(DISTINCT product_id) FROM dim_products WHERE NOT is_inferred),
                   (SELECT count(*) FROM dim_suppliers),
                   (SELECT count(*) FROM fact_payments),
                   (SELECT count(*) FROM fact_inventory_movements)
            """))
        func grouped(_ rows: PostgresRows) throws -> [String: CountAndAmount] {
            var out: [String: CountAndAmount] = [:]
            for row in rows.rows {
                out[try row.decode(String.self, at: 0)] = CountAndAmount(count: try row.decode(Int.self, at: 1), amount: try row.decode(String.self, at: 2))
            }
            return out
        }
        var lines = Dictionary(uniqueKeysWithValues: OrderStatus.allCases.map { ($0.rawValue, 0) })
        for row in statuses.rows { lines[try row.decode(String.self, at: 0)] = try row.decode(Int.self, at: 1) }
        let totalRow = try requireRow(total)
        return Summary(
            revenue: Revenue(
                total: try totalRow.decode(String.self, at: 0), lines: try totalRow.decode(Int.self, at: 1),
                byMonth: try money(byMonth), bySegmentAsWas: try money(segmentWas), bySegmentAsIs: try money(segmentIs),
                byCategoryAsWas: try money(categoryWas), byStateAsWas: try money(stateWas)),
            topProducts: try top.rows.map { ProductRevenue(productID: try $0.decode(String.self, at: 0), revenue: try $0.decode(String.self, at: 1)) },
            payments: Payments(byMethod: try grouped(byMethod), byStatus: try grouped(byStatus)),
            linesByStatus: lines,
            inventory: Inventory(
                totalOnHand: try onHand.rows.reduce(0) { $0 + (try $1.decode(Int.self, at: 1)) },
                lowest: try onHand.rows.prefix(20).map { OnHand(productID: try $0.decode(String.self, at: 0), onHand: try $0.decode(Int.self, at: 1)) }),
            counts: Counts(
                orders: try counts.decode(Int.self, at: 0), orderLines: try counts.decode(Int.self, at: 1),
                customers: try counts.decode(Int.self, at: 2), products: try counts.decode(Int.self, at: 3),
                suppliers: try counts.decode(Int.self, at: 4), payments: try counts.decode(Int.self, at: 5),
                movements: try counts.decode(Int.self, at: 6)))
    }
}

/// The first row of a result that always has one.
func requireRow(_ rows: PostgresRows) throws -> PostgresRow {
    guard let row = rows.first else { throw PostgresError(.protocolError, "expected a row") }
    return row
}
