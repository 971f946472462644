import ArgumentParser
import Foundation
import Pipeline
import RedisClient

extension Warehouse {
    /// `warehouse dlq …`: the dead-letter stream.
    struct DeadLetters: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dlq",
            abstract: "Inspect the dead-letter stream: rejected rows and events with where they came from and why.",
            subcommands: [List.self, Show.self, Stats.self]
        )
    }
}

extension Warehouse.DeadLetters {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead-lettered entries, oldest first.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var streams: StreamOptions
        @Option(help: "How many entries.") var count = 50
        @Option(help: "Start after this entry id.") var after: String?
        @Flag(help: "Print JSON lines (one object per entry).") var json = false

        func run() async throws {
            let redis = try await connectRedis(connection)
            let queue = DeadLetterQueue(layout: streams.layout())
            let entries = try await queue.list(on: redis, start: after.map { "(" + $0 } ?? "-", count: count)
            for entry in entries {
                if json {
                    var object: [String: Any] = ["id": entry.id.description]
                    for (name, value) in entry.pairs { object[name] = value }
                    printJSON(object)
                } else {
                    print("\(entry.id)  \((entry["source"] ?? "?").padding(toLength: 28, withPad: " ", startingAt: 0))  \(entry["reason"] ?? "")")
                }
            }
            if entries.isEmpty && !json { print("the dead-letter stream is empty") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one dead-lettered entry in full.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var streams: StreamOptions
        @Argument(help: "The entry id (from dlq list).") var id: String
        @Flag(help: "Print a JSON object.") var json = false

        func validate() throws {
            guard StreamID(id) != nil else { throw ValidationError("\(id) is not a stream entry id (like 1700000000000-0)") }
        }

        func run() async throws {
            let redis = try await connectRedis(connection)
            guard let entry = try await DeadLetterQueue(layout: streams.layout()).entry(StreamID(id)!, on: redis) else {
                throw CLIError("no dead-letter entry \(id)")
            }
            if json {
                var object: [String: Any] = ["id": entry.id.description]
                for (name, value) in entry.pairs { object[name] = value }
                printJSON(object)
            } else {
                print("id           \(entry.id)")
                for (name, value) in entry.pairs { print(name.padding(toLength: 12, withPad: " ", startingAt: 0) + " " + value) }
            }
        }
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Count dead-lettered entries by file and by reason.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var streams: StreamOptions
        @Flag(help: #"Print {"total": n, "by_file": {…}, "by_reason": {…}}."#) var json = false

        func run() async throws {
            let redis = try await connectRedis(connection)
            let stats = try await DeadLetterQueue(layout: streams.layout()).stats(on: redis)
            if json {
                try printEncodedJSON(stats)
                return
            }
            print("total \(stats.total)")
            if !stats.byFile.isEmpty {
                print("by file")
                for (file, count) in stats.byFile.sorted(by: { $0.key < $1.key }) { print("  \(file.padding(toLength: 28, withPad: " ", startingAt: 0)) \(count)") }
                print("by reason")
                for (reason, count) in stats.byReason.sorted(by: { $0.key < $1.key }) { print("  \(reason.padding(toLength: 28, withPad: " ", startingAt: 0)) \(count)") }
            }
        }
    }
}
