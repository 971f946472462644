import Foundation
import Hummingbird
public import ServiceLifecycle
public import Logging
import Metrics
public import Prometheus

/// The process's metrics in Prometheus's text format: swift-metrics bootstrapped once with
/// swift-prometheus, served at `/metrics` by the dashboard and, for any long-running command,
/// by `service(host:port:)` (`--metrics-port`).
public enum MetricsExporter {
    public static let registry = PrometheusCollectorRegistry()

    private static let bootstrapped: Bool = {
        var factory = PrometheusMetricsFactory(registry: registry)
        // Prometheus names allow [a-zA-Z0-9_:]; Hummingbird's own metrics use dots.
        factory.nameAndLabelSanitizer = { name, labels in
            (sanitize(name), labels.map { (sanitize($0.0), $0.1) })
        }
        let batchBuckets: [Duration] = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5),
        ]
        factory.durationHistogramBuckets["warehouse_batch_duration_seconds"] = batchBuckets
        factory.defaultDurationHistogramBuckets = batchBuckets
        MetricsSystem.bootstrap(factory)
        return true
    }()

    /// Makes swift-metrics report to the registry (once per process; later calls do nothing).
    public static func bootstrap() { _ = bootstrapped }

    /// The exposition text.
    public static func render() -> [UInt8] {
        bootstrap()
        return registry.emitToBuffer()
    }

    static func sanitize(_ name: String) -> String {
        String(name.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" ? $0 : "_" })
    }

    static func response() -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: render())))
    }

    /// A Service serving `/metrics` (and `/health`) on `host:port` until a graceful shutdown:
    /// what `consume`, `replay` and `produce synthetic` run beside their work with `--metrics-port`.
    public static func service(host: String, port: Int, access: AccessControl, logger: Logger = Logger(label: "metrics")) -> any Service {
        bootstrap()
        let router = Router()
        router.add(middleware: AccessControlMiddleware(access: access))
        router.get("/metrics") { _, _ in response() }
        router.get("/health") { _, _ in "ok" }
        var quiet = logger
        quiet.logLevel = .warning
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "warehouse-metrics"), logger: quiet)
    }
}
