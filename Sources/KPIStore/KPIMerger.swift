import Foundation
public import RedisClient
public import Contract
public import RedisWire
import KPIModel
import StreamRuntime

/// The merge stage: keeps every partition's contribution (`sw:{p3}:kpi:part`, followed through
/// `sw:{p3}:kpi:deltas`), their sum, and writes the global view (`sw:{kpi}:…`, the keys `kpis`,
/// `tail`, `reconcile` and the dashboard read) with its change record, each cycle in one fenced
/// script call in the `{kpi}` slot: a reader always sees one consistent snapshot. The figures are
/// absolute values derived from the sum, so writing them twice is harmless, and a new merge stage
/// (after a crash, or on another process) starts from the partitions' contributions and rewrites
/// every key.
///
/// One runs per namespace, inside one of the `consume --group kpi` processes, under the `{kpi}`
/// lease; its commits are fenced by that lease's epoch.
public actor KPIMerger {
    public let layout: StreamLayout
    public let keys: KPIKeys
    public let epoch: Int
    /// Change records kept in the `changes` stream (approximately).
    public var changesLimit = 10_000
    let redis: RedisConnection
    private var merge: ContributionMerge
    private var writtenTotals: [String: String] = [:]
    /// Per partition: the last delta entry applied.
    public private(set) var cursors: [Int: StreamID] = [:]
    /// Per partition: the fields of a commit whose last delta entry is not read yet.
    private var held: [Int: [String: [Int64]?]] = [:]
    private let partitionOfKey: [String: Int]
    /// The writer connection's `topologyChanges` when the contributions were last read whole.
    private var knownTopology = 0
    /// Day × product members the last start found different from the view, and wrote (tests).
    public private(set) var startRewrites = 0

    public init(layout: StreamLayout, redis: RedisConnection, epoch: Int) {
        self.layout = layout
        self.keys = KPIKeys(layout: layout)
        self.redis = redis
        self.epoch = epoch
        merge = ContributionMerge(partitions: layout.partitions)
        let keys = KPIKeys(layout: layout)
        partitionOfKey = Dictionary(uniqueKeysWithValues: (0..<layout.partitions).map { (keys.deltas(partition: $0), $0) })
    }

    /// The delta streams to follow, from the cursors `start()` set.
    public var deltaCursors: [String: StreamID] {
        Dictionary(uniqueKeysWithValues: (0..<layout.partitions).map { (keys.deltas(partition: $0), cursors[$0] ?? .zero) })
    }

    /// Raises the `{kpi}` fence to this epoch, reads every partition's whole contribution (the
    /// last delta id first, so nothing committed in between is missed: deltas carry absolute
    /// values, so applying one again is harmless) and rewrites the global view from their sum.
    public func start() async throws {
        knownTopology = await redis.topologyChanges
        try await redis.load(KPIAggregator.fencedCommit)
        var fence = RedisCommandBuffer()
        fence.evalsha(KPIAggregator.fencedCommit, keys: [keys.fence], arguments: [String(epoch)], commands: RedisCommandBuffer.scriptArguments())
        do { try KPIAggregator.check(try await redis.send(fence)) } catch { throw KPIAggregator.fenced(error) }
        merge = ContributionMerge(partitions: layout.partitions)
        held = [:]
        for partition in 0..<layout.partitions {
            let deltas = keys.deltas(partition: partition)
            cursors[partition] = try await redis.lastEntryIDs([deltas])[deltas] ?? .zero
            // Page by page (3.3 M fields at 26 M events: read whole, the reply and its copy took
            // over a gigabyte). A commit between pages is harmless: its delta, after the cursor,
            // carries absolute values and is applied next.
            var cursor = "0"
            repeat {
                let (next, items) = try await redis.hscan(keys.contribution(partition: partition), cursor: cursor)
                cursor = next
                var page: [String: [Int64]?] = [:]
                for (field, value) in items {
                    guard let value = KPIState.decode(Substring(String(decoding: value, as: UTF8.self))) else { continue }
                    page.updateValue(value, forKey: String(decoding: field, as: UTF8.self))
                }
                merge.apply(partition: partition, page)
            } while cursor != "0"
        }
        _ = merge.takeDirty()
        // The small keys are written whole, with the first of the day × product differences.
        var commands = RedisCommandBuffer.scriptArguments()
        commands.append("DEL", nil, each: [keys.totals, keys.minutes, keys.hours, keys.days, keys.products, keys.onHand])
        let totals = KPIView.totals(merge.state)
        KPIView.appendWrites(merge.state, dirty: nil, totals: totals, removedTotals: [], keys: keys, dayProducts: false, to: &commands)
        // Revenue per day × product (3.3 M members at 26 M events) only where the view differs:
        // after a crash it lacks at most the last cycle. Written whole in one script, as before, it
        // held Redis for 3.7 s at each start and added its size to the AOF. What differs goes in
        // commits of at most `startCommitMembers`, so a view far from the state (a first start on
        // a namespace whose view was deleted) is shown partly rewritten while the stage starts.
        var pending = 0, rewritten = 0
        let expected = Dictionary(uniqueKeysWithValues: merge.state.byDayProduct.keys.map { (keys.products(day: $0), $0) })
        for key in try await redis.scanKeys(match: "\(keys.dayProductsPrefix)*") where expected[key] == nil {
            commands.append("DEL", key)
            pending += 1
        }
        // Each day's first page is asked for in pipelines of 16 days: one round trip a day took
        // seconds for a few hundred days on a busy machine, and 256 at once held 1.3 M members'
        // replies at 26 M events (110 MB more at the restart's peak).
        let days = Array(expected)
        var index = 0
        while index < days.count {
            let chunk = days[index..<min(index + 16, days.count)]
            index += chunk.count
            var scans = RedisCommandBuffer()
            for (key, _) in chunk { scans.append("ZSCAN", key, "0", "COUNT", "10000") }
            for ((key, day), first) in zip(chunk, try await redis.send(scans)) {
                let differences = try await dayProductDifferences(key, first: first, from: merge.state.products(onDay: day))
                KPIView.appendZSet(key, differences, to: &commands)
                pending += differences.count
                rewritten += differences.count
                if pending >= Self.startCommitMembers {
                    try await commit(commands)
                    commands = RedisCommandBuffer.scriptArguments()
                    pending = 0
                }
            }
        }
        try await commit(commands)
        startRewrites = rewritten
        writtenTotals = totals
    }

    /// Day × product members a merge stage's start writes per fenced commit.
    static let startCommitMembers = 20_000

    /// The members of a day's product ranking (`key`) that differ from `target` (nil: to remove),
    /// read page by page from the `first` ZSCAN reply.
    private func dayProductDifferences(
        _ key: String, first: RedisReply, from target: [String: KPIState.Money]
    ) async throws -> [(String, Int64?)] {
        var differences: [(String, Int64?)] = []
        var seen = Set<String>()
        var reply = first
        while true {
            let (next, page) = try RedisConnection.scanPage(reply, of: "ZSCAN \(key)")
            for (field, value) in page {
                let member = String(decoding: field, as: UTF8.self)
                guard let score = Double(String(decoding: value, as: UTF8.self)), seen.insert(member).inserted else { continue }
                if let want = target[member] {
                    if Double(want.amount) != score { differences.append((member, want.amount)) }
                } else {
                    differences.append((member, nil))
                }
            }
            if next == "0" { break }
            reply = try await redis.command("ZSCAN", key, next, "COUNT", "10000")
        }
        for (member, money) in target where !seen.contains(member) { differences.append((member, money.amount)) }
        return differences
    }

    /// Applies delta entries (from `deltaCursors`) and writes what changed in the global view.
    public func apply(_ reads: [StreamRead]) async throws {
        var events = 0
        var through: [String] = []
        var any = false
        for read in reads {
            guard let partition = partitionOfKey[read.key] else { continue }
            for entry in read.entries {
                if let cursor = cursors[partition], entry.id <= cursor { continue }
                cursors[partition] = entry.id
                // A commit's fields may span several entries (all but the last say `~more`): they
                // are held until the last is read, so the view never shows part of a commit.
                var changes = held.removeValue(forKey: partition) ?? [:]
                var reset = false, more = false
                for (name, value) in entry.pairs {
                    switch name {
                    case "~reset": reset = true
                    case "~more": more = true
                    case "~through": if !value.isEmpty { through.append(String(value)) }
                    case "~events": events += Int(value) ?? 0
                    default: changes.updateValue(value.isEmpty ? nil : KPIState.decode(Substring(value)), forKey: String(name))
                    }
                }
                if reset {
                    let fields = try await redis.command("HGETALL", keys.contribution(partition: partition)).throwingServerError()
                    merge.replace(partition: partition, with: try Self.contribution(fields))
                    any = true
                } else if more {
                    held[partition] = changes
                } else {
                    merge.apply(partition: partition, changes)
                    any = true
                }
            }
        }
        guard any else { return }
        let dirty = merge.takeDirty()
        let totals = KPIView.totals(merge.state)
        var changed: [(String, String)] = []
        for (field, value) in totals where writtenTotals[field] != value { changed.append((field, value)) }
        let removed = writtenTotals.keys.filter { totals[$0] == nil }
        var commands = RedisCommandBuffer.scriptArguments()
        KPIView.appendWrites(
            merge.state, dirty: dirty, totals: Dictionary(uniqueKeysWithValues: changed), removedTotals: removed, keys: keys, to: &commands)
        appendChangeRecord(changed: changed, removed: removed, events: events, through: through, to: &commands)
        try await commit(commands)
        writtenTotals = totals
    }

    /// True when every partition's delta stream has nothing after what was applied.
    public func caughtUp() async throws -> Bool {
        let lasts = try await redis.lastEntryIDs((0..<layout.partitions).map { keys.deltas(partition: $0) })
        return !lasts.contains { key, last in last > partitionOfKey[key].flatMap { cursors[$0] } ?? .zero }
    }

    private func commit(_ commands: RedisCommandBuffer) async throws {
        var batch = RedisCommandBuffer()
        batch.evalsha(KPIAggregator.fencedCommit, keys: [keys.fence], arguments: [String(epoch)], commands: commands)
        do {
            try KPIAggregator.check(try await redis.send(batch, reloading: KPIAggregator.fencedCommit))
        } catch {
            throw KPIAggregator.fenced(error)
        }
        // After a restart or a failover the global view may have lost commits it acknowledged:
        // the caller starts again (reads every contribution, rewrites every key).
        try await KPIAggregator.checkTopology(redis, known: knownTopology)
    }

    func appendChangeRecord(
        changed: [(String, String)], removed: [String], events: Int, through: [String], to batch: inout RedisCommandBuffer
    ) {
        var fields = [
            "at", Timestamp.now.description,
            "watermark", merge.state.watermark?.description ?? "",
            "events", String(events),
            "through", through.joined(separator: " "),
        ]
        for (name, value) in changed.sorted(by: { $0.0 < $1.0 }) where !name.hasPrefix("watermark") && name != "latest_day" {
            fields.append("kpi:" + name)
            fields.append(value)
        }
        for name in removed.sorted() {
            fields.append("kpi:" + name)
            fields.append("")
        }
        batch.append(["XADD", keys.changes, "MAXLEN", "~", String(changesLimit), "*"] + fields)
    }

    /// A `part` hash as a contribution.
    static func contribution(_ reply: RedisReply) throws -> KPIState.Contribution {
        let items = reply.array ?? []
        var out: KPIState.Contribution = [:]
        var index = 1
        while index < items.count {
            if let field = items[index - 1].string, let text = items[index].string, let value = KPIState.decode(Substring(text)) {
                out[field] = value
            }
            index += 2
        }
        return out
    }
}
