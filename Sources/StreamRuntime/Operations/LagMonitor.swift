public import Foundation
public import RedisClient
public import RedisWire

/// `warehouse lag`: per stream partition × consumer group, how far behind the group is (in entries
/// and in seconds), who is consuming, how fast, and a status by Burrow-style rules evaluated over a
/// sampling window (two readings `window` apart):
///
/// - OK: caught up (at any reading of the window), or behind and catching up (or keeping level);
/// - WARN: behind at every reading, consuming, and the lag grew from each reading to the next (and
///   by more than `warnGrowth` over the window) — Burrow's rule, so a lag that merely fluctuates
///   between batches is not a warning;
/// - STALLED: behind, with a live consumer, and nothing consumed over the window;
/// - STOPPED: behind, and no live consumer (none, or every one idle past `stoppedAfter`).
public struct LagMonitor: Sendable {
    public enum Status: String, Sendable, Codable, Comparable {
        case ok = "OK", warn = "WARN", stalled = "STALLED", stopped = "STOPPED"
        var rank: Int { [.ok: 0, .warn: 1, .stalled: 2, .stopped: 3][self]! }
        public static func < (a: Status, b: Status) -> Bool { a.rank < b.rank }
        /// Whether `lag` exits non-zero for it.
        public var alerts: Bool { self == .stalled || self == .stopped }
    }

    public struct Thresholds: Sendable {
        /// A consumer idle longer than this is not live.
        public var stoppedAfter: Duration = .seconds(30)
        /// Lag growth over the window tolerated before WARN (entries).
        public var warnGrowth = 0
        public init() {}
    }

    public struct Consumer: Sendable, Codable, Equatable {
        public var name: String
        public var idleMilliseconds: Int
        public var pending: Int
        enum CodingKeys: String, CodingKey {
            case name, pending
            case idleMilliseconds = "idle_ms"
        }
    }

    /// One reading of one stream × group.
    public struct Reading: Sendable, Codable, Equatable {
        public var stream: String
        public var group: String
        public var length: Int
        public var entriesAdded: Int?
        public var entriesRead: Int?
        /// Entries not yet delivered to the group.
        public var lag: Int
        /// "redis" when XINFO GROUPS reported it, "computed" when it had to be counted.
        public var lagSource: String
        public var pending: Int
        /// Now minus the time of the oldest pending entry's id (nil when none pending).
        public var oldestPendingAgeSeconds: Double?
        /// Now minus the time of the oldest entry not yet delivered (0 when caught up).
        public var timeLagSeconds: Double
        public var consumers: [Consumer]
        public var lastDeliveredID: String

        enum CodingKeys: String, CodingKey {
            case stream, group, length, lag, pending, consumers
            case entriesAdded = "entries_added", entriesRead = "entries_read", lagSource = "lag_source"
            case oldestPendingAgeSeconds = "oldest_pending_age_s", timeLagSeconds = "time_lag_s"
            case lastDeliveredID = "last_delivered_id"
        }
    }

    /// A stream × group over the window: the last reading, rates, ETA and status.
    public struct Row: Sendable, Codable, Equatable {
        public var reading: Reading
        /// Entries per second delivered to the group over the window.
        public var consumeRate: Double
        /// Entries per second added to the stream over the window.
        public var produceRate: Double
        /// Seconds until caught up at the current rates (nil when not converging).
        public var etaSeconds: Double?
        public var lagChange: Int
        public var status: Status

        public func encode(to encoder: any Encoder) throws {
            try reading.encode(to: encoder)
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(consumeRate, forKey: .consumeRate)
            try container.encode(produceRate, forKey: .produceRate)
            try container.encode(etaSeconds, forKey: .etaSeconds)
            try container.encode(lagChange, forKey: .lagChange)
            try container.encode(status, forKey: .status)
        }

