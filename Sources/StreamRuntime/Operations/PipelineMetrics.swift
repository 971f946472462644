import Foundation
import Metrics
public import ServiceLifecycle
import RedisClient
import RedisWire

/// The pipeline's metrics, through swift-metrics (the process bootstraps a backend; the
/// `Dashboard` target's `MetricsExporter` bootstraps Prometheus). Without a bootstrap every call
/// is a no-op. Names follow Prometheus conventions: `_total` counters, base units (seconds).
public enum PipelineMetrics {
    /// Per consumer group: entries read, applied (read and not rejected), acknowledged and
    /// dead-lettered, and the time to apply and acknowledge a batch.
    public static func batch(group: String, read: Int, rejected: Int, acknowledged: Int, duration: Duration) {
        let dimensions = [("group", group)]
        Counter(label: "warehouse_events_read_total", dimensions: dimensions).increment(by: read)
        Counter(label: "warehouse_events_applied_total", dimensions: dimensions).increment(by: max(0, read - rejected))
        Counter(label: "warehouse_events_acked_total", dimensions: dimensions).increment(by: acknowledged)
        // Incremented by 0 too: the series exists from the first batch, so `rate()` and the alert
        // on it see a rise from zero.
        Counter(label: "warehouse_events_dead_lettered_total", dimensions: dimensions).increment(by: rejected)
        Timer(label: "warehouse_batch_duration_seconds", dimensions: dimensions).recordNanoseconds(
            duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    /// The circuit breaker of a group's batch handler: 0 closed, 1 half open, 2 open.
    public static func circuit(group: String, state: CircuitBreaker.State) {
        let value: Int
        switch state {
        case .closed: value = 0
        case .halfOpen: value = 1
        case .open: value = 2
        }
        Gauge(label: "warehouse_circuit_breaker_state", dimensions: [("group", group)]).record(value)
    }

    /// Events published by `replay` or `produce` (`source`).
    public static func published(_ count: Int, source: String) {
        guard count > 0 else { return }
        Counter(label: "warehouse_events_published_total", dimensions: [("source", source)]).increment(by: count)
    }

    /// Dead-letter entries dropped, oldest first, because the stream was at its cap.
    public static func deadLettersDropped(_ count: Int) {
        guard count > 0 else { return }
        Counter(label: "warehouse_dead_letters_dropped_total").increment(by: count)
    }

    public static func cache(hit: Bool) {
        Counter(label: hit ? "warehouse_cache_hits_total" : "warehouse_cache_misses_total").increment()
    }

    /// The cache counters at zero, so a hit ratio has both series from the process's start.
    public static func cacheCountersAtZero() {
        Counter(label: "warehouse_cache_hits_total").increment(by: 0)
        Counter(label: "warehouse_cache_misses_total").increment(by: 0)
    }

    /// Lag per group: entries, seconds (the oldest undelivered entry's age) and pending, summed
    /// (entries, pending) or the worst (seconds) over the group's streams.
    public static func lag(_ readings: [LagMonitor.Reading]) {
        for (group, rows) in Dictionary(grouping: readings, by: \.group) {
            let dimensions = [("group", group)]
            Gauge(label: "warehouse_lag_entries", dimensions: dimensions).record(rows.reduce(0) { $0 + $1.lag })
            Gauge(label: "warehouse_lag_seconds", dimensions: dimensions).record(rows.map(\.timeLagSeconds).max() ?? 0)
            Gauge(label: "warehouse_pending_entries", dimensions: dimensions).record(rows.reduce(0) { $0 + $1.pending })
        }
    }

    /// Each group's lag status (the worst over its streams) as a one-hot gauge:
    /// `warehouse_group_status{group, status}` is 1 for the status the group has, 0 for the others.
    public static func groupStatus(_ rows: [LagMonitor.Row]) {
        for (group, rows) in Dictionary(grouping: rows, by: \.reading.group) {
            let worst = rows.map(\.status).max() ?? .ok
            for status in [LagMonitor.Status.ok, .warn, .stalled, .stopped] {
                Gauge(label: "warehouse_group_status", dimensions: [("group", group), ("status", status.rawValue)]).record(status == worst ? 1 : 0)
            }
        }
    }

    /// Whether Redis and PostgreSQL answered the last probe (1) or not (0).
    public static func reachable(redis: Bool? = nil, postgres: Bool? = nil) {
        if let redis { Gauge(label: "warehouse_redis_up").record(redis ? 1 : 0) }
        if let postgres { Gauge(label: "warehouse_postgres_up").record(postgres ? 1 : 0) }
    }

    /// Entries in the dead-letter stream now.
    public static func deadLetterEntries(_ count: Int) {
        Gauge(label: "warehouse_dead_letter_entries").record(count)
    }

    /// One periodic reconcile: `drift` KPIs of `compared` differ. Only a settled comparison (both
    /// groups drained when it started) sets the drift gauges; an unsettled one counts as such and
    /// leaves them as they were, so in-flight events never raise the drift alert.
    public static func reconcile(compared: Int, drift: Int, settled: Bool) {
        Counter(label: "warehouse_reconcile_runs_total", dimensions: [("result", settled ? (drift == 0 ? "clean" : "drift") : "unsettled")]).increment()
        guard settled else { return }
        Gauge(label: "warehouse_reconcile_drift_kpis").record(drift)
        Gauge(label: "warehouse_reconcile_compared_kpis").record(compared)
        Gauge(label: "warehouse_reconcile_last_settled_timestamp_seconds").record(Date().timeIntervalSince1970)
    }

    /// A periodic reconcile that could not run (a server unreachable, a query failing).
    public static func reconcileFailed() {
        Counter(label: "warehouse_reconcile_runs_total", dimensions: [("result", "error")]).increment()
    }
}

/// Samples the lag of `streams` every `every` for the lag gauges, until a graceful shutdown (a
/// long-running command's `--metrics-port` runs it), on a connection of its own.
public struct LagSamplerService: Service {
    public let streams: [String]
    public let url: String
    public let every: Duration

    public init(streams: [String], url: String, every: Duration = .seconds(5)) {
        self.streams = streams
        self.url = url
        self.every = every
    }

    public func run() async throws {
        var redis: RedisConnection?
        var previous: (readings: [LagMonitor.Reading], at: ContinuousClock.Instant)?
        while !ConsumerGroupRunner.stopping {
            do {
                if redis == nil { redis = try await RedisConnection(url: url) }
                let readings = try await LagMonitor().read(streams: streams, on: redis!)
                let now = ContinuousClock.now
                PipelineMetrics.lag(readings)
                if let previous {
                    PipelineMetrics.groupStatus(LagMonitor().evaluate(before: previous.readings, after: readings, seconds: (now - previous.at).seconds))
                }
                previous = (readings, now)
                PipelineMetrics.reachable(redis: true)
            } catch {
                redis = nil
                previous = nil
                PipelineMetrics.reachable(redis: false)
            }
            do { try await ConsumerGroupRunner.pause(every) } catch { return }
        }
    }
}
