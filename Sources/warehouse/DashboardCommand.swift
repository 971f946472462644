import RedisClient
import StreamRuntime
import Contract
import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Dashboard

extension Warehouse {
    /// `warehouse dashboard`: the live dashboard, its JSON API, server-sent events and /metrics.
    struct DashboardCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dashboard",
            abstract: "Serve the live dashboard (KPIs, charts, pipeline health) and its JSON API.",
            discussion: """
                Routes: / (the page), /events (server-sent events: `kpis` on every KPI change, `health` every 2 s), \
                /api/kpis (the `kpis --json` shape), /api/lag (the `lag --json` shape), /api/health, \
                /api/analytics/{monthly-revenue,top-products,customers,payments,inventory} (PostgreSQL through a Redis cache), \
                /health (alive), /ready (Redis and PostgreSQL reachable), /metrics (Prometheus). Ctrl-C stops it.
                """
        )

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var streams: StreamOptions

        @Option(help: "The address to bind (loopback by default; 0.0.0.0 to serve other hosts, which requires $WAREHOUSE_AUTH_TOKEN).")
        var host = "127.0.0.1"

        @Option(help: "The port (0: any free port, printed at start).")
        var port = 5000

        @Option(help: "Stream partitions per entity (default: as recorded for the namespace, else 1; given, it must match the record).")
        var partitions: Int?

        @Option(help: "Live pages (server-sent event streams) served at once; more are answered 503 with Retry-After.")
        var maxLiveClients = 256

        @Option(help: "Seconds a cached analytics answer may live without a loader commit.")
        var cacheTtlS = 300

        @Option(help: "Reconcile Redis's KPIs against PostgreSQL every this many seconds, for the drift metric warehouse_reconcile_drift_kpis (0: never).")
        var reconcileEveryS = 300

        func validate() throws {
            guard reconcileEveryS >= 0 else { throw ValidationError("--reconcile-every-s must not be negative") }
            guard (0...65535).contains(port) else { throw ValidationError("--port must be a port number") }
            guard (partitions ?? 1) >= 1, cacheTtlS >= 1 else { throw ValidationError("--partitions and --cache-ttl-s must be positive") }
        }

        func run() async throws {
            // Before anything else: a listener off loopback without a token must not start at all.
            let access = try AccessControl.forListener(host: host)
            var configuration = DashboardConfiguration()
            configuration.host = host
            configuration.port = port
            configuration.servers = connection.servers
            configuration.layout = streams.layout(partitions: partitions ?? 1)
            // The recorded layout, when Redis answers now; the dashboard starts without it otherwise.
            do {
                let redis = try await RedisConnection(url: connection.servers.redisURL)
                configuration.layout = try await streams.layout(partitions: partitions, record: false, command: "dashboard", on: redis)
            } catch let error as LayoutError {
                throw error
            } catch {
                FileHandle.standardError.write(Data("dashboard: cannot read the namespace's layout yet (\(error)); using \(configuration.layout.partitions) partition(s)\n".utf8))
            }
            configuration.analyticsCacheTTL = .seconds(cacheTtlS)
            configuration.maxLiveClients = maxLiveClients
            configuration.access = access
            configuration.reconcileEvery = reconcileEveryS > 0 ? .seconds(reconcileEveryS) : nil
            var logger = Logger(label: "dashboard")
            logger.logLevel = .warning
            let host = self.host
            let app = try await buildApplication(configuration, logger: logger) { port in
                print("dashboard: http://\(host):\(port)/ (Ctrl-C stops it)")
                fflush(nil)
            }
            try await app.runService()
        }
    }
}
