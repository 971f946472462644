import Foundation
import ConnectionExecutor

/// Where the pipeline's servers are. One place maps the environment and flags onto it.
public struct ServerConfiguration: Sendable, Equatable {
    /// `redis://[[user]:password@]host[:port][/db]`.
    public var redisURL: String
    /// `postgresql://…` URL or libpq keyword string.
    public var databaseURL: String

    /// The local Redis that `scripts/services.sh up` starts.
    public static let defaultRedisURL = "redis://127.0.0.1:16379/0"
    /// The local PostgreSQL that `scripts/services.sh up` starts.
    public static let defaultDatabaseURL = "postgresql://warehouse@127.0.0.1:15432/warehouse"

    /// The environment variables the program reads.
    public enum Variable: String, CaseIterable, Sendable {
        case redisURL = "REDIS_URL"
        case databaseURL = "DATABASE_URL"
        case sqlDirectory = "WAREHOUSE_SQL_DIR"
        case namespace = "WAREHOUSE_NAMESPACE"
        /// The token a listener off loopback (the dashboard, `--metrics-port`) requires (Dashboard's AccessControl reads it).
        case authToken = "WAREHOUSE_AUTH_TOKEN"
    }

    public init(redisURL: String = defaultRedisURL, databaseURL: String = defaultDatabaseURL) {
        self.redisURL = redisURL
        self.databaseURL = databaseURL
    }

    /// Flags win over the environment, which wins over the defaults.
    public static func resolve(
        redisURL flagRedis: String? = nil,
        databaseURL flagDatabase: String? = nil,
        environment: [String: String]? = nil
    ) -> ServerConfiguration {
        let environment = environment ?? ProcessInfo.processInfo.environment
        return ServerConfiguration(
            redisURL: nonEmpty(flagRedis) ?? nonEmpty(environment[Variable.redisURL.rawValue]) ?? defaultRedisURL,
            databaseURL: nonEmpty(flagDatabase) ?? nonEmpty(environment[Variable.databaseURL.rawValue]) ?? defaultDatabaseURL
        )
    }

    private static func nonEmpty(_ value: String?) -> String? {
        guard let value, !value.isEmpty else { return nil }
        return value
    }

    /// The Redis URL with any password hidden, for messages.
    public var redactedRedisURL: String { Self.redact(redisURL) }

    /// The database URL with any password hidden, for messages.
    public var redactedDatabaseURL: String { Self.redact(databaseURL) }

    /// Hides the password in a URL (user info or query) or a keyword string (`Secrets.redact`).
    public static func redact(_ text: String) -> String { Secrets.redact(text) }
}
