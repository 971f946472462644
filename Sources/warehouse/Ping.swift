import ArgumentParser
import Foundation
import PostgresClient
import RedisClient
import WarehouseSink
import RedisWire
import StreamRuntime

extension Warehouse {
    /// `warehouse ping`: says whether both servers answer, with their versions and round-trip times.
    struct Ping: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check that Redis and PostgreSQL answer; print their versions and round-trip times.",
            discussion: "Exits non-zero when either server does not answer."
        )

        @OptionGroup var connection: ConnectionOptions

        @Flag(help: "Print a JSON object instead of text.")
        var json = false

        func run() async throws {
            let servers = connection.servers
            async let redis = Self.pingRedis(servers.redisURL)
            async let postgres = Self.pingPostgres(servers.databaseURL)
            let results = [("redis", servers.redactedRedisURL, await redis),
                           ("postgresql", servers.redactedDatabaseURL, await postgres)]
            if json {
                var object: [String: Any] = [:]
                for (name, url, result) in results {
                    switch result {
                    case .success(let (version, latency)):
                        object[name] = ["ok": true, "url": url, "version": version, "round_trip_ms": latency]
                    case .failure(let error):
                        object[name] = ["ok": false, "url": url, "error": "\(error)"]
                    }
                }
                printJSON(object)
            } else {
                for (name, url, result) in results {
                    switch result {
                    case .success(let (version, latency)):
                        print("\(name.padding(toLength: 11, withPad: " ", startingAt: 0)) ok    \(version)  \(String(format: "%.2f", latency)) ms  \(url)")
                    case .failure(let error):
                        print("\(name.padding(toLength: 11, withPad: " ", startingAt: 0)) DOWN  \(error)  \(url)")
                    }
                }
            }
            if results.contains(where: { if case .failure = $0.2 { true } else { false } }) {
                throw ExitCode(1)
            }
        }

        static func pingRedis(_ url: String) async -> Result<(String, Double), any Error> {
            do {
                let redis = try await RedisConnection(url: url)
                let clock = ContinuousClock()
                let start = clock.now
                _ = try await redis.command("PING")
                let latency = (clock.now - start).seconds * 1000
                let info = try await redis.command("INFO", "server").string ?? ""
                let version = info.split(whereSeparator: \.isNewline)
                    .first { $0.hasPrefix("redis_version:") }
                    .map { "Redis " + $0.dropFirst("redis_version:".count) } ?? "Redis"
                return .success((version, latency))
            } catch {
                return .failure(error)
            }
        }

        static func pingPostgres(_ url: String) async -> Result<(String, Double), any Error> {
            do {
                let postgres = try await PostgresConnection(url)
                let (version, latency) = try await WarehouseLookups.ping(postgres)
                return .success(("PostgreSQL " + version, latency.seconds * 1000))
            } catch {
                return .failure(error)
            }
        }
    }
}
