import ArgumentParser
import Foundation
import ServiceLifecycle
import Contract
import KPIStore
import RedisClient
import RedisWire
import StreamRuntime

extension Warehouse {
    /// `warehouse tail`: the KPI change stream, live.
    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print KPI changes as the aggregator applies them, until interrupted.",
            discussion: """
                Each batch the aggregator applies appends one record: which KPIs changed and their new values, and the \
                event-time watermark. Text: one line per changed KPI, with the record's time and watermark and the change \
                since the previous value. --json: one object per record per line: {id, at, watermark, events, changes: \
                {kpi: value}}. --count counts records.
                """)

        enum Start: String, ExpressibleByArgument { case start, now }

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var streams: StreamOptions

        @Option(help: "start (every change kept) or now (only new ones).")
        var from: Start = .now

        @Option(name: .customLong("kpi"), help: "Only KPIs matching this glob (repeatable), e.g. 'revenue*' or 'window:5m:*'.")
        var patterns: [String] = []

        @Flag(help: "JSON lines.")
        var json = false

        @Option(help: "Exit after this many records (0: run until interrupted).")
        var count = 0

        func run() async throws {
            try await runServices([ClosureService { try await follow() }])
        }

        /// Prints change records until interrupted (a graceful shutdown) or `count` were printed.
        func follow() async throws {
            let redis = try await RedisConnection(url: connection.servers.redisURL)
            let key = KPIKeys(layout: streams.layout()).changes
            var position = from == .start ? "0" : (try await redis.xrevrange(key, count: 1).first?.id.description ?? "0")
            var previous: [String: String] = [:]
            var printed = 0
            while !Task.isShuttingDownGracefully {
                let reads = try await redis.xread(streams: [(key, position)], count: 100, block: .milliseconds(500))
                for entry in reads.flatMap(\.entries) {
                    position = entry.id.description
                    var changes: [(String, String)] = []
                    var meta: [String: String] = [:]
                    for (name, value) in entry.pairs {
                        if name.hasPrefix("kpi:") {
                            let kpi = String(name.dropFirst(4))
                            if patterns.isEmpty || patterns.contains(where: { fnmatch($0, kpi, 0) == 0 }) { changes.append((kpi, value)) }
                        } else {
                            meta[name] = value
                        }
                    }
                    if !patterns.isEmpty && changes.isEmpty { continue }
                    if json {
                        printJSON([
                            "id": entry.id.description, "at": meta["at"] ?? "", "watermark": meta["watermark"] ?? "",
                            "events": Int(meta["events"] ?? "") ?? 0,
                            "changes": Dictionary(changes, uniquingKeysWith: { $1 }),
                        ] as [String: Any])
                    } else {
                        for line in Self.lines(at: meta["at"] ?? "", watermark: meta["watermark"], changes: changes, previous: previous) {
                            print(line)
                        }
                    }
                    for (kpi, value) in changes { previous[kpi] = value }
                    fflush(nil)
                    printed += 1
                    if count > 0 && printed >= count { return }
                }
            }
        }

        /// The text form of one change record: a line per KPI that changed (a record from the start
        /// of the stream changes every KPI at once), each with the record's time and watermark, the
        /// new value and the change since the previous one.
        static func lines(at: String, watermark: String?, changes: [(String, String)], previous: [String: String]) -> [String] {
            changes.map { kpi, value in
                let delta = Self.delta(previous[kpi], value).map { " (\($0))" } ?? ""
                return "\(at)  watermark \(watermark ?? "-")  \(kpi) \(value.isEmpty ? "(gone)" : value)\(delta)"
            }
        }

        /// `+53.97` / `-1` between two numbers of the same shape; nil when not both numbers.
        static func delta(_ old: String?, _ new: String) -> String? {
            guard let old, let a = DecimalValue(old), let b = DecimalValue(new) else { return nil }
            let scale = max(a.scale, b.scale)
            let d = b.rescaled(to: scale).units - a.rescaled(to: scale).units
            guard d != 0 else { return nil }
            let text = DecimalValue(units: d, scale: scale).description
            return d > 0 ? "+" + text : text
        }
    }
}
