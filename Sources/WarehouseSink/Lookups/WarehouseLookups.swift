public import Contract
public import PostgresClient

/// What the producer asks of the warehouse: current prices, an order's lines as loaded, and the
/// current catalog. Read-only, over the star schema; every value is a parameter.
public enum WarehouseLookups {
    /// One round trip's time, and the server's version.
    public static func ping(_ db: PostgresConnection) async throws -> (version: String, latency: Duration) {
        let clock = ContinuousClock()
        let start = clock.now
        try await db.query("SELECT 1")
        let latency = clock.now - start
        return (try await db.query("SHOW server_version").first?[0] ?? "", latency)
    }

    /// The current (not inferred) unit price of each of `products` the warehouse knows, as text.
    public static func currentPrices(of products: [String], on db: PostgresConnection) async throws -> [String: String] {
        let rows = try await db.query(
            "SELECT product_id, unit_price::text FROM dim_products WHERE product_id = ANY($1::text[]) AND is_current AND NOT is_inferred",
            [PostgresBind(products)])
        var prices: [String: String] = [:]
        for row in rows.rows { prices[try row.decode(String.self, at: 0)] = try row.decode(String.self, at: 1) }
        return prices
    }

    /// Of `customers` and `products`, those the warehouse holds no loaded record of (absent, or
    /// only an inferred member): an order naming them makes or keeps an inferred member.
    public static func unknownMembers(
        customers: [String], products: [String], on db: PostgresConnection
    ) async throws -> (customers: [String], products: [String]) {
        func known(_ sql: String, _ ids: [String]) async throws -> Set<String> {
            guard !ids.isEmpty else { return [] }
            return Set(try await db.query(sql, [PostgresBind(ids)]).rows.map { try $0.decode(String.self, at: 0) })
        }
        let customersKnown = try await known(
            "SELECT DISTINCT customer_id FROM dim_customers WHERE customer_id = ANY($1::text[]) AND NOT is_inferred", customers)
        let productsKnown = try await known(
            "SELECT DISTINCT product_id FROM dim_products WHERE product_id = ANY($1::text[]) AND NOT is_inferred", products)
        return (customers.filter { !customersKnown.contains($0) }, products.filter { !productsKnown.contains($0) })
    }

    /// One order line as the warehouse holds it: its columns in the contract's text form, and the
    /// version time of the row loaded.
    public struct OrderLine: Sendable, Equatable {
        public var values: [String: String]
        public var updatedAt: Timestamp
    }

    /// The lines of `order` (all, or only `line`), by line number.
    public static func orderLines(_ order: String, line: Int?, on db: PostgresConnection) async throws -> [OrderLine] {
        let rows = try await db.query("""
            SELECT line_number::text, customer_id, product_id, quantity::text, unit_price::text, discount::text,
                   to_char(order_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), status,
                   (extract(epoch FROM updated_at) * 1000000)::bigint
            FROM fact_sales WHERE order_id = $1 AND ($2::int IS NULL OR line_number = $2::int) ORDER BY line_number
            """, [PostgresBind(order), line.map { PostgresBind(String($0)) } ?? .null])
        return try rows.rows.map { row in
            OrderLine(
                values: [
                    "order_id": order, "line_number": try row.decode(String.self, at: 0), "customer_id": try row.decode(String.self, at: 1),
                    "product_id": try row.decode(String.self, at: 2), "quantity": try row.decode(String.self, at: 3),
                    "unit_price": try row.decode(String.self, at: 4), "discount": try row.decode(String.self, at: 5),
                    "order_ts": try row.decode(String.self, at: 6), "status": try row.decode(String.self, at: 7),
                ],
                updatedAt: Timestamp(microseconds: try row.decode(Int64.self, at: 8)))
        }
    }

    /// A current customer, as the synthetic load picks them.
    public struct CurrentCustomer: Sendable, Equatable {
        public var id: String, segment: String, state: String, country: String
    }

    /// A current product, as the synthetic load picks them.
    public struct CurrentProduct: Sendable, Equatable {
        public var id: String, name: String, category: String, supplierID: String, price: DecimalValue
    }

    /// The current, not inferred customers and products with the attributes a new order needs
    /// (at most 100,000 of each, by id).
    public static func currentCatalog(on db: PostgresConnection) async throws -> (customers: [CurrentCustomer], products: [CurrentProduct]) {
        let customers = try await db.query("""
            SELECT customer_id, segment, coalesce(state, ''), coalesce(country, 'US') FROM dim_customers
            WHERE is_current AND NOT is_inferred AND segment IS NOT NULL ORDER BY customer_id LIMIT 100000
            """).rows.compactMap { row -> CurrentCustomer? in
            guard let id = try? row.decode(String.self, at: 0), let segment = try? row.decode(String.self, at: 1),
                  let state = try? row.decode(String.self, at: 2), let country = try? row.decode(String.self, at: 3) else { return nil }
            return CurrentCustomer(id: id, segment: segment, state: state, country: country)
        }
        let products = try await db.query("""
            SELECT product_id, coalesce(name, product_id), category, coalesce(supplier_id, ''), unit_price::text FROM dim_products
            WHERE is_current AND NOT is_inferred AND category IS NOT NULL AND unit_price IS NOT NULL ORDER BY product_id LIMIT 100000
            """).rows.compactMap { row -> CurrentProduct? in
            guard let id = try? row.decode(String.self, at: 0), let name = try? row.decode(String.self, at: 1),
                  let category = try? row.decode(String.self, at: 2), let supplier = try? row.decode(String.self, at: 3),
                  let price = (try? row.decode(String.self, at: 4)).flatMap(DecimalValue.init) else { return nil }
            return CurrentProduct(id: id, name: name, category: category, supplierID: supplier, price: price)
        }
        return (customers, products)
    }
}
