public import PostgresClient

/// The `report summary` shape: the warehouse's headline figures. `warehouse report summary --json`
/// computes it with SQL from PostgreSQL; `warehouse kpis --json` will print the same shape from
/// Redis, and `reconcile` compares the two. Money is a string with two decimals; months are
/// `YYYY-MM` in UTC.
public struct Summary: Codable, Sendable, Equatable {
    public struct Revenue: Codable, Sendable, Equatable {
        public var total: String
        public var lines: Int
        public var byMonth: [String: String]
        public var bySegmentAsWas: [String: String]
        public var bySegmentAsIs: [String: String]
        public var byCategoryAsWas: [String: String]
        public var byStateAsWas: [String: String]

        enum CodingKeys: String, CodingKey {
            case total, lines
            case byMonth = "by_month"
            case bySegmentAsWas = "by_segment_as_was"
            case bySegmentAsIs = "by_segment_as_is"
            case byCategoryAsWas = "by_category_as_was"
            case byStateAsWas = "by_state_as_was"
        }
    }

    public struct ProductRevenue: Codable, Sendable, Equatable {
        public var productID: String
        public var revenue: String
        enum CodingKeys: String, CodingKey {
            case productID = "product_id"
            case revenue
        }
    }

    public struct CountAndAmount: Codable, Sendable, Equatable {
        public var count: Int
        public var amount: String
    }

    public struct Payments: Codable, Sendable, Equatable {
        public var byMethod: [String: CountAndAmount]
        public var byStatus: [String: CountAndAmount]
        enum CodingKeys: String, CodingKey {
            case byMethod = "by_method"
            case byStatus = "by_status"
        }
    }

    public struct OnHand: Codable, Sendable, Equatable {
        public var productID: String
        public var onHand: Int
        enum CodingKeys: String, CodingKey {
            case productID = "product_id"
            case onHand = "on_hand"
        }
    }

    public struct Inventory: Codable, Sendable, Equatable {
        public var totalOnHand: Int
        public var lowest: [OnHand]
        enum CodingKeys: String, CodingKey {
            case totalOnHand = "total_on_hand"
            case lowest
        }
    }

    public struct Counts: Codable, Sendable, Equatable {
        public var orders: Int
        public var orderLines: Int
        public var customers: Int
        public var products: Int
        public var suppliers: Int
        public var payments: Int
        public var movements: Int
        enum CodingKeys: String, CodingKey {
            case orders
            case orderLines = "order_lines"
            case customers, products, suppliers, payments, movements
        }
    }

    public var revenue: Revenue
    public var topProducts: [ProductRevenue]
    public var payments: Payments
    public var linesByStatus: [String: Int]
    public var inventory: Inventory
    public var counts: Counts

    enum CodingKeys: String, CodingKey {
        case revenue
        case topProducts = "top_products"
        case payments
        case linesByStatus = "lines_by_status"
        case inventory, counts
    }
}

extension Summary {
    /// Computes the summary with SQL over the star schema.
    public static func fromWarehouse(_ db: PostgresConnection) async throws -> Summary {
        let revenueFilter = "f.status IN ('placed', 'shipped', 'delivered')"
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
