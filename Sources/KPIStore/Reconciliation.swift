import Foundation
public import PostgresClient
public import RedisClient
public import Contract
public import KPIModel
import StreamRuntime
import WarehouseSink

/// `warehouse reconcile`: the summary computed from PostgreSQL against the same figures read from
/// Redis, KPI by KPI (every leaf of the summary: money compared as the exact decimal strings,
/// to the cent).
public struct Reconciliation: Sendable, Codable, Equatable {
    public struct Drift: Sendable, Codable, Equatable {
        public var kpi: String
        public var redis: String?
        public var postgres: String?
    }

    public struct GroupState: Sendable, Codable, Equatable {
        public var group: String
        public var lag: Int
        public var pending: Int
    }

    /// How many KPIs were compared.
    public var compared: Int
    public var drift: [Drift]
    /// Lag and pending entries of the two groups when the figures were read.
    public var groups: [GroupState]

    public var isClean: Bool { drift.isEmpty }

    /// Compares two summaries leaf by leaf.
    public static func compare(redis: Summary, postgres: Summary) throws -> (compared: Int, drift: [Drift]) {
        let a = try flatten(redis), b = try flatten(postgres)
        let names = Set(a.keys).union(b.keys).sorted()
        let drift = names.filter { a[$0] != b[$0] }.map { Drift(kpi: $0, redis: a[$0], postgres: b[$0]) }
        return (names.count, drift)
    }

    /// `revenue.by_month.2024-03` → `1234.56`, `top_products[0].product_id` → `P007`, …
    static func flatten(_ summary: Summary) throws -> [String: String] {
        let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(summary))
        var out: [String: String] = [:]
        func walk(_ value: Any, _ path: String) {
            switch value {
            case let dictionary as [String: Any]:
                for (key, child) in dictionary { walk(child, path.isEmpty ? key : "\(path).\(key)") }
            case let array as [Any]:
                for (index, child) in array.enumerated() { walk(child, "\(path)[\(index)]") }
                if array.isEmpty { out[path + "[]"] = "empty" }
            default:
                out[path] = "\(value)"
            }
        }
        walk(object, "")
        return out
    }

    /// Lag (entries not yet delivered) and pending entries of `group` over `streams`.
    public static func groupState(_ group: String, streams: [String], on redis: RedisConnection) async throws -> GroupState {
        let rows = try await LagMonitor.groupLags(streams, on: redis).filter { $0.group == group }
        var lag = rows.reduce(0) { $0 + $1.lag }
        // A stream the group has not been created on yet: all of it is still to be read.
        for stream in streams where !rows.contains(where: { $0.stream == stream }) { lag += try await redis.xlen(stream) }
        return GroupState(group: group, lag: lag, pending: rows.reduce(0) { $0 + $1.pending })
    }

    /// Reads both sides (waiting up to `wait` for both groups to catch up first) and compares them.
    public static func run(
        layout: StreamLayout, redis: RedisConnection, postgres: PostgresConnection, wait: Duration = .zero,
        groups: [String] = ["warehouse", "kpi"]
    ) async throws -> Reconciliation {
        let streams = layout.allStreams
        let deadline = ContinuousClock.now + wait
        var states: [GroupState] = []
        while true {
            states = []
            for group in groups { states.append(try await groupState(group, streams: streams, on: redis)) }
            if states.allSatisfy({ $0.lag == 0 && $0.pending == 0 }) || ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let fromRedis = try await KPISnapshot.read(KPIKeys(layout: layout), on: redis).summary
        let fromPostgres = try await Summary.fromWarehouse(postgres)
        let (compared, drift) = try compare(redis: fromRedis, postgres: fromPostgres)
        return Reconciliation(compared: compared, drift: drift, groups: states)
    }
}
