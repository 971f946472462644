import Foundation
public import RedisWire
import ConnectionExecutor

/// Where and how to connect to Redis.
public struct RedisConfiguration: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?
    /// The logical database (`SELECT`).
    public var database: Int
    /// How long to wait for the TCP connection and the handshake. Default 5 s.
    public var connectTimeout: Duration
    /// How long a read or write may wait. A blocking command (`BLOCK t`) extends it by `t` for
    /// that command, so the socket never times out before the server answers. Default 10 s.
    public var socketTimeout: Duration
    /// The longest pause between reconnection attempts (exponential with jitter up to this). Default 2 s.
    public var maximumReconnectDelay: Duration

    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        connectTimeout: Duration = .seconds(5),
        socketTimeout: Duration = .seconds(10),
        maximumReconnectDelay: Duration = .seconds(2)
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.socketTimeout = socketTimeout
        self.maximumReconnectDelay = maximumReconnectDelay
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]`.
    public init(url: String) throws(RedisError) {
        guard let components = URLComponents(string: url) else {
            throw RedisError(.configuration, "not a URL: \(Self.redacted(url))")
        }
        guard components.scheme?.lowercased() == "redis" else {
            throw RedisError(.configuration, "unsupported scheme in \(Self.redacted(url)); use redis://")
        }
        self.init()
        if let host = components.host, !host.isEmpty {
            self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        }
        if let port = components.port {
            guard (1...65535).contains(port) else { throw RedisError(.configuration, "port out of range: \(port)") }
            self.port = port
        }
        if let user = components.user, !user.isEmpty { username = user }
        if let password = components.password, !password.isEmpty { self.password = password }
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if !path.isEmpty {
            guard let database = Int(path), database >= 0 else {
                throw RedisError(.configuration, "database must be a number in \(Self.redacted(url))")
            }
            self.database = database
        }
    }

    /// The URL with the password replaced by `***`, for logs and messages.
    public var redactedURL: String {
        var text = "redis://"
        if username != nil || password != nil {
            text += username ?? ""
            if password != nil { text += ":***" }
            text += "@"
        }
        text += host.contains(":") ? "[\(host)]" : host
        text += ":\(port)/\(database)"
        return text
    }

    /// Hides the password of any URL-shaped text (`Secrets.redact`).
    public static func redacted(_ url: String) -> String { Secrets.redact(url) }

}
