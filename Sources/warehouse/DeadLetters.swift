import ArgumentParser
import Foundation
import RedisWire
import StreamRuntime

extension Warehouse {
    /// `warehouse dlq …`: the dead-letter stream.
    struct DeadLetters: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dlq",
            abstract: "Inspect the dead-letter stream: rejected rows and events with where they came from and why.",
            subcommands: [List.self, Show.self, Stats.self, Redrive.self]
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

extension Warehouse.DeadLetters {
    struct Redrive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put dead-lettered entries back on their stream (optionally corrected) and remove them from the dead-letter stream.",
            discussion: "A replay reject is validated again first and stays dead-lettered, with the reason printed, if it still breaks the contract.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var streams: StreamOptions
        @Argument(help: "Entry ids (from dlq list).") var ids: [String] = []
        @Flag(help: "Every entry of the dead-letter stream.") var all = false
        @Option(name: .customLong("set"), help: "field=value: a correction applied before publishing (repeatable).") var corrections: [String] = []
        @Option(help: "Stream partitions per entity, for replay rejects (default: as recorded for the namespace).") var partitions: Int?

        func validate() throws {
            guard all != !ids.isEmpty else { throw ValidationError("name entry ids or pass --all (not both)") }
            for id in ids where StreamID(id) == nil { throw ValidationError("\(id) is not a stream entry id") }
            for correction in corrections where !correction.contains("=") { throw ValidationError("--set takes field=value, got \(correction)") }
        }

        func run() async throws {
            let redis = try await connectRedis(connection)
            let queue = DeadLetterQueue(layout: try await streams.layout(partitions: partitions, record: true, command: "dlq redrive", on: redis))
            var entries: [StreamEntry] = []
            if all {
                var start = "-"
                while true {
                    let page = try await queue.list(on: redis, start: start, count: 500)
                    entries += page
                    guard let last = page.last, page.count == 500 else { break }
                    start = "(" + last.id.description
                }
            } else {
                for id in ids {
                    guard let entry = try await queue.entry(StreamID(id)!, on: redis) else { throw CLIError("no dead-letter entry \(id)") }
                    entries.append(entry)
                }
            }
            var fixes: [String: String] = [:]
            for correction in corrections {
                let parts = correction.split(separator: "=", maxSplits: 1).map(String.init)
                fixes[parts[0]] = parts.count > 1 ? parts[1] : ""
            }
            var failed = 0
            for (id, outcome) in try await queue.redrive(entries, corrections: fixes, on: redis) {
                switch outcome {
                case .published(let stream, let newID): print("\(id)  redriven to \(stream) as \(newID)")
                case .stillRejected(let reason): print("\(id)  still rejected: \(reason)"); failed += 1
                }
            }
            if failed > 0 { throw ExitCode(1) }
        }
    }
}
