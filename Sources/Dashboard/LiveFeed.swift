import Foundation
public import NIOCore
public import ServiceLifecycle
import Synchronization
public import StreamRuntime
import Contract
import KPIStore
import PostgresClient
import RedisClient
import RedisWire

/// The latest KPI snapshot as `/api/kpis` serves it, and when the change stream last confirmed
/// it current: requests read it without a Redis round trip while the feed is watching.
public final class SnapshotCache: Sendable {
    private let state = Mutex<(body: ByteBuffer?, confirmed: ContinuousClock.Instant?)>((nil, nil))

    public init() {}

    /// The body and how long ago the feed last confirmed it current, if within `maxAge`.
    public func body(maxAge: Duration) -> (body: ByteBuffer, age: Duration)? {
        state.withLock { state in
            guard let body = state.body, let confirmed = state.confirmed else { return nil }
            let age = ContinuousClock.now - confirmed
            return age <= maxAge ? (body, age) : nil
        }
    }

    func store(_ body: ByteBuffer, at instant: ContinuousClock.Instant) { state.withLock { $0 = (body, instant) } }

    /// Nothing newer was found on the change stream at `instant` (read before it).
    func confirm(_ instant: ContinuousClock.Instant) { state.withLock { if $0.body != nil { $0.confirmed = instant } } }
}

