import ArgumentParser
import StreamRuntime

/// The server options every subcommand that talks to Redis or PostgreSQL shares.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .customLong("redis-url"), help: "Redis URL (default: $REDIS_URL, else \(ServerConfiguration.defaultRedisURL)).")
    var redisURL: String?

    @Option(name: .customLong("database-url"), help: "PostgreSQL URL (default: $DATABASE_URL, else \(ServerConfiguration.defaultDatabaseURL)).")
    var databaseURL: String?

    var servers: ServerConfiguration {
        ServerConfiguration.resolve(redisURL: redisURL, databaseURL: databaseURL)
    }
}
