import ArgumentParser
import Dashboard
import Foundation
import Pipeline

/// `--metrics-port`: a long-running command serves its Prometheus metrics while it runs.
struct MetricsOptions: ParsableArguments {
    @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics while running (default: off).")
    var metricsPort: Int?

    @Option(help: "The address the metrics endpoint binds.")
    var metricsHost = "127.0.0.1"

    func validate() throws {
        if let metricsPort, !(0...65535).contains(metricsPort) { throw ValidationError("--metrics-port must be a port number") }
    }

    /// Starts the endpoint (and, given streams, a lag sampler for the lag gauges); nil when off.
    func start(lagOf streams: [String] = [], redisURL: String? = nil) -> Task<Void, Never>? {
        // Without an endpoint the metrics stay swift-metrics' no-op: nothing records what
        // nobody can read.
        guard let metricsPort else { return nil }
        MetricsExporter.bootstrap()
        let host = metricsHost
        return Task {
            await withTaskGroup(of: Void.self) { tasks in
                tasks.addTask {
                    do {
                        try await MetricsExporter.serve(host: host, port: metricsPort)
                    } catch {
                        logLine("the metrics endpoint on \(host):\(metricsPort) failed: \(error)")
                    }
                }
                if let redisURL, !streams.isEmpty {
                    tasks.addTask { await PipelineMetrics.sampleLag(streams: streams, url: redisURL) }
                }
                await tasks.waitForAll()
            }
        }
    }
}