/// What the dashboard pushes to its pages: a `kpis` event within a moment of every KPI change
/// (one blocking XREAD on the aggregator's change stream serves every page), and a `health`
/// event every `healthEvery` (lag and rates per group, dead letters, unresolved inferred members,
/// Redis and PostgreSQL reachability). It also keeps the latest health sample for `/api/health`
/// and `/api/lag`, so those cost no XINFO round trips per request.
public actor LiveFeed: Service {
    public struct GroupHealth: Codable, Sendable, Equatable {
        public var group: String
        public var status: LagMonitor.Status
        public var lag: Int
        public var pending: Int
        public var timeLagSeconds: Double
        public var consumeRate: Double
        enum CodingKeys: String, CodingKey {
            case group, status, lag, pending
            case timeLagSeconds = "time_lag_s"
            case consumeRate = "consume_rate"
        }
    }

    public struct Reachability: Codable, Sendable, Equatable {
        public var reachable: Bool
        public var latencyMilliseconds: Double?
        public var error: String?
        enum CodingKeys: String, CodingKey {
            case reachable, error
            case latencyMilliseconds = "latency_ms"
        }
    }

    public struct CacheCounts: Codable, Sendable, Equatable {
        public var hits: Int
        public var misses: Int
    }

    /// `/api/health` and the `health` event.
    public struct Health: Codable, Sendable {
        public var generatedAt: String
        public var status: LagMonitor.Status
        public var redis: Reachability
        public var postgres: Reachability
        public var groups: [GroupHealth]
        public var eventsInPerSecond: Double
        public var eventsOutPerSecond: [String: Double]
        public var deadLetters: Int
        public var inferredMembersUnresolved: Int?
        public var cache: CacheCounts
        enum CodingKeys: String, CodingKey {
            case status, redis, postgres, groups, cache
            case generatedAt = "generated_at"
            case eventsInPerSecond = "events_in_per_s"
            case eventsOutPerSecond = "events_out_per_s"
            case deadLetters = "dead_letters"
            case inferredMembersUnresolved = "inferred_members_unresolved"
        }
    }

    private let configuration: DashboardConfiguration
    private let pool: RedisPool
    private let keys: KPIKeys
    private let streams: [String]
    private var subscribers: [UUID: AsyncStream<ByteBuffer>.Continuation] = [:]
    private var latestKPIs: ByteBuffer?
    private var latestHealth: Health?
    private var latestRows: [LagMonitor.Row] = []
    private var previous: (readings: [LagMonitor.Reading], at: ContinuousClock.Instant)?
    private var postgres: PostgresConnection?
    /// The latest snapshot for `/api/kpis`.
    public nonisolated let snapshots = SnapshotCache()

    public init(configuration: DashboardConfiguration, pool: RedisPool) {
        self.configuration = configuration
        self.pool = pool
        self.keys = KPIKeys(layout: configuration.layout)
        self.streams = configuration.layout.allStreams
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await self.watchChanges() }
            tasks.addTask { await self.sampleHealthForever() }
            tasks.addTask { await self.heartbeat() }
            try? await gracefulShutdown()
            tasks.cancelAll()
        }
        finishAll()
    }

    // MARK: - Subscribers

    /// Live pages connected now.
    public var subscriberCount: Int { subscribers.count }

    /// A page's stream of server-sent events, starting with the latest KPIs and health; nil when
    /// `maxLiveClients` pages are connected already. Each stream holds at most 32 events for a
    /// slow reader (the newest: a KPI event is a whole snapshot, so skipping older ones loses nothing).
    public func subscribe() -> AsyncStream<ByteBuffer>? {
        guard subscribers.count < configuration.maxLiveClients else { return nil }
        let id = UUID()
        let (stream, continuation) = AsyncStream<ByteBuffer>.makeStream(bufferingPolicy: .bufferingNewest(32))
        continuation.yield(ByteBuffer(string: "retry: 2000\n\n"))
        if let latestKPIs { continuation.yield(latestKPIs) }
        if let latestHealth, let event = try? Self.event("health", latestHealth) { continuation.yield(event) }
        continuation.onTermination = { _ in Task { await self.unsubscribe(id) } }
        subscribers[id] = continuation
        return stream
    }

    private func unsubscribe(_ id: UUID) { subscribers[id] = nil }

    private func broadcast(_ event: ByteBuffer) {
        for continuation in subscribers.values { continuation.yield(event) }
    }

    private func finishAll() {
        for continuation in subscribers.values { continuation.finish() }
        subscribers.removeAll()
    }

    static func event(_ name: String, _ value: some Encodable) throws -> ByteBuffer {
        event(name, body: try jsonBody(value))
    }

    /// A server-sent event whose data is `body` (one line of JSON).
    static func event(_ name: String, body: ByteBuffer) -> ByteBuffer {
        var buffer = ByteBuffer(string: "event: \(name)\ndata: ")
        buffer.writeImmutableBuffer(body)
        buffer.writeString("\n\n")
        return buffer
    }

    // MARK: - KPI changes

    /// One blocking read of the change stream for every page; each batch of changes is one push.
    private func watchChanges() async {
        var redis: RedisConnection?
        var last = "$"
        while !Task.isCancelled {
            do {
                if redis == nil {
                    redis = try await RedisConnection(url: configuration.servers.redisURL)
                    try await pushKPIs()
                }
                let reads = try await redis!.xread(streams: [(keys.changes, last)], count: 1000, block: .seconds(1))
                guard let entry = reads.first?.entries.last else {
                    // The read waited a second and no change record came (the KPI keys and their
                    // record are written in one atomic call): the snapshot is current now. (Confirming
                    // as of the moment the read began made it look 1-2 s old, and requests fell
                    // back to reading Redis in bursts, once a second.)
                    snapshots.confirm(.now)
                    continue
                }
                last = entry.id.description
                try await pushKPIs()
                try await Task.sleep(for: configuration.kpiPushEvery)
            } catch {
                redis = nil
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    private func pushKPIs() async throws {
        let read = ContinuousClock.now
        let snapshot = try await KPISnapshot.read(keys, on: pool.connection)
        let body = try jsonBody(snapshot)
        snapshots.store(body, at: read)
        let event = Self.event("kpis", body: body)
        latestKPIs = event
        broadcast(event)
    }

    // MARK: - Health

    private func sampleHealthForever() async {
        while !Task.isCancelled {
            if let health = await sampleHealth(), let event = try? Self.event("health", health) { broadcast(event) }
            try? await Task.sleep(for: configuration.healthEvery)
        }
    }

    private func heartbeat() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(15))
            broadcast(ByteBuffer(string: ": keep-alive\n\n"))
        }
    }

    /// The latest health (sampled now when there is none yet).
    public func health() async -> Health? {
        if let latestHealth { return latestHealth }
        return await sampleHealth()
    }

    /// The latest lag rows (two readings `healthEvery` apart), as `warehouse lag --json` prints them.
    public func lagRows() async throws -> [LagMonitor.Row] {
        if latestRows.isEmpty { _ = await sampleHealth() }
        return latestRows
    }

    @discardableResult
    func sampleHealth() async -> Health? {
        let redis = pool.connection
        let started = ContinuousClock.now
        var redisState = Reachability(reachable: false)
        var groups: [GroupHealth] = []
        var eventsIn = 0.0
        var eventsOut: [String: Double] = [:]
        var deadLetters = 0
        var cache = CacheCounts(hits: 0, misses: 0)
        do {
            _ = try await redis.command("PING").throwingServerError()
            redisState = Reachability(reachable: true, latencyMilliseconds: (ContinuousClock.now - started).seconds * 1000)
            if previous == nil {
                // Rates and statuses need two readings: take a first one a moment before.
                previous = (try await LagMonitor().read(streams: streams, on: redis), ContinuousClock.now)
                try await Task.sleep(for: .milliseconds(300))
            }
            let readings = try await LagMonitor().read(streams: streams, on: redis)
            PipelineMetrics.lag(readings)
            let now = ContinuousClock.now
            if let previous {
                latestRows = LagMonitor().evaluate(before: previous.readings, after: readings, seconds: (now - previous.at).seconds)
            }
            previous = (readings, now)
            var produced: [String: Double] = [:]
            for row in latestRows {
                produced[row.reading.stream] = row.produceRate
                eventsOut[row.reading.group, default: 0] += row.consumeRate
            }
            eventsIn = produced.values.reduce(0, +)
            for (group, rows) in Dictionary(grouping: latestRows, by: \.reading.group).sorted(by: { $0.key < $1.key }) {
                groups.append(GroupHealth(
                    group: group, status: rows.map(\.status).max() ?? .ok, lag: rows.reduce(0) { $0 + $1.reading.lag },
                    pending: rows.reduce(0) { $0 + $1.reading.pending }, timeLagSeconds: rows.map(\.reading.timeLagSeconds).max() ?? 0,
                    consumeRate: rows.reduce(0) { $0 + $1.consumeRate }))
            }
            deadLetters = try await redis.xlen(configuration.layout.deadLetterKey)
            let counts = try await AnalyticsCache.stats(configuration.layout, redis: redis)
            cache = CacheCounts(hits: counts.hits, misses: counts.misses)
        } catch {
            if redisState.reachable { redisState.error = "\(error)" } else { redisState = Reachability(reachable: false, error: "\(error)") }
        }
        let (postgresState, inferred) = await probePostgres()
        let health = Health(
            generatedAt: Timestamp.now.description, status: groups.map(\.status).max() ?? .ok, redis: redisState, postgres: postgresState,
            groups: groups, eventsInPerSecond: eventsIn, eventsOutPerSecond: eventsOut, deadLetters: deadLetters,
            inferredMembersUnresolved: inferred, cache: cache)
        latestHealth = health
        PipelineMetrics.reachable(redis: redisState.reachable, postgres: postgresState.reachable)
        if redisState.reachable && redisState.error == nil {
            PipelineMetrics.groupStatus(latestRows)
            PipelineMetrics.deadLetterEntries(deadLetters)
        }
        return health
    }

    private func probePostgres() async -> (Reachability, Int?) {
        let started = ContinuousClock.now
        do {
            if postgres == nil { postgres = try await PostgresConnection(configuration.servers.databaseURL, connectTimeout: .seconds(2)) }
            _ = try await postgres!.query("SELECT 1")
            let latency = (ContinuousClock.now - started).seconds * 1000
            let inferred = try? await postgres!.query(
                "SELECT (SELECT count(*) FROM dim_customers WHERE is_inferred) + (SELECT count(*) FROM dim_products WHERE is_inferred)")
            let count = inferred?.first.flatMap { try? $0.decode(Int.self, at: 0) }
            return (Reachability(reachable: true, latencyMilliseconds: latency), count)
        } catch {
            postgres = nil
            return (Reachability(reachable: false, error: "\(error)"), nil)
        }
    }
}
