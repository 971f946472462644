import ArgumentParser
import Foundation
import ServiceLifecycle
import Contract
import RedisClient
import StreamRuntime

extension Warehouse {
    /// `warehouse lag`: how far behind each consumer group is, with Burrow-style health rules.
    struct Lag: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Consumer lag per stream partition × group, in entries and in seconds, with a status; exit 2 when any group is STALLED or STOPPED.",
            discussion: """
                Two readings --window-ms apart give the rates and the status: OK (caught up, or catching up); WARN (behind, \
                consuming, and the lag grew by more than --warn-growth entries); STALLED (behind, a live consumer, nothing \
                consumed); STOPPED (behind and no consumer active within --stopped-after seconds). Lag is Redis's figure \
                (XINFO GROUPS), counted with XRANGE when Redis reports none; time lag is now minus the time of the oldest \
                entry not yet delivered. --json prints {status, generated_at, rows: […]}. Consumers gone longer than \
                --stopped-after with nothing pending are left out of the consumers lists (--all-consumers shows them); \
                --prune deletes them from their groups (each checked and deleted in one script, so a consumer holding \
                pending entries is never deleted) and prints what it deleted ({pruned: […]} with --json).
                """)

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var streams: StreamOptions

        @Option(help: "Stream partitions per entity (default: as recorded for the namespace, else 1; given, it must match the record).")
        var partitions: Int?

        @Option(help: "Only this group.")
        var group: String?

        @Option(help: "Milliseconds between the two readings.")
        var windowMs = 1000

        @Option(help: "A consumer idle longer than this many seconds is not live.")
        var stoppedAfter: Double = 30

        @Option(help: "Lag growth (entries) over the window tolerated before WARN.")
        var warnGrowth = 0

        @Flag(help: "Redraw in place every window until interrupted.")
        var watch = false

        @Flag(help: "Also list consumers gone longer than --stopped-after with nothing pending.")
        var allConsumers = false

        @Flag(help: "Delete consumers gone longer than --stopped-after with nothing pending from their groups (only --group's, if given), then exit.")
        var prune = false

        @Flag(help: "Print one JSON object.")
        var json = false

        var stoppedAfterMilliseconds: Int { Int(stoppedAfter * 1000) }

        func validate() throws {
            guard windowMs > 0, stoppedAfter > 0, warnGrowth >= 0, (partitions ?? 1) >= 1 else {
                throw ValidationError("--window-ms, --stopped-after and --partitions must be positive, --warn-growth not negative")
            }
            if prune && watch { throw ValidationError("--prune runs once: it cannot be combined with --watch") }
        }

        func run() async throws {
            let redis = try await RedisConnection(url: connection.servers.redisURL)
            let layout = try await streams.layout(partitions: partitions, record: false, command: "lag", on: redis)
            let keys = layout.allStreams
            if prune {
                let pruned = try await ConsumerPrune.prune(
                    streams: keys, group: group, idleAtLeast: .milliseconds(stoppedAfterMilliseconds), on: redis)
                if json {
                    printJSON(["pruned": try encodedObject(pruned)] as [String: Any])
                } else {
                    for item in pruned {
                        print("deleted consumer \(item.consumer) of group \(item.group) on \(item.stream) (idle \(item.idleMilliseconds / 1000) s, nothing pending)")
                    }
                    print(pruned.isEmpty ? "no consumer gone longer than \(stoppedAfter) s with nothing pending" : "pruned \(pruned.count) consumer(s)")
                }
                return
            }
            var thresholds = LagMonitor.Thresholds()
            thresholds.stoppedAfter = .milliseconds(stoppedAfterMilliseconds)
            thresholds.warnGrowth = warnGrowth
            let monitor = LagMonitor(thresholds: thresholds)
            try await runServices([ClosureService {
                let worst = try await report(monitor, streams: keys, on: redis)
                if worst.alerts { throw ExitCode(2) }
            }])
        }

        /// Prints the lag once, or (`--watch`) every window until interrupted; returns the worst status.
        func report(_ monitor: LagMonitor, streams keys: [String], on redis: RedisConnection) async throws -> LagMonitor.Status {
            var worst = LagMonitor.Status.ok
            repeat {
                var rows = try await monitor.sample(streams: keys, on: redis, window: .milliseconds(windowMs))
                if let group { rows = rows.filter { $0.reading.group == group } }
                worst = rows.map(\.status).max() ?? .ok
                if !allConsumers {
                    for index in rows.indices {
                        rows[index].reading.consumers.removeAll { $0.pending == 0 && $0.idleMilliseconds > stoppedAfterMilliseconds }
                    }
                }
                if json {
                    printJSON(["status": worst.rawValue, "generated_at": Timestamp.now.description, "rows": try encodedObject(rows)] as [String: Any])
                } else {
                    if watch { print("\u{1B}[H\u{1B}[2J", terminator: "") }
                    print(Self.table(rows, worst: worst))
                }
                fflush(nil)
            } while watch && !Task.isShuttingDownGracefully
            return worst
        }

        static func table(_ rows: [LagMonitor.Row], worst: LagMonitor.Status) -> String {
            func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
                let space = String(repeating: " ", count: max(0, width - text.count))
                return right ? space + text : text + space
            }
            func seconds(_ value: Double?) -> String {
                guard let value else { return "-" }
                if value < 1 { return "0s" }
                if value < 120 { return String(format: "%.0fs", value) }
                if value < 7200 { return String(format: "%.0fm", value / 60) }
                return String(format: "%.1fh", value / 3600)
            }
            let streamWidth = max(22, (rows.map(\.reading.stream.count).max() ?? 0) + 2)
            let groupWidth = max(11, (rows.map(\.reading.group.count).max() ?? 0) + 2)
            var out = pad("STREAM", streamWidth) + pad("GROUP", groupWidth) + pad("LENGTH", 9, right: true) + pad("LAG", 9, right: true)
                + pad("PENDING", 9, right: true) + pad("OLDEST", 8, right: true) + pad("TIME LAG", 9, right: true)
                + pad("IN/s", 9, right: true) + pad("OUT/s", 9, right: true) + pad("ETA", 7, right: true) + "  " + pad("STATUS", 8) + "CONSUMERS\n"
            for row in rows {
                let r = row.reading
                let consumers = r.consumers.isEmpty ? "none" : r.consumers.map { "\($0.name) (idle \(seconds(Double($0.idleMilliseconds) / 1000)), \($0.pending) pending)" }.joined(separator: ", ")
                out += pad(r.stream, streamWidth) + pad(r.group, groupWidth) + pad(String(r.length), 9, right: true) + pad(String(r.lag), 9, right: true)
                    + pad(String(r.pending), 9, right: true) + pad(seconds(r.oldestPendingAgeSeconds), 8, right: true)
                    + pad(seconds(r.timeLagSeconds), 9, right: true) + pad(String(Int(row.produceRate)), 9, right: true)
                    + pad(String(Int(row.consumeRate)), 9, right: true) + pad(seconds(row.etaSeconds), 7, right: true) + "  "
                    + pad(row.status.rawValue, 8) + consumers + "\n"
            }
            out += rows.isEmpty ? "no consumer groups yet\n" : "overall: \(worst.rawValue)\n"
            return out
        }
    }
}
