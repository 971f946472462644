import Foundation
public import RedisClient
public import Contract
import PostgresClient
import StreamRuntime
import WarehouseSink
import RedisWire

/// The analytics API's answers from PostgreSQL, cached in Redis (cache-aside).
///
/// Every answer is stored with the cache generation it was computed at. The warehouse loader
/// increments the generation after each batch it commits (and once when it starts, which covers
/// a crash between a commit and its increment), so an answer is served only while nothing new
/// has been loaded; a TTL bounds it anyway. Hits and misses are counted in Redis (every process
/// shares them) and in the metrics.
public actor AnalyticsCache {
    /// The API's report names and the `sql/analytics` queries behind them.
    public static let reports: [String: String] = [
        "monthly-revenue": "monthly_revenue",
        "top-products": "top_products",
        "customers": "customer_analysis",
        "payments": "payment_analysis",
        "inventory": "inventory_status",
    ]

    public struct Answer: Sendable {
        /// The JSON body: `{"report", "rows", "computed_at", "generation"}`.
        public var body: [UInt8]
        public var hit: Bool
    }

    public struct UnknownReport: Error, CustomStringConvertible {
        public let name: String
        public var description: String {
            "no analytics report \(name): known are \(AnalyticsCache.reports.keys.sorted().joined(separator: ", "))"
        }
    }

    private let keys: CacheKeys
    /// A folder of queries to run instead of the built-in ones, if any.
    private let folder: String?
    private let databaseURL: String
    private let ttl: Duration
    private var postgres: PostgresConnection?

    public init(layout: StreamLayout, folder: String?, databaseURL: String, ttl: Duration) {
        self.keys = CacheKeys(layout: layout)
        self.folder = folder
        self.databaseURL = databaseURL
        self.ttl = ttl
    }

    /// The answer for `name`: from the cache when it is current, else from PostgreSQL.
    public func answer(_ name: String, redis: RedisConnection) async throws -> Answer {
        guard let stem = Self.reports[name] else { throw UnknownReport(name: name) }
        let entry = keys.entry(name)
        let reply = try await redis.command("MGET", keys.generation, entry).throwingServerError()
        let values = reply.array ?? []
        let generation = values.first?.string ?? "0"
        if values.count == 2, let cached = values[1].bytes, let newline = cached.firstIndex(of: UInt8(ascii: "\n")),
           String(decoding: cached[..<newline], as: UTF8.self) == generation {
            _ = try? await redis.command("HINCRBY", keys.stats, "hits", "1")
            PipelineMetrics.cache(hit: true)
            return Answer(body: Array(cached[(newline + 1)...]), hit: true)
        }
        let report = try AnalyticsReport(name: stem, folder: folder)
        let rows = try await query(report)
        let object: [String: Any] = [
            "report": name, "rows": AnalyticsReport.objects(rows), "computed_at": Timestamp.now.description, "generation": Int(generation) ?? 0,
        ]
        let body = Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
        var stored = Array(generation.utf8)
        stored.append(UInt8(ascii: "\n"))
        stored += body
        _ = try? await redis.command(bytes: [Array("SET".utf8), Array(entry.utf8), stored, Array("PX".utf8), Array(String(ttl.milliseconds).utf8)])
        _ = try? await redis.command("HINCRBY", keys.stats, "misses", "1")
        PipelineMetrics.cache(hit: false)
        return Answer(body: body, hit: false)
    }

    /// Hits and misses so far (all processes).
    public static func stats(_ layout: StreamLayout, redis: RedisConnection) async throws -> (hits: Int, misses: Int) {
        let reply = try await redis.command("HMGET", CacheKeys(layout: layout).stats, "hits", "misses").throwingServerError()
        let values = reply.array ?? []
        return (Int(values.first?.string ?? "") ?? 0, Int(values.dropFirst().first?.string ?? "") ?? 0)
    }

    private func query(_ report: AnalyticsReport) async throws -> PostgresRows {
        do {
            if postgres == nil { postgres = try await PostgresConnection(databaseURL) }
            return try await report.run(on: postgres!)
        } catch {
            postgres = nil
            throw error
        }
    }
}
