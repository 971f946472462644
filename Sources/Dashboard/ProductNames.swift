import Foundation
import PostgresClient

/// Product names for the page's product ids (top products, low stock), from the current version
/// in dim_products, on a PostgreSQL connection of its own; an answer is reused for `ttl`, so a page
/// refreshing its labels costs PostgreSQL one indexed lookup per product a minute at most.
public actor ProductNames {
    public struct Product: Codable, Sendable, Equatable {
        public var name: String?
        public var category: String?
        /// A member inferred from a fact before its product event arrived: no name yet.
        public var inferred: Bool
    }

    /// The most ids one request may ask for.
    public static let maximumIDs = 100

    private let databaseURL: String
    private let ttl: Duration
    private var postgres: PostgresConnection?
    private var cache: [String: (product: Product?, at: ContinuousClock.Instant)] = [:]

    public init(databaseURL: String, ttl: Duration = .seconds(60)) {
        self.databaseURL = databaseURL
        self.ttl = ttl
    }

    /// The products among `ids` that the warehouse knows.
    public func lookup(_ ids: [String]) async throws -> [String: Product] {
        let now = ContinuousClock.now
        let missing = Array(Set(ids.filter { cache[$0].map { now - $0.at >= ttl } ?? true }))
        if !missing.isEmpty {
            let rows: PostgresRows
            do {
                if postgres == nil { postgres = try await PostgresConnection(databaseURL, connectTimeout: .seconds(2)) }
                rows = try await postgres!.query(
                    """
                    SELECT DISTINCT ON (product_id) product_id, name, category, is_inferred::text
                    FROM dim_products WHERE product_id = ANY($1::text[])
                    ORDER BY product_id, is_current DESC, valid_from DESC
                    """, [.array(missing)])
            } catch {
                postgres = nil
                throw error
            }
            var found: [String: Product] = [:]
            for row in rows.rows {
                guard let id = row[0] else { continue }
                found[id] = Product(name: row[1], category: row[2], inferred: row[3] == "true")
            }
            if cache.count > 10_000 { cache.removeAll() }
            for id in missing { cache[id] = (found[id], now) }
        }
        var out: [String: Product] = [:]
        for id in ids { if let product = cache[id]?.product { out[id] = product } }
        return out
    }
}
