import Foundation
import Contract
import KPIModel
import RedisClient
import RedisWire
import StreamRuntime

/// Taking over a partition: its fence raised to this aggregator's epoch, what other consumers
/// left pending claimed, then the state rebuilt from the persisted records and the partition's
/// whole contribution written again.
extension KPIAggregator {
    /// Raises the partition's fence to this aggregator's epoch, then claims every entry of the
    /// partition's streams pending for another consumer of the group (a previous owner that
    /// stopped or crashed: its fence now refuses anything it would commit), so they are processed
    /// at once rather than after the reclaim idle time. Run once the lease is taken and before the
    /// state is read.
    public func takeOver(consumer: String) async throws {
        try await exclusively { try await takeOverNow(consumer: consumer) }
    }

    private func takeOverNow(consumer: String) async throws {
        try await redis.load(Self.fencedCommit)
        var batch = RedisCommandBuffer()
        batch.evalsha(Self.fencedCommit, keys: [keys.fence(partition: partition)], arguments: [String(epoch)],
                      commands: RedisCommandBuffer.scriptArguments())
        do {
            try Self.check(try await redis.send(batch))
        } catch {
            throw Self.fenced(error)
        }
        for stream in streams {
            var start = StreamID.zero
            repeat {
                let claimed: AutoClaimResult
                do {
                    claimed = try await redis.xautoclaim(stream, group: group, consumer: consumer, minIdle: .zero, start: start, count: 1000)
                } catch let error as RedisError where error.serverErrorPrefix == "NOGROUP" {
                    break   // the runner creates the group next
                }
                start = claimed.next
            } while start != .zero
        }
    }

    /// Rebuilds the state and brings the partition's persisted contribution up to date (what
    /// differs, as deltas the merge stage follows). What it reads, in this order (so nothing falls in
    /// between): every dimension stream of every partition as it stands (entries read by the
    /// dimension feed from now on wait until this is done), then the dimension records every
    /// partition's owner persisted (an entry trimmed from its stream since was persisted before),
    /// then this partition's own records, its retirements (horizons, and the archive folded back
    /// in) and the keys of its archive.
    @discardableResult
    public func rebuild() async throws -> Int {
        try await exclusively { try await rebuildNow() }
    }

    /// `rebuild()` inside the gate: dimension batches that arrive meanwhile wait in
    /// `queuedDimensions` and are applied to the new state after it.
    @discardableResult
    func rebuildNow() async throws -> Int {
        rebuilding = true
        defer { rebuilding = false }
        // The old state goes first: a rebuild never holds two (at 26 M events, a gigabyte each).
        // Until it ends, whatever stops it leaves the aggregator marked for another.
        needsRebuild = true
        state = KPIState()
        rebuilds += 1
        foldedRecords = 0
        knownTopology = await redis.topologyChanges
        try await redis.load(Self.fencedCommit)
        var fresh = KPIState()
        var records = 0
        let foreign = origin(Self.foreignDimensions)
        let dimensions: [Entity] = [.customers, .products, .suppliers]
        // Read first, applied last: a version in a stream that no commit reflected yet may
        // re-attribute retired lines, which are revived (below) before it applies.
        var streamed: [(event: KPIState.Event, origin: Int32)] = []
        for q in 0..<layout.partitions {
            for entity in dimensions {
                let stream = layout.streamKey(entity, partition: q)
                var start = "-"
                while true {
                    let entries = try await redis.xrange(stream, start: start, count: 2000)
                    for entry in entries {
                        if let event = try? KPIRecord.event(entry, entity: entity) { streamed.append((event, foreign)) }
                    }
                    guard entries.count == 2000, let last = entries.last else { break }
                    start = "(" + last.id.description
                }
            }
        }
        for q in 0..<layout.partitions where q != partition {
            for entity in dimensions {
                records += try await applyRecords(of: layout.streamKey(entity, partition: q), origin: foreign, to: &fresh)
            }
        }
        var commands = RedisCommandBuffer.scriptArguments()
        for stream in streams {
            records += try await applyRecords(of: stream, origin: origin(stream), to: &fresh)
            try await absorbRetirement(of: stream, into: &fresh, converting: &commands)
            let archived = try await redis.command("GET", KPIKeys.archivedKeysKey(stream: stream)).throwingServerError()
            if let packed = archived.bytes { fresh.absorbRetiredKeys(origin: origin(stream), packed: packed) }
        }
        state = fresh
        fresh = KPIState()
        if state.hasRetired {
            let recall = state.recall(streamed)
            if !recall.isEmpty { try await revive(recall, into: &commands) }
        }
        for (event, origin) in streamed { _ = state.apply(event, origin: origin) }
        streamed = []
        _ = state.takeDirty()
        tracker.restart(state)
        // The persisted contribution is what the persisted records and archive make, committed
        // with them, unless a commit was lost (a failover) or the streams held dimension versions
        // no commit reflected: only what differs is written, as deltas the merge stage follows.
        // (Writing it whole in one script, as before, held Redis for minutes at 26 M events, 3.3 M
        // fields, and the client timed out: the rebuild never finished.)
        let difference = try await contributionDifference()
        let changed = Array(difference)
        var start = 0
        repeat {
            let end = min(start + Self.rebuildCommitFields, changed.count)
            var chunk: [String: [Int64]?] = [:]
            for (field, value) in changed[start..<end] { chunk.updateValue(value, forKey: field) }
            appendDelta(chunk, through: [], events: 0, more: end < changed.count, to: &commands)
            if !commands.isEmpty {
                var batch = RedisCommandBuffer()
                batch.evalsha(Self.fencedCommit, keys: [keys.fence(partition: partition)], arguments: [String(epoch)], commands: commands)
                try Self.check(try await redis.send(batch, reloading: Self.fencedCommit))
            }
            commands = RedisCommandBuffer.scriptArguments()
            start = end
        } while start < changed.count
        rewrittenFields = changed.count
        needsRebuild = false
        rebuilding = false
        // What the feed delivered meanwhile (new deliveries now wait for the gate instead).
        while !queuedDimensions.isEmpty {
            let queued = queuedDimensions
            queuedDimensions = []
            for reads in queued { try await applyBatch(reads, own: false) }
        }
        return records
    }