        public init(from decoder: any Decoder) throws {
            reading = try Reading(from: decoder)
            let container = try decoder.container(keyedBy: Keys.self)
            consumeRate = try container.decode(Double.self, forKey: .consumeRate)
            produceRate = try container.decode(Double.self, forKey: .produceRate)
            etaSeconds = try container.decodeIfPresent(Double.self, forKey: .etaSeconds)
            lagChange = try container.decode(Int.self, forKey: .lagChange)
            status = try container.decode(Status.self, forKey: .status)
        }

        init(reading: Reading, consumeRate: Double, produceRate: Double, etaSeconds: Double?, lagChange: Int, status: Status) {
            self.reading = reading
            self.consumeRate = consumeRate
            self.produceRate = produceRate
            self.etaSeconds = etaSeconds
            self.lagChange = lagChange
            self.status = status
        }

        enum Keys: String, CodingKey {
            case consumeRate = "consume_rate", produceRate = "produce_rate", etaSeconds = "eta_s", lagChange = "lag_change", status
        }
    }

    public var thresholds: Thresholds
    public init(thresholds: Thresholds = Thresholds()) { self.thresholds = thresholds }

    /// Reads every group of every stream in `streams` (streams that do not exist are skipped).
    public func read(streams: [String], on redis: RedisConnection, now: Date = Date()) async throws -> [Reading] {
        var out: [Reading] = []
        let nowMs = now.timeIntervalSince1970 * 1000
        for stream in streams {
            guard try await redis.command("EXISTS", stream).int == 1 else { continue }
            let info = try await redis.xinfoStream(stream)
            for group in try await redis.xinfoGroups(stream) {
                var lag: Int
                var source = "redis"
                if let reported = group.lag {
                    lag = reported
                } else {
                    lag = try await count(stream, after: group.lastDeliveredID, on: redis)
                    source = "computed"
                }
                let next = try await Self.firstUndelivered(stream, after: group.lastDeliveredID, on: redis)
                let timeLag = next.map { max(0, (nowMs - Double($0.id.milliseconds)) / 1000) } ?? 0
                if next == nil { lag = 0 }
                var oldest: Double?
                if group.pending > 0 {
                    let summary = try await redis.xpending(stream, group: group.name)
                    oldest = summary.smallest.map { max(0, (nowMs - Double($0.milliseconds)) / 1000) }
                }
                let consumers = try await redis.xinfoConsumers(stream, group: group.name).map {
                    Consumer(name: $0.name, idleMilliseconds: Int($0.idle.milliseconds), pending: $0.pending)
                }
                out.append(Reading(
                    stream: stream, group: group.name, length: info.length, entriesAdded: info.entriesAdded,
                    entriesRead: group.entriesRead, lag: lag, lagSource: source, pending: group.pending,
                    oldestPendingAgeSeconds: oldest, timeLagSeconds: timeLag, consumers: consumers,
                    lastDeliveredID: group.lastDeliveredID.description))
            }
        }
        return out
    }

    /// For each existing stream, each group's lag in entries (Redis's figure, counted when it has
    /// none) and pending entries: the cheap reading back-pressure and reconciliation need.
    public static func groupLags(
        _ streams: [String], on redis: RedisConnection
    ) async throws -> [(stream: String, group: String, lag: Int, pending: Int)] {
        var out: [(stream: String, group: String, lag: Int, pending: Int)] = []
        for stream in streams {
            guard try await redis.command("EXISTS", stream).int == 1 else { continue }
            for group in try await redis.xinfoGroups(stream) {
                var lag = group.lag ?? 0
                if group.lag == nil {
                    lag = try await LagMonitor().count(stream, after: group.lastDeliveredID, on: redis)
                } else if lag > 0, try await Self.firstUndelivered(stream, after: group.lastDeliveredID, on: redis) == nil {
                    lag = 0   // Redis's figure is off (see `ConsumerGroupRunner.drained`): nothing follows the last delivered entry
                }
                out.append((stream, group.name, lag, group.pending))
            }
        }
        return out
    }

