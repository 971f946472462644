public import RedisClient
import RedisWire

/// Slows a publisher down while the slowest consumer group is too far behind, instead of letting
/// the streams (and Redis's memory) grow without bound: above `limit` entries of lag it waits,
/// until the lag is back under `resumeBelow`.
public struct BackPressure: Sendable {
    /// Pause above this many undelivered entries (the slowest group, summed over its streams).
    public var limit: Int
    /// Resume below this (hysteresis, so a publisher does not flap at the limit).
    public var resumeBelow: Int
    /// How often the lag is read while publishing.
    public var checkEvery: Duration = .milliseconds(500)
    public let streams: [String]

    public init(limit: Int, streams: [String]) {
        self.limit = limit
        self.resumeBelow = max(0, limit * 8 / 10)
        self.streams = streams
    }

    /// The slowest group's lag: per group, the entries not yet delivered summed over the streams
    /// (Redis's figure; when it has none, counted from the group's position).
    public static func slowestLag(_ streams: [String], on redis: RedisConnection) async throws -> (group: String, lag: Int)? {
        var lags: [String: Int] = [:]
        for row in try await LagMonitor.groupLags(streams, on: redis) { lags[row.group, default: 0] += row.lag }
        return lags.max { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }.map { ($0.key, $0.value) }
    }

    /// Returns at once when the lag is under the limit; otherwise reports and waits until it is
    /// under `resumeBelow` (or `cancelled` says stop). Returns the seconds spent waiting.
    public func wait(
        on redis: RedisConnection, cancelled: @Sendable () -> Bool = { false },
        report: @Sendable (_ group: String, _ lag: Int) -> Void
    ) async throws -> Double {
        try await wait(on: redis, from: try await Self.slowestLag(streams, on: redis), cancelled: cancelled, report: report)
    }

    /// `wait`, starting from a reading of the slowest lag the caller already made.
    public func wait(
        on redis: RedisConnection, from reading: (group: String, lag: Int)?, cancelled: @Sendable () -> Bool = { false },
        report: @Sendable (_ group: String, _ lag: Int) -> Void
    ) async throws -> Double {
        guard let slowest = reading, slowest.lag > limit else { return 0 }
        let clock = ContinuousClock()
        let started = clock.now
        var current = slowest
        report(current.group, current.lag)
        while current.lag >= resumeBelow && !cancelled() {
            try await Task.sleep(for: .milliseconds(200))
            guard let next = try await Self.slowestLag(streams, on: redis) else { break }
            current = next
            report(current.group, current.lag)
        }
        return (clock.now - started).seconds
    }
}
