import ArgumentParser
import Foundation
import ServiceLifecycle
import Dashboard
import StreamRuntime

/// `--metrics-port`: a long-running command serves its Prometheus metrics while it runs.
struct MetricsOptions: ParsableArguments {
    @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics while running (default: off).")
    var metricsPort: Int?

    @Option(help: "The address the metrics endpoint binds (other than loopback, $WAREHOUSE_AUTH_TOKEN must be set: /metrics then requires it).")
    var metricsHost = "127.0.0.1"

    func validate() throws {
        if let metricsPort, !(0...65535).contains(metricsPort) { throw ValidationError("--metrics-port must be a port number") }
    }

    /// The endpoint (and, given streams, a lag sampler for the lag gauges) as services to run beside
    /// the command's work; none when off.
    func services(lagOf streams: [String] = [], redisURL: String? = nil) throws -> [any Service] {
        // Without an endpoint the metrics stay swift-metrics' no-op: nothing records what
        // nobody can read.
        guard let metricsPort else { return [] }
        var services: [any Service] = [MetricsExporter.service(host: metricsHost, port: metricsPort, access: try AccessControl.forListener(host: metricsHost))]
        if let redisURL, !streams.isEmpty { services.append(LagSamplerService(streams: streams, url: redisURL)) }
        return services
    }
}