    /// The first entry after a group's last delivered one, or nil when the group has read the
    /// stream to its end: what decides "caught up" (Redis's `lag` can stay off after a restart
    /// from an append-only file).
    public static func firstUndelivered(_ stream: String, after id: StreamID, on redis: RedisConnection) async throws -> StreamEntry? {
        try await redis.xrange(stream, start: "(" + id.description, count: 1).first
    }

    /// Entries after `id` (counted in pages; what XINFO reports when it can).
    func count(_ stream: String, after id: StreamID, on redis: RedisConnection) async throws -> Int {
        var total = 0
        var start = "(" + id.description
        while true {
            let page = try await redis.xrange(stream, start: start, count: 10_000)
            total += page.count
            guard page.count == 10_000, let last = page.last else { return total }
            start = "(" + last.id.description
        }
    }

    /// `readings` readings (at least 2) spread evenly over `window`, and the rows they give.
    public func sample(streams: [String], on redis: RedisConnection, window: Duration, readings: Int = 3) async throws -> [Row] {
        let count = max(2, readings)
        var series = [try await read(streams: streams, on: redis)]
        let started = ContinuousClock.now
        for _ in 1..<count {
            try await Task.sleep(for: window / (count - 1))
            series.append(try await read(streams: streams, on: redis))
        }
        return evaluate(series, seconds: (ContinuousClock.now - started).seconds)
    }

    /// The rows for two readings `seconds` apart.
    public func evaluate(before: [Reading], after: [Reading], seconds: Double) -> [Row] {
        evaluate([before, after], seconds: seconds)
    }

    /// The rows for a series of readings spanning `seconds` (pure: the status rules are unit-tested).
    public func evaluate(_ series: [[Reading]], seconds: Double) -> [Row] {
        func key(_ r: Reading) -> String { "\(r.stream)\u{1F}\(r.group)" }
        let indexed = series.map { Dictionary($0.map { (key($0), $0) }, uniquingKeysWith: { a, _ in a }) }
        guard let after = series.last else { return [] }
        let earlier = indexed.first ?? [:]
        return after.map { now in
            let then = earlier[key(now)]
            let history = indexed.compactMap { $0[key(now)] }
            let steadilyGrowing = history.count >= 2 && history.allSatisfy { $0.lag > 0 }
                && zip(history, history.dropFirst()).allSatisfy { $1.lag > $0.lag }
            let dt = max(seconds, 0.001)
            let consumed: Int
            if let a = then?.entriesRead, let b = now.entriesRead {
                consumed = b - a
            } else if let then {
                // Without entries-read: what left the lag, net of what was added.
                consumed = max(0, (then.lag - now.lag) + ((now.entriesAdded ?? now.length) - (then.entriesAdded ?? then.length)))
            } else {
                consumed = 0
            }
            let added = then.map { (now.entriesAdded ?? now.length) - ($0.entriesAdded ?? $0.length) } ?? 0
            let acked = then.map { max(0, $0.pending - now.pending) } ?? 0
            let consumeRate = Double(max(consumed, 0)) / dt
            let produceRate = Double(max(added, 0)) / dt
            let lagChange = now.lag - (then?.lag ?? now.lag)
            var eta: Double?
            if now.lag == 0 && now.pending == 0 {
                eta = 0
            } else if consumeRate > produceRate {
                eta = Double(now.lag) / (consumeRate - produceRate)
            }
            let behind = now.lag > 0 || now.pending > 0
            let live = now.consumers.contains { Duration.milliseconds($0.idleMilliseconds) < thresholds.stoppedAfter }
            let status: Status
            if !behind {
                status = .ok
            } else if !live {
                status = .stopped
            } else if consumed <= 0 && acked == 0 {
                status = .stalled
            } else if steadilyGrowing && lagChange > thresholds.warnGrowth {
                status = .warn
            } else {
                status = .ok
            }
            return Row(reading: now, consumeRate: consumeRate, produceRate: produceRate, etaSeconds: eta, lagChange: lagChange, status: status)
        }
    }
}
