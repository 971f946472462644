public import Contract
public import StreamRuntime

/// What `warehouse dashboard` serves and where, with its defaults.
public struct DashboardConfiguration: Sendable {
    /// The address to bind: loopback unless asked otherwise.
    public var host = "127.0.0.1"
    /// The port (the seed's Flask dashboard was on 5000; 0 picks a free one).
    public var port = 5000
    public var servers = ServerConfiguration()
    public var layout = StreamLayout()
    /// A folder of analytics queries to serve instead of the built-in ones (nil: built in, or `$WAREHOUSE_SQL_DIR/analytics`).
    public var analyticsFolder: String?
    /// How long a cached analytics answer may be served without the loader committing anything
    /// (a safety net: a commit invalidates it at once).
    public var analyticsCacheTTL: Duration = .seconds(300)
    /// How often pipeline health (lag, rates, dead letters, reachability) is sampled and pushed.
    public var healthEvery: Duration = .seconds(2)
    /// The least time between two KPI pushes (a burst of changes is one push).
    public var kpiPushEvery: Duration = .milliseconds(200)
    /// How long `/api/kpis` may serve the live feed's snapshot after the change stream last
    /// confirmed it current (older: a fresh read). The feed confirms at least every second.
    public var snapshotMaxAge: Duration = .seconds(2)
    /// Redis connections the API spreads its reads over.
    public var redisConnections = 4
    /// Live pages (server-sent event streams) served at once; more get 503 with Retry-After.
    public var maxLiveClients = 256
    /// How long a `/ready` answer is reused: however many probes arrive, at most one check per
    /// interval reaches the servers, on one kept PostgreSQL connection and the Redis pool.
    public var readyCacheFor: Duration = .seconds(1)
    /// How often Redis's KPIs are reconciled against PostgreSQL for the drift metric (nil: never; `warehouse dashboard` sets 300 s).
    public var reconcileEvery: Duration?
    /// Who may read the page, API, events and metrics (`/health` and `/ready` are open).
    public var access = AccessControl(token: nil)

    public init() {}
}
