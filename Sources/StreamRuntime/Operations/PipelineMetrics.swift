import Foundation
import Metrics
public import ServiceLifecycle
import RedisClient

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
        if rejected > 0 { Counter(label: "warehouse_events_dead_lettered_total", dimensions: dimensions).increment(by: rejected) }
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
        while !ConsumerGroupRunner.stopping {
            do {
                if redis == nil { redis = try await RedisConnection(url: url) }
                PipelineMetrics.lag(try await LagMonitor().read(streams: streams, on: redis!))
            } catch {
                redis = nil
            }
            do { try await ConsumerGroupRunner.pause(every) } catch { return }
        }
    }
}