    /// Contribution fields a rebuild writes per fenced commit (a commit's delta entries say
    /// `~more` until the last, so the merge stage applies them together).
    static let rebuildCommitFields = 20_000

    /// The fields where the partition's persisted contribution (`part`) differs from the state's
    /// (nil: to remove), read page by page. Every field the hash holds is compared; when the hash
    /// holds fewer of the state's fields than the state has, a second pass finds the missing ones.
    /// (The state's fields it holds are counted as HLEN less the fields the state lacks: HSCAN may
    /// return a field twice, so counting them as they come could skip the second pass. Nothing
    /// else writes the hash meanwhile: the fence refuses the previous owner.)
    private func contributionDifference() async throws -> [String: [Int64]?] {
        let part = keys.contribution(partition: partition)
        var difference: [String: [Int64]?] = [:]
        let state = self.state
        try await scanning(part) { page in
            for (field, value) in page {
                let name = String(decoding: field, as: UTF8.self)
                let now = state.contributionValue(name)
                if now == nil || KPIState.decode(Substring(String(decoding: value, as: UTF8.self))) != now {
                    difference.updateValue(now, forKey: name)
                }
            }
        }
        let held = try await redis.command("HLEN", part).throwingServerError().int ?? 0
        let lacking = difference.values.reduce(0) { $0 + ($1 == nil ? 1 : 0) }
        guard held - lacking < state.contributionFieldCount else { return difference }
        var known = Set<String>()
        try await scanning(part) { page in for (field, _) in page { known.insert(String(decoding: field, as: UTF8.self)) } }
        state.forEachContributionField { field, value in
            if !known.contains(field) { difference.updateValue(value, forKey: field) }
        }
        return difference
    }

    /// Calls `body` with each page of a hash (`hscan`).
    private func scanning<Failure: Error>(_ key: String, _ body: ([(field: [UInt8], value: [UInt8])]) throws(Failure) -> Void) async throws {
        var cursor = "0"
        repeat {
            let (next, page) = try await redis.hscan(key, cursor: cursor)
            cursor = next
            try body(page)
        } while cursor != "0"
    }

    /// Applies every record of a stream's state hash (`stream:kpi`) to `state`.
    private func applyRecords(of stream: String, origin: Int32, to state: inout KPIState) async throws -> Int {
        var records = 0
        try await scanning(KPIKeys.stateKey(stream: stream)) { page in
            for (field, value) in page {
                guard let event = KPIRecord.decode(field: field, value: value) else { continue }
                _ = state.apply(event, origin: origin)
                records += 1
            }
        }
        return records
    }

    /// Adds back what a stream retired: its horizon and newest event time, then its archive
    /// folded in page by page (`KPIState.absorbArchive`). A retired key of format 1 (counters of
    /// every retired record, archived or not) is absorbed as it is, and converted to format 2 in
    /// the rebuild's fenced commit: the counters of records the archive does not hold remain.
    private func absorbRetirement(of stream: String, into state: inout KPIState, converting commands: inout RedisCommandBuffer) async throws {
        let origin = origin(stream), retiredKey = KPIKeys.retiredKey(stream: stream), archiveKey = KPIKeys.archiveKey(stream: stream)
        let items = try await redis.command("HGETALL", retiredKey).throwingServerError().array ?? []
        var fields: [(String, String)] = []
        var index = 1
        while index < items.count {
            if let field = items[index - 1].string, let value = items[index].string { fields.append((field, value)) }
            index += 2
        }
        let legacy = KPIState.isLegacyRetirement(fields)
        if !fields.isEmpty { state.absorb(origin: origin, fields: fields) }
        var archived: [String: Int64] = [:]
        do {
            try await scanning(archiveKey) { page throws(KPIRecord.Unreadable) in
                foldedRecords += page.count
                if legacy {
                    archived.merge(try state.archivedCounters(page), uniquingKeysWith: +)
                } else {
                    try state.absorbArchive(origin: origin, page)
                }
            }
        } catch let error as KPIRecord.Unreadable {
            throw RedisError(.unexpectedReply, "\(archiveKey): \(error.description)")
        }
        guard legacy else { return }
        let remainder = state.legacyRemainder(fields, archived: archived)
        var kept = fields.filter { $0.0 == "wm" || $0.0 == "horizon" }
        kept.append(("format", KPIKeys.retiredFormat))
        kept += remainder.map { ($0.key, String($0.value)) }
        commands.append("DEL", retiredKey)
        KPIView.appendHSET(retiredKey, kept, to: &commands)
        convertedRetirements += 1
    }

}
