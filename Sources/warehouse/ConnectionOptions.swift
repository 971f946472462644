import ArgumentParser
import StreamRuntime

/// The server options every subcommand that talks to Redis or PostgreSQL shares.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .customLong("redis-url"), help: "Redis URL (default: $REDIS_URL, else \(ServerConfiguration.defaultRedisURL)).")
    var redisURL: String?

    @Option(name: .customLong("database-url"), help: "PostgreSQL URL (default: $DATABASE_URL, else \(ServerConfiguration.defaultDatabaseURL)).")
    var databaseURL: String?

    @Option(help: ArgumentHelp(
        "Wait until this many replicas of each Redis primary have every write (WAIT) before it counts as done (default 0: Redis's asynchronous replication).",
        discussion: "The same as ?wait_replicas=N in the Redis URL. Without it, a failover can lose writes a primary acknowledged: replay --resume restores the replay's, the consumers read their state again, and produce's are lost."))
    var waitReplicas: Int?

    var servers: ServerConfiguration {
        var servers = ServerConfiguration.resolve(redisURL: redisURL, databaseURL: databaseURL)
        if let waitReplicas, waitReplicas > 0 {
            servers.redisURL += (servers.redisURL.contains("?") ? "&" : "?") + "wait_replicas=\(waitReplicas)"
        }
        return servers
    }
}
