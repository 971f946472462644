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
    /// More nodes to try, after `host:port`, when connecting (`redis://h1:p1,h2:p2/`): any one
    /// node of a Redis Cluster is enough to find the others, several let a client start while one
    /// of them is down.
    public var moreSeeds: [Seed] = []
    /// How often a cluster client reads the slot map again even when nothing told it to (a MOVED
    /// reply or a lost node refresh it at once). Default 10 s.
    public var topologyRefresh: Duration = .seconds(10)

    /// Durability (`?wait_replicas=N[&wait_timeout_ms=T]` in the URL): after the commands a pipeline
    /// sends to a primary, the client waits (`WAIT N T`) until N of its replicas have them, and
    /// fails the call (a connection error, which callers retry or report) when fewer did in time.
    /// Redis replicates asynchronously: without it, writes a primary acknowledged can be lost when
    /// a replica takes over before receiving them. 0 (the default) does not wait.
    public var replicaAcknowledgements = 0
    public var replicaTimeout: Duration = .seconds(1)

    /// One node address to connect to.
    public struct Seed: Sendable, Equatable {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) { self.host = host; self.port = port }
    }

    /// Every node to try, in order: `host:port` first.
    public var seeds: [Seed] { [Seed(host: host, port: port)] + moreSeeds }

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

    /// Parses `redis://[[user]:password@]host[:port][,host[:port]…][/db]`: one node, or several
    /// seed nodes of one deployment separated by commas (a Redis Cluster is found from any of them).
    public init(url: String) throws(RedisError) {
        // URLComponents reads one host: the seeds after the first are taken out first.
        var url = url
        var more: [Seed] = []
        if let schemeEnd = url.range(of: "://") {
            let authorityEnd = url[schemeEnd.upperBound...].firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? url.endIndex
            let authority = url[schemeEnd.upperBound..<authorityEnd]
            let hostStart = authority.lastIndex(of: "@").map { authority.index(after: $0) } ?? authority.startIndex
            let hosts = authority[hostStart...].split(separator: ",", omittingEmptySubsequences: false)
            if hosts.count > 1 {
                for item in hosts.dropFirst() {
                    let text = String(item)
                    if let parsed = ClusterRouting.split(address: text), (1...65535).contains(parsed.port), !parsed.host.isEmpty {
                        more.append(Seed(host: parsed.host, port: parsed.port))
                    } else if !text.isEmpty, !text.contains(":") || (text.hasPrefix("[") && text.hasSuffix("]")) {
                        more.append(Seed(host: text.hasPrefix("[") ? String(text.dropFirst().dropLast()) : text, port: 6379))
                    } else {
                        throw RedisError(.configuration, "bad seed node \"\(text)\" in \(Self.redacted(url)); use host:port")
                    }
                }
                url.replaceSubrange(hostStart..<authorityEnd, with: hosts[0])
            }
        }
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
        for item in components.queryItems ?? [] {
            switch item.name {
            case "wait_replicas":
                guard let count = item.value.flatMap(Int.init), count >= 0 else {
                    throw RedisError(.configuration, "wait_replicas must be a number of replicas in \(Self.redacted(url))")
                }
                replicaAcknowledgements = count
            case "wait_timeout_ms":
                guard let milliseconds = item.value.flatMap(Int.init), milliseconds > 0 else {
                    throw RedisError(.configuration, "wait_timeout_ms must be a positive number of milliseconds in \(Self.redacted(url))")
                }
                replicaTimeout = .milliseconds(milliseconds)
            default:
                throw RedisError(.configuration, "unknown option \(item.name) in \(Self.redacted(url)) (known: wait_replicas, wait_timeout_ms)")
            }
        }
        moreSeeds = more
        if !more.isEmpty && database != 0 {
            throw RedisError(.configuration, "several seed nodes name a Redis Cluster, which has only database 0: \(Self.redacted(url))")
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
        text += seeds.map { ClusterRouting.address(host: $0.host, port: $0.port) }.joined(separator: ",")
        text += "/\(database)"
        if replicaAcknowledgements > 0 { text += "?wait_replicas=\(replicaAcknowledgements)&wait_timeout_ms=\(replicaTimeout.milliseconds)" }
        return text
    }

    /// Hides the password of any URL-shaped text (`Secrets.redact`).
    public static func redacted(_ url: String) -> String { Secrets.redact(url) }

}
