import Foundation
import HTTPTypes
public import Hummingbird
public import Logging
import Contract
import KPIStore
import PostgresClient
import RedisClient
import RedisWire
import StreamRuntime
import WarehouseSink

/// What the routes share: the Redis pool, the live feed, the analytics cache.
public struct DashboardContext: Sendable {
    public let configuration: DashboardConfiguration
    public let pool: RedisPool
    public let feed: LiveFeed
    public let analytics: AnalyticsCache
    public let readiness: Readiness
    public let productNames: ProductNames

    public init(configuration: DashboardConfiguration) async throws {
        self.configuration = configuration
        self.pool = try await RedisPool(url: configuration.servers.redisURL, size: configuration.redisConnections)
        self.feed = LiveFeed(configuration: configuration, pool: pool)
        self.productNames = ProductNames(databaseURL: configuration.servers.databaseURL)
        self.readiness = Readiness(databaseURL: configuration.servers.databaseURL, pool: pool, cacheFor: configuration.readyCacheFor)
        self.analytics = AnalyticsCache(
            layout: configuration.layout, folder: configuration.analyticsFolder ?? AnalyticsReport.overrideFolder(nil),
            databaseURL: configuration.servers.databaseURL, ttl: configuration.analyticsCacheTTL)
    }
}

/// The dashboard application: the router below, with the live feed as a service that starts and
/// stops with it.
public func buildApplication(
    _ configuration: DashboardConfiguration, logger: Logger = Logger(label: "dashboard"),
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) async throws -> some ApplicationProtocol {
    MetricsExporter.bootstrap()
    PipelineMetrics.cacheCountersAtZero()
    let context = try await DashboardContext(configuration: configuration)
    return Application(
        router: buildRouter(context),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "warehouse-dashboard"),
        services: [context.feed] + (configuration.reconcileEvery.map { [PeriodicReconcile(configuration: configuration, every: $0, logger: logger)] } ?? []),
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
        logger: logger)
}

/// Every route: the page and its assets, the JSON API, server-sent events, health and metrics.
public func buildRouter(_ context: DashboardContext) -> Router<BasicRequestContext> {
    let router = Router()
    router.add(middleware: RequestMetrics())
    router.add(middleware: AccessControlMiddleware(access: context.configuration.access))
    let layout = context.configuration.layout

    router.get("/") { _, _ in asset(DashboardPage.html, "text/html; charset=utf-8") }
    router.get("/app.js") { _, _ in asset(DashboardPage.script, "text/javascript; charset=utf-8") }
    router.get("/app.css") { _, _ in asset(DashboardPage.css, "text/css; charset=utf-8") }
    router.get("/favicon.svg") { _, _ in asset(DashboardPage.favicon, "image/svg+xml") }
    router.get("/favicon.ico") { _, _ in asset(DashboardPage.favicon, "image/svg+xml") }

    // Alive: the process answers.
    router.get("/health") { _, _ in json(["status": "ok"]) }
    // Ready: both servers answer.
    router.get("/ready") { _, _ in
        let (r, p) = await context.readiness.check()
        return json(["redis": r ? "ok" : "unreachable", "postgres": p ? "ok" : "unreachable", "status": r && p ? "ready" : "not ready"],
                    status: r && p ? .ok : .serviceUnavailable)
    }

    router.get("/api/kpis") { request, _ in
        // The live feed's snapshot, while the change stream confirms it current (it re-reads on
        // every change); a fresh read when the request asks for other options or the feed lags.
        // `X-KPI-Source` says which (and, for the snapshot, `X-KPI-Age-Ms` how long since the
        // change stream last confirmed it).
        if request.uri.query == nil || request.uri.query?.isEmpty == true,
           let (body, age) = context.feed.snapshots.body(maxAge: context.configuration.snapshotMaxAge) {
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            headers[kpiSource] = "snapshot"
            headers[kpiAge] = String(age.milliseconds)
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: body))
        }
        var options = KPISnapshot.Options()
        options.top = try intParameter(request, "top", default: options.top, range: 1...1000)
        options.lowStockThreshold = try intParameter(request, "low_stock", default: options.lowStockThreshold, range: 0...1_000_000)
        let snapshot = try await serviceCall { try await KPISnapshot.read(KPIKeys(layout: layout), on: context.pool.connection, options: options) }
        var response = try encoded(snapshot)
        response.headers[kpiSource] = "redis"
        return response
    }

    router.get("/api/lag") { _, _ in
        let rows = try await serviceCall { try await context.feed.lagRows() }
        let worst = rows.map(\.status).max() ?? .ok
        let encoder = JSONEncoder()
        let body = try JSONSerialization.jsonObject(with: encoder.encode(rows))
        return json(["status": worst.rawValue, "generated_at": Timestamp.now.description, "rows": body] as [String: Any])
    }

    router.get("/api/health") { _, _ in
        guard let health = await context.feed.health() else { throw HTTPError(.serviceUnavailable, message: "no health sample yet") }
        return try encoded(health)
    }

    // Names for product ids: ?ids=P001,P002 (at most 100) → {"products": {"P001": {name, category, inferred}}}.
    router.get("/api/products") { request, _ in
        let ids = (request.uri.queryParameters.get("ids") ?? "").split(separator: ",").map { String($0) }.filter { !$0.isEmpty }
        guard ids.count <= ProductNames.maximumIDs, ids.allSatisfy({ $0.utf8.count <= 64 }) else {
            throw HTTPError(.badRequest, message: "ids: at most \(ProductNames.maximumIDs) product ids of at most 64 bytes, comma-separated")
        }
        let names = context.productNames
        let products = try await serviceCall { try await names.lookup(ids) }
        return try encoded(["products": products])
    }

    router.get("/api/analytics/{name}") { _, requestContext in
        let name = requestContext.parameters.get("name") ?? ""
        guard AnalyticsCache.reports[name] != nil else {
            throw HTTPError(.notFound, message: AnalyticsCache.UnknownReport(name: name).description)
        }
        let analytics = context.analytics
        let answer = try await serviceCall { try await analytics.answer(name, redis: context.pool.connection) }
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[HTTPField.Name("X-Cache")!] = answer.hit ? "hit" : "miss"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: answer.body)))
    }

    router.get("/events") { _, _ in
        guard let stream = await context.feed.subscribe() else {
            var headers = HTTPFields()
            headers[.retryAfter] = "5"
            headers[.contentType] = "text/plain; charset=utf-8"
            return Response(status: .serviceUnavailable, headers: headers,
                            body: ResponseBody(byteBuffer: ByteBuffer(string: "too many live pages (--max-live-clients); retry later\n")))
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody(asyncSequence: stream))
    }

    router.get("/metrics") { _, _ in MetricsExporter.response() }
    return router
}

