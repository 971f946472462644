import ArgumentParser
import Foundation
import RedisClient
import StreamRuntime
import Contract
import RedisWire

extension Warehouse {
    /// `warehouse streams`: the entity streams of the namespace, and its recorded layout.
    struct Streams: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The entity streams of the namespace (list, the default), its recorded layout, and deleting them.",
            subcommands: [List.self, Layout.self, Delete.self],
            defaultSubcommand: List.self)
    }
}

extension Warehouse.Streams {
    /// `warehouse streams [list]`: every entity stream with its length and first and last ids.
    struct List: AsyncParsableCommand {
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

    /// `warehouse streams layout [--set-partitions N]`: the layout recorded for the namespace.
    struct Layout: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the namespace's recorded layout (partition count, key scheme), or change the partition count.",
            discussion: """
                The first replay, produce or consume records the partition count in <namespace>:layout; every later \
                command reads it, and one given a different --partitions refuses. --set-partitions changes it, and only \
                while every stream of the namespace is empty: drain the consumers (consume --until-drained), delete the \
                streams (warehouse streams delete --yes), set the count, then replay.
                """)

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var streams: StreamOptions

        @Option(help: "Record this partition count (refused while any stream of the namespace holds entries).")
        var setPartitions: Int?

        @Flag(help: "Print JSON: {namespace, partitions, key_scheme, created_at, created_by} (partitions null when none is recorded).")
        var json = false

        func validate() throws {
            if let setPartitions, setPartitions < 1 { throw ValidationError("--set-partitions must be at least 1") }
        }

        func run() async throws {
            let redis = try await connectRedis(connection)
            let layout = streams.layout()
            do {
                if let setPartitions { try await LayoutRegistry.setPartitions(setPartitions, layout, on: redis) }
                let record = try await LayoutRegistry.read(layout, on: redis)
                if json {
                    printJSON([
                        "namespace": layout.namespace, "partitions": record?.partitions as Any, "key_scheme": record?.keyScheme as Any,
                        "created_at": record?.createdAt as Any, "created_by": record?.createdBy as Any,
                    ] as [String: Any])
                } else if let record {
                    print("namespace \(layout.namespace): \(record.partitions) partition(s), key scheme \(record.keyScheme)"
                          + (record.createdAt.map { ", recorded \($0)" } ?? "") + (record.createdBy.map { " by \($0)" } ?? ""))
                } else {
                    print("namespace \(layout.namespace): no layout recorded yet (the first replay, produce or consume records it)")
                }
            } catch let error as LayoutError {
                throw CLIError(error.description)
            }
        }
    }

    /// `warehouse streams delete --yes`: deletes every entity stream of the namespace.
    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete every entity stream of the namespace (with its consumer groups) and the replay checkpoints.",
            discussion: "For changing the partition count, or starting a namespace over. The warehouse tables and the KPIs stay.")

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var streams: StreamOptions

        @Flag(help: "Yes, delete them.")
        var yes = false

        func run() async throws {
            guard yes else { throw CLIError("this deletes every stream of namespace \(streams.resolvedNamespace) and its pending entries: add --yes") }
            let redis = try await connectRedis(connection)
            let layout = streams.layout()
            let items = try await StreamCatalog(layout: layout).items(on: redis)
            var batch = RedisCommandBuffer()
            for item in items { batch.append("DEL", item.key) }
            let partitions = Set(items.map(\.partition)).union(0..<((try? await LayoutRegistry.read(layout, on: redis))??.partitions ?? 1))
            for partition in partitions.sorted() { batch.append("DEL", layout.replayCheckpointKey(partition: partition)) }
            for reply in try await redis.send(batch) { _ = try reply.throwingServerError() }
            print("deleted \(items.count) stream(s) of namespace \(layout.namespace), \(items.reduce(0) { $0 + $1.length }) entries")
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
