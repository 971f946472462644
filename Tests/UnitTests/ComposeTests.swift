import ArgumentParser
import Foundation
import Testing
@testable import warehouse
import Yams
import Contract
import KPIModel
import StreamRuntime
import WarehouseSink
import KPIStore
import DataGenerator
import RedisWire
import RedisClient
import PostgresClient

/// No Docker engine runs here, so docker-compose.yml and the Dockerfile are checked by reading
/// them: every warehouse service's command parses with the CLI's own parser (flags and values
/// validated as a real run would), every variable a warehouse service sets is one the program
/// reads, every dependency exists with a condition the dependency can meet, and the servers
/// have volumes and healthchecks.
@Suite struct ComposeTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func compose() throws -> [String: Any] {
        let text = try String(contentsOf: root.appendingPathComponent("docker-compose.yml"), encoding: .utf8)
        return try #require(try Yams.load(yaml: text) as? [String: Any])
    }

    static func services() throws -> [String: [String: Any]] {
        try #require(try compose()["services"] as? [String: [String: Any]])
    }

    /// Services that run the warehouse image.
    static func warehouseServices() throws -> [String: [String: Any]] {
        try services().filter { ($0.value["image"] as? String)?.hasPrefix("streamwarehouse") == true || $0.value["build"] != nil }
    }

    @Test func everyCommandIsARealSubcommandWithValidFlags() throws {
        let services = try Self.warehouseServices()
        #expect(Set(services.keys) == ["migrate", "warehouse-consumer", "kpi-aggregator", "dashboard", "replay",
                                       "warehouse-consumer-cluster", "kpi-aggregator-cluster", "dashboard-cluster", "replay-cluster"])
        var subcommands: [String: String] = [:]
        for (name, service) in services {
            let command = try #require(service["command"] as? [String], "\(name) has a command in exec form")
            #expect(command.first == "warehouse", "\(name) runs warehouse")
            let arguments = Array(command.dropFirst())
            do {
                let parsed = try Warehouse.parseAsRoot(arguments)
                subcommands[name] = type(of: parsed)._commandName
            } catch {
                Issue.record("\(name): `warehouse \(arguments.joined(separator: " "))` does not parse: \(Warehouse.message(for: error))")
            }
        }
        #expect(subcommands["migrate"] == "migrate")
        #expect(subcommands["warehouse-consumer"] == "consume" && subcommands["kpi-aggregator"] == "consume")
        #expect(subcommands["dashboard"] == "dashboard" && subcommands["replay"] == "replay")
        #expect(subcommands["warehouse-consumer-cluster"] == "consume" && subcommands["kpi-aggregator-cluster"] == "consume")
        #expect(subcommands["dashboard-cluster"] == "dashboard" && subcommands["replay-cluster"] == "replay")
        // The parser is strict: a misspelt flag would have failed above.
        #expect(throws: (any Error).self) { try Warehouse.parseAsRoot(["consume", "--gruop", "kpi"]) }
        #expect(throws: (any Error).self) { try Warehouse.parseAsRoot(["consume", "--group", "kpi", "--state-retention", "soon"]) }
    }

    @Test func everyVariableIsOneTheProgramReads() throws {
        let known = Set(ServerConfiguration.Variable.allCases.map(\.rawValue))
        for (name, service) in try Self.warehouseServices() {
            let environment = try #require(service["environment"] as? [String: Any], "\(name) sets its servers")
            for key in environment.keys { #expect(known.contains(key), "\(name) sets \(key), which the program does not read") }
            let command = (service["command"] as? [String]) ?? []
            if command.contains("consume") && command.contains("kpi") {
                #expect(environment["REDIS_URL"] != nil)
            } else if !command.contains("replay") {
                #expect(environment["REDIS_URL"] != nil && environment["DATABASE_URL"] != nil, "\(name)")
            }
        }
        let dockerfile = try String(contentsOf: Self.root.appendingPathComponent("Dockerfile"), encoding: .utf8)
        for line in dockerfile.split(separator: "\n") where line.hasPrefix("ENV ") {
            let key = String(line.dropFirst(4).split(separator: "=").first ?? "")
            #expect(known.contains(key), "the Dockerfile sets \(key), which the program does not read")
        }
    }

    @Test func dependenciesAndHealthchecksAreWired() throws {
        let services = try Self.services()
        let compose = try Self.compose()
        let volumes = Set((compose["volumes"] as? [String: Any] ?? [:]).keys)
        for server in ["redis", "postgres"] {
            let service = try #require(services[server])
            #expect((service["healthcheck"] as? [String: Any])?["test"] != nil, "\(server) has a healthcheck")
            let mounts = (service["volumes"] as? [String]) ?? []
            #expect(mounts.contains { volumes.contains(String($0.split(separator: ":")[0])) }, "\(server) keeps its data in a named volume")
            for port in (service["ports"] as? [String]) ?? [] { #expect(port.hasPrefix("127.0.0.1:"), "\(server) publishes on loopback only") }
        }
        let redisCommand = (services["redis"]?["command"] as? [String]) ?? []
        #expect(redisCommand.joined(separator: " ").contains("--appendonly yes"), "Redis keeps an AOF")
        for (name, service) in services {
            let dependencies = service["depends_on"] as? [String: [String: Any]] ?? [:]
            for (dependency, rule) in dependencies {
                let target = try #require(services[dependency], "\(name) depends on \(dependency), which is not a service")
                switch rule["condition"] as? String {
                case "service_healthy":
                    #expect(target["healthcheck"] != nil, "\(name) waits for \(dependency) to be healthy, but it has no healthcheck")
                case "service_completed_successfully":
                    #expect(target["restart"] as? String == "no", "\(dependency) is a one-shot job")
                default:
                    Issue.record("\(name) → \(dependency): give a condition (service_healthy or service_completed_successfully)")
                }
            }
            let command = (service["command"] as? [String]) ?? []
            if command.contains("consume") || command.contains("dashboard") || command.contains("replay") {
                #expect(dependencies["migrate"]?["condition"] as? String == "service_completed_successfully", "\(name) starts after the migration")
                if (service["profiles"] as? [String])?.contains("cluster") == true {
                    #expect(dependencies["redis-cluster-init"]?["condition"] as? String == "service_completed_successfully",
                            "\(name) waits for the cluster to be created")
                    let url = (service["environment"] as? [String: Any])?["REDIS_URL"] as? String ?? ""
                    #expect(url.hasPrefix("redis://redis-node-1:6379,redis-node-2:6379"), "\(name) names cluster seed nodes: \(url)")
                    #expect(try RedisConfiguration(url: url).seeds.count == 3)
                } else {
                    #expect(dependencies["redis"]?["condition"] as? String == "service_healthy", "\(name) waits for Redis")
                }
            }
            // Scalable services must not pin a container name or a host port.
            if name == "warehouse-consumer" || name == "kpi-aggregator" {
                #expect(service["container_name"] == nil && service["ports"] == nil, "\(name) scales with --scale")
            }
        }
        #expect((services["migrate"]?["depends_on"] as? [String: [String: Any]])?["postgres"]?["condition"] as? String == "service_healthy")
        #expect((services["dashboard"]?["ports"] as? [String]) == ["127.0.0.1:5000:5000"])
        #expect((services["replay"]?["profiles"] as? [String]) == ["replay"])
        // The cluster profile: six nodes with cluster mode, an AOF and a volume each, created once.
        for index in 1...6 {
            let node = try #require(services["redis-node-\(index)"])
            let command = ((node["command"] as? [String]) ?? []).joined(separator: " ")
            #expect(command.contains("--cluster-enabled yes") && command.contains("--appendonly yes"), "redis-node-\(index)")
            #expect(node["healthcheck"] != nil && (node["profiles"] as? [String]) == ["cluster"])
            #expect(((node["volumes"] as? [String]) ?? []).contains { volumes.contains(String($0.split(separator: ":")[0])) })
        }
        let initCommand = ((services["redis-cluster-init"]?["command"] as? [String]) ?? []).joined(separator: " ")
        #expect(initCommand.contains("--cluster create") && initCommand.contains("--cluster-replicas 1"))
        #expect(services["migrate"]?["build"] != nil, "one service builds the image the others run")
        for (name, service) in try Self.warehouseServices() where service["build"] == nil {
            #expect(service["pull_policy"] as? String == "never", "\(name) runs the image `migrate` builds; it must not be pulled")
        }
    }

    /// Every listener that leaves loopback gets the token; the `monitoring` profile's Prometheus
    /// scrapes services that exist, on the ports they serve, with that token, and loads the rules;
    /// Grafana is provisioned with the board. Every file they mount is in the repository.
    @Test func listenersGetTheTokenAndMonitoringIsWired() throws {
        let services = try Self.services()
        let compose = try Self.compose()
        for (name, service) in services {
            let command = (service["command"] as? [String]) ?? []
            guard command.first == "warehouse", command.contains("0.0.0.0") else { continue }
            let environment = service["environment"] as? [String: Any] ?? [:]
            let token = environment["WAREHOUSE_AUTH_TOKEN"] as? String ?? ""
            #expect(token.hasPrefix("${WAREHOUSE_AUTH_TOKEN:?"), "\(name) binds 0.0.0.0: it must be given the token (required), got '\(token)'")
        }
        let secret = ((compose["secrets"] as? [String: Any])?["warehouse_auth_token"] as? [String: Any])?["environment"] as? String
        #expect(secret == "WAREHOUSE_AUTH_TOKEN")
        let prometheus = try #require(services["prometheus"])
        let grafana = try #require(services["grafana"])
        #expect(prometheus["profiles"] as? [String] == ["monitoring"] && grafana["profiles"] as? [String] == ["monitoring"])
        #expect((prometheus["secrets"] as? [String]) == ["warehouse_auth_token"])
        for (name, service) in [("prometheus", prometheus), ("grafana", grafana)] {
            for mount in (service["volumes"] as? [String]) ?? [] where mount.hasPrefix("./") {
                let path = String(mount.dropFirst(2).split(separator: ":")[0])
                #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(path).path), "\(name) mounts \(path), which is not in the repository")
            }
            for port in (service["ports"] as? [String]) ?? [] { #expect(port.hasPrefix("127.0.0.1:"), "\(name) publishes on loopback only") }
        }
        let mounts = (prometheus["volumes"] as? [String]) ?? []
        #expect(mounts.contains("./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro"))
        // prometheus.yml: each target is a service serving that port, scraped with the secret.
        let config = try #require(try Yams.load(yaml: String(contentsOf: Self.root.appendingPathComponent("deploy/prometheus/prometheus.yml"), encoding: .utf8)) as? [String: Any])
        #expect((config["rule_files"] as? [String]) == ["/etc/prometheus/alerts.yml"])
        var scraped: [String: Int] = [:]
        for job in config["scrape_configs"] as? [[String: Any]] ?? [] {
            let authorization = job["authorization"] as? [String: Any]
            #expect(authorization?["credentials_file"] as? String == "/run/secrets/warehouse_auth_token", "\(job["job_name"] ?? "?") scrapes with the token")
            for target in ((job["static_configs"] as? [[String: Any]]) ?? []).flatMap({ ($0["targets"] as? [String]) ?? [] }) {
                let parts = target.split(separator: ":")
                scraped[String(parts[0])] = Int(parts[1])
            }
            for sd in job["dns_sd_configs"] as? [[String: Any]] ?? [] {
                for name in sd["names"] as? [String] ?? [] { scraped[name] = sd["port"] as? Int }
            }
        }
        #expect(Set(scraped.keys) == ["dashboard", "warehouse-consumer", "kpi-aggregator"])
        for (name, port) in scraped {
            let command = try #require(services[name]?["command"] as? [String], "Prometheus scrapes \(name), which is not a service")
            let flag = command.contains("dashboard") ? "--port" : "--metrics-port"
            let index = try #require(command.firstIndex(of: flag), "\(name) serves metrics")
            #expect(Int(command[index + 1]) == port, "Prometheus scrapes \(name) on \(port), it serves on \(command[index + 1])")
        }
    }

    /// A misspelt key (`depend_on`, `intervall`) would be ignored by a lenient reader and by the
    /// checks above; the Compose Specification allows only these.
    @Test func everyKeyIsOneTheComposeSpecificationKnows() throws {
        let topLevel: Set<String> = ["services", "volumes", "networks", "configs", "secrets", "name", "include", "version"]
        let serviceKeys: Set<String> = [
            "build", "image", "command", "entrypoint", "environment", "env_file", "depends_on", "healthcheck", "ports", "expose",
            "volumes", "restart", "profiles", "deploy", "networks", "container_name", "hostname", "user", "working_dir", "labels",
            "logging", "stop_grace_period", "stop_signal", "shm_size", "ulimits", "init", "read_only", "tmpfs", "extra_hosts", "secrets", "configs",
            "pull_policy",
        ]
        let healthcheckKeys: Set<String> = ["test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"]
        let dependencyKeys: Set<String> = ["condition", "restart", "required"]
        let compose = try Self.compose()
        for key in compose.keys where !key.hasPrefix("x-") { #expect(topLevel.contains(key), "unknown top-level key \(key)") }
        for (name, service) in try Self.services() {
            for key in service.keys where !key.hasPrefix("x-") { #expect(serviceKeys.contains(key), "\(name): unknown key \(key)") }
            for key in (service["healthcheck"] as? [String: Any] ?? [:]).keys {
                #expect(healthcheckKeys.contains(key), "\(name): unknown healthcheck key \(key)")
            }
            for (dependency, rule) in service["depends_on"] as? [String: [String: Any]] ?? [:] {
                for key in rule.keys { #expect(dependencyKeys.contains(key), "\(name) → \(dependency): unknown key \(key)") }
            }
            if let restart = service["restart"] as? String {
                #expect(["no", "always", "on-failure", "unless-stopped"].contains(restart), "\(name): restart \(restart)")
            }
        }
    }

    @Test func theDockerfileIsAMultiStageBuildIntoASlimRuntime() throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("Dockerfile"), encoding: .utf8)
        let stages = text.split(separator: "\n").filter { $0.hasPrefix("FROM ") }
        #expect(stages.count == 2 && stages[0].contains("swift:") && stages[0].contains(" AS build") && stages[1].contains("slim"))
        #expect(text.contains("libhiredis-dev") && text.contains("libpq-dev"), "the build stage has the C libraries' headers")
        #expect(text.contains("libhiredis0.14") && text.contains("libpq5"), "the runtime has the C libraries")
        #expect(text.contains("COPY --from=build"), "the binary is copied")
        #expect(!text.contains("COPY sql") && !text.contains("WAREHOUSE_SQL_DIR"), "the migrations are in the binary, not beside it")
        #expect(text.contains("USER "), "it does not run as root")
    }
}
