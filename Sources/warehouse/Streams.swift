import ArgumentParser
import Foundation
import RedisClient
import StreamRuntime
import Contract
import RedisWire

extension Warehouse {
    /// `warehouse streams`: the entity streams of the namespace.
    struct Streams: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List every entity stream of the namespace with its length and first and last ids.")

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var streams: StreamOptions

        @Flag(help: "Print a JSON array of {key, entity, partition, length}.")
        var json = false

        func run() async throws {
            let redis = try await connectRedis(connection)
            let items = try await StreamCatalog(layout: streams.layout()).items(on: redis)
            if json {
                printJSON(items.map { ["key": $0.key, "entity": $0.entity.rawValue, "partition": $0.partition, "length": $0.length] as [String: Any] })
                return
            }
            if items.isEmpty {
                print("no streams under \(streams.resolvedNamespace):{…} (run warehouse replay first)")
                return
            }
            print("key".padding(toLength: 24, withPad: " ", startingAt: 0) + "entity".padding(toLength: 11, withPad: " ", startingAt: 0)
                  + "partition    length  first id             last id")
            for item in items {
                let length = String(item.length)
                print(item.key.padding(toLength: 24, withPad: " ", startingAt: 0)
                      + item.entity.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)
                      + String(item.partition).padding(toLength: 9, withPad: " ", startingAt: 0)
                      + String(repeating: " ", count: max(0, 9 - length.count)) + length + "  "
                      + (item.firstID?.description ?? "-").padding(toLength: 21, withPad: " ", startingAt: 0)
                      + (item.lastID?.description ?? "-"))
            }
        }
    }
}

/// Connects to the configured Redis, with a message that names the (redacted) URL on failure.
func connectRedis(_ connection: ConnectionOptions) async throws -> RedisConnection {
    do {
        return try await RedisConnection(url: connection.servers.redisURL)
    } catch {
        throw CLIError("cannot connect to Redis at \(connection.servers.redactedRedisURL): \(error)")
    }
}
