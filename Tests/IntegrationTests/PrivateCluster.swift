import Foundation
import RedisClient
import Testing

/// A throwaway 6-node Redis Cluster (3 primaries, 3 replicas, AOF on, node timeout 5 s) on free
/// loopback ports, started with the project's own scripts/lib.sh (`sw_start_redis_cluster`), the
/// way `scripts/services.sh up --cluster` starts the development one.
struct PrivateCluster {
    let directory: String
    let ports: [Int]
    /// Every node, as a seed list: the form users put in REDIS_URL.
    var url: String { "redis://" + ports.map { "127.0.0.1:\($0)" }.joined(separator: ",") + "/0" }
    /// One node only: the client finds the others.
    var oneNodeURL: String { "redis://127.0.0.1:\(ports[0])/0" }

    /// Ports are picked free, but another test may pick the same one (or a node's bus port) before
    /// this cluster binds it: a node that cannot bind fails the start, and the start is tried again
    /// on fresh ports.
    static func start() async throws -> PrivateCluster {
        var lastError: (any Error)?
        for _ in 0..<4 {
            let directory = "/tmp/" + TestServers.unique("sw-cluster")
            var ports: [Int] = []
            while ports.count < 12 {
                let port = Int(try await TestServers.shell("sw_free_port").trimmingCharacters(in: .whitespacesAndNewlines))!
                if !ports.contains(port) { ports.append(port) }
            }
            let client = Array(ports[0..<6]), bus = Array(ports[6..<12])
            do {
                _ = try await TestServers.shell(
                    "SW_CLUSTER_BUS_PORTS='\(bus.map(String.init).joined(separator: " "))' "
                        + "sw_start_redis_cluster \(directory) \(client.map(String.init).joined(separator: " "))")
                return PrivateCluster(directory: directory, ports: client)
            } catch {
                lastError = error
                _ = try? await TestServers.shell("sw_stop_redis_cluster \(directory)")
                try? FileManager.default.removeItem(atPath: directory)
            }
        }
        throw lastError!
    }

    func connect() async throws -> RedisConnection { try await RedisConnection(url: url) }

    /// One node's own view (no routing), by redis-cli.
    func cli(_ port: Int, _ arguments: String) async throws -> String {
        try await TestServers.shell("redis-cli -h 127.0.0.1 -p \(port) \(arguments)")
    }

    /// The ports of the primaries, and of the replica of each.
    func roles() async throws -> (primaries: [Int], replicaOf: [Int: Int]) {
        let text = try await cli(ports[0], "cluster nodes")
        var idToPort: [String: Int] = [:]
        var lines: [[Substring]] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 8, let port = fields[1].split(separator: "@").first?.split(separator: ":").last.flatMap({ Int($0) })
            else { continue }
            idToPort[String(fields[0])] = port
            lines.append(fields)
        }
        var primaries: [Int] = [], replicaOf: [Int: Int] = [:]
        for fields in lines {
            let port = idToPort[String(fields[0])]!
            if fields[2].contains("master") && !fields[2].contains("fail") && fields.count > 8 { primaries.append(port) }
            if fields[2].contains("slave"), let primary = idToPort[String(fields[3])] { replicaOf[primary] = port }
        }
        return (primaries.sorted(), replicaOf)
    }

    /// kill -9 of one node.
    func killNine(_ port: Int) async throws {
        _ = try await TestServers.shell("sw_kill_redis \(directory)/\(port)")
    }

    /// Starts a killed node again (it rejoins from its nodes.conf, as a replica if it failed over).
    func startAgain(_ port: Int) async throws {
        _ = try await TestServers.shell("sw_restart_cluster_node \(directory) \(port)")
    }

    /// Waits until every live node reports cluster_state:ok.
    func waitUntilOK(timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            var ok = true
            for port in ports {
                let info = (try? await cli(port, "cluster info")) ?? ""
                if info.isEmpty || info.contains("Connection refused") { continue }
                if !info.contains("cluster_state:ok") { ok = false }
            }
            if ok { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        Issue.record("the cluster did not reach cluster_state:ok in \(timeout)")
    }

    func destroy() async {
        _ = try? await TestServers.shell("sw_stop_redis_cluster \(directory)")
        try? FileManager.default.removeItem(atPath: directory)
    }
}
