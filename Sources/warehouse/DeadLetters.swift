import ArgumentParser
import Foundation
import Contract
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
        static let configuration = CommandConfiguration(
            abstract: "Count dead-lettered entries by file and by reason (all of them, or those dead-lettered in a time window).",
            discussion: """
                --since and --until take an ISO-8601 time with an offset (2026-12-01T03:00:00Z, as Airflow's \
                data_interval_start renders) or a duration back from now (90m, 1h, 7d). The window is [since, until): \
                consecutive windows count every entry once. An entry's time is when it was dead-lettered.
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var streams: StreamOptions
        @Option(help: "Only entries dead-lettered at or after this time (ISO-8601, or a duration back from now such as 1h).") var since: String?
        @Option(help: "Only entries dead-lettered before this time (ISO-8601, or a duration back from now).") var until: String?
        @Option(help: "Exit 1 when more than this many entries are counted (default: never).") var failAbove: Int?
        @Flag(help: #"Print {"total": n, "by_file": {…}, "by_reason": {…}} (with "since" and "until" when given)."#) var json = false

        /// An ISO-8601 time, or a duration back from `now`, in Unix milliseconds.
        static func instant(_ text: String, now: Timestamp = .now) -> Int64? {
            if let time = Timestamp(iso8601: text) { return time.milliseconds }
            guard let back = parseDurationText(text) else { return nil }
            return now.milliseconds - back.milliseconds
        }

        func validate() throws {
            for (name, value) in [("--since", since), ("--until", until)] {
                if let value, Self.instant(value) == nil {
                    throw ValidationError("\(name) must be an ISO-8601 time with an offset (2026-12-01T03:00:00Z) or a duration such as 1h, got \(value)")
                }
            }
            if let failAbove, failAbove < 0 { throw ValidationError("--fail-above must not be negative") }
        }

        func run() async throws {
            let redis = try await connectRedis(connection)
            let now = Timestamp.now
            let sinceMs = since.flatMap { Self.instant($0, now: now) }
            let untilMs = until.flatMap { Self.instant($0, now: now) }
            let stats = try await DeadLetterQueue(layout: streams.layout()).stats(on: redis, sinceMilliseconds: sinceMs, untilMilliseconds: untilMs)
            if json {
                var object = try encodedObject(stats) as? [String: Any] ?? [:]
                if let sinceMs { object["since"] = Timestamp(microseconds: sinceMs * 1000).description }
                if let untilMs { object["until"] = Timestamp(microseconds: untilMs * 1000).description }
                printJSON(object)
            } else {
                let window = [sinceMs.map { "since \(Timestamp(microseconds: $0 * 1000))" }, untilMs.map { "before \(Timestamp(microseconds: $0 * 1000))" }]
                    .compactMap { $0 }.joined(separator: ", ")
                print("total \(stats.total)" + (window.isEmpty ? "" : " (\(window))"))
                if !stats.byFile.isEmpty {
                    print("by file")
                    for (file, count) in stats.byFile.sorted(by: { $0.key < $1.key }) { print("  \(file.padding(toLength: 28, withPad: " ", startingAt: 0)) \(count)") }
                    print("by reason")
                    for (reason, count) in stats.byReason.sorted(by: { $0.key < $1.key }) { print("  \(reason.padding(toLength: 28, withPad: " ", startingAt: 0)) \(count)") }
                }
            }
            if let failAbove, stats.total > failAbove {
                FileHandle.standardError.write(Data("\(stats.total) dead-lettered entries, more than --fail-above \(failAbove)\n".utf8))
                throw ExitCode(1)
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
        @Flag(help: "Every entry of the dead-letter stream (only those with --reason's code, if given).") var all = false
        @Option(help: "With --all: only entries with this reason code (as `dlq stats` counts them, e.g. not_integer).") var reason: String?
        @Flag(help: #"Print {"redriven": [{id, stream, new_id}], "still_rejected": [{id, reason}]}."#) var json = false
        @Option(name: .customLong("set"), help: "field=value: a correction applied before publishing (repeatable).") var corrections: [String] = []
        @Option(help: "Stream partitions per entity, for replay rejects (default: as recorded for the namespace).") var partitions: Int?

        func validate() throws {
            guard all != !ids.isEmpty else { throw ValidationError("name entry ids or pass --all (not both)") }
            if reason != nil && !all { throw ValidationError("--reason selects among --all's entries: pass --all with it") }
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
                    entries += page.filter { reason == nil || $0["code"] == reason }
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
            var redriven: [[String: String]] = []
            var rejected: [[String: String]] = []
            for (id, outcome) in try await queue.redrive(entries, corrections: fixes, on: redis) {
                switch outcome {
                case .published(let stream, let newID):
                    redriven.append(["id": id.description, "stream": stream, "new_id": newID.description])
                    if !json { print("\(id)  redriven to \(stream) as \(newID)") }
                case .stillRejected(let reason):
                    rejected.append(["id": id.description, "reason": reason])
                    if !json { print("\(id)  still rejected: \(reason)") }
                }
            }
            if json {
                printJSON(["redriven": redriven, "still_rejected": rejected])
            } else if entries.isEmpty {
                print(reason.map { "no dead-letter entry with reason \($0)" } ?? "the dead-letter stream is empty")
            }
            if !rejected.isEmpty { throw ExitCode(1) }
        }
    }
}