// MARK: - Helpers

private let kpiSource = HTTPField.Name("X-KPI-Source")!
private let kpiAge = HTTPField.Name("X-KPI-Age-Ms")!

private func asset(_ text: String, _ type: String) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = type
    headers[.cacheControl] = "no-cache"
    return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
}

private func json(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}

private func encoded(_ value: some Encodable) throws -> Response {
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: try jsonBody(value)))
}

/// `value` as one line of JSON, keys sorted: every JSON body the dashboard sends.
func jsonBody(_ value: some Encodable) throws -> ByteBuffer {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return ByteBuffer(bytes: try encoder.encode(value))
}

/// An integer query parameter within `range`; a 400 naming it otherwise.
/// An integer option of the query (`QueryString.int`: the one rule, fuzzed); a bad one is a 400.
private func intParameter(_ request: Request, _ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
    switch QueryString.int(request.uri.query, name, default: value, range: range) {
    case .success(let number): return number
    case .failure(let invalid): throw HTTPError(.badRequest, message: invalid.message)
    }
}

/// A call to Redis or PostgreSQL: a server that cannot be reached is a 503, not a 500.
private func serviceCall<T: Sendable>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as HTTPError {
        throw error
    } catch let error as RedisError {
        throw HTTPError(.serviceUnavailable, message: "Redis: \(error.message)")
    } catch let error as PostgresError {
        throw HTTPError(.serviceUnavailable, message: "PostgreSQL: \(error)")
    }
}

private func reachable(_ probe: () async throws -> Void) async -> Bool {
    do {
        try await probe()
        return true
    } catch {
        return false
    }
}

/// `/ready`'s check, shared by every probe: one check at a time, its answer reused for
/// `cacheFor`, on the Redis pool and one kept PostgreSQL connection (reopened after a failure). A
/// storm of probes costs the servers one check per interval, and never a connection per probe.
public actor Readiness {
    let databaseURL: String
    let pool: RedisPool
    let cacheFor: Duration
    private var postgres: PostgresConnection?
    private var last: (at: ContinuousClock.Instant, answer: (redis: Bool, postgres: Bool))?
    private var inFlight: Task<(redis: Bool, postgres: Bool), Never>?
    /// Checks that reached the servers (for tests).
    public private(set) var checks = 0

    public init(databaseURL: String, pool: RedisPool, cacheFor: Duration) {
        self.databaseURL = databaseURL
        self.pool = pool
        self.cacheFor = cacheFor
    }

    public func check() async -> (redis: Bool, postgres: Bool) {
        if let last, ContinuousClock.now - last.at < cacheFor { return last.answer }
        if let inFlight { return await inFlight.value }
        let task = Task { await self.probe() }
        inFlight = task
        let answer = await task.value
        inFlight = nil
        last = (.now, answer)
        return answer
    }

    private func probe() async -> (redis: Bool, postgres: Bool) {
        checks += 1
        let pool = self.pool
        async let redis = reachable { _ = try await pool.connection.command("PING").throwingServerError() }
        let postgres: Bool
        do {
            if self.postgres == nil { self.postgres = try await PostgresConnection(databaseURL, connectTimeout: .seconds(2)) }
            _ = try await self.postgres!.query("SELECT 1")
            postgres = true
        } catch {
            self.postgres = nil
            postgres = false
        }
        return (await redis, postgres)
    }
}
