import Foundation
import KPIStore
public import Logging
import PostgresClient
import RedisClient
public import ServiceLifecycle
import StreamRuntime

/// `warehouse reconcile` run every `every` inside the dashboard, so drift is a metric an alert can
/// fire on (`warehouse_reconcile_drift_kpis`): Redis's KPIs against the same figures computed by
/// SQL, on connections of its own.
///
/// Each run first gives both groups up to `settle` to have no lag and nothing pending. A comparison
/// made while events are still in flight would count them as drift, so only a settled one sets the
/// drift gauges; an unsettled one is counted (`warehouse_reconcile_runs_total{result="unsettled"}`)
/// and leaves them as they were. Under a load that never lets the groups drain, the gauge of the
/// last settled run's time (`warehouse_reconcile_last_settled_timestamp_seconds`) says how old the
/// last verdict is.
public struct PeriodicReconcile: Service {
    public let configuration: DashboardConfiguration
    public let every: Duration
    public let settle: Duration
    public let logger: Logger

    public init(configuration: DashboardConfiguration, every: Duration, settle: Duration = .seconds(30), logger: Logger) {
        self.configuration = configuration
        self.every = every
        self.settle = settle
        self.logger = logger
    }

    public func run() async throws {
        var redis: RedisConnection?
        var postgres: PostgresConnection?
        // The first run a moment after the start (the dashboard's own start comes first), then every
        // `every`. A graceful shutdown ends the wait, or a run in progress, at once.
        var delay = min(every, .seconds(5))
        while !ConsumerGroupRunner.stopping {
            do { try await ConsumerGroupRunner.pause(delay) } catch { return }
            delay = every
            do {
                if redis == nil { redis = try await RedisConnection(url: configuration.servers.redisURL) }
                if postgres == nil { postgres = try await PostgresConnection(configuration.servers.databaseURL, connectTimeout: .seconds(5)) }
                let (layout, settle, r, p) = (configuration.layout, settle, redis!, postgres!)
                let result = try await cancelWhenGracefulShutdown {
                    try await Reconciliation.run(layout: layout, redis: r, postgres: p, wait: settle)
                }
                let settled = result.groups.allSatisfy { $0.lag == 0 && $0.pending == 0 }
                PipelineMetrics.reconcile(compared: result.compared, drift: result.drift.count, settled: settled)
                if settled && !result.isClean {
                    logger.error("reconcile: DRIFT in \(result.drift.count) of \(result.compared) KPIs: \(result.drift.prefix(10).map(\.kpi).joined(separator: ", "))")
                }
            } catch {
                if ConsumerGroupRunner.stopping || error is CancellationError { return }
                PipelineMetrics.reconcileFailed()
                logger.warning("reconcile: could not run: \(error)")
                redis = nil
                postgres = nil
            }
        }
    }
}
