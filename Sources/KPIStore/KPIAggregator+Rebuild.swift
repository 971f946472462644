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

    /// Rebuilds the state and writes the partition's whole contribution again (a `reset` delta
    /// tells the merge stage to read it whole). What it reads, in this order (so nothing falls in
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
        var contribution = tracker.reset(state)
        let part = keys.contribution(partition: partition)
        commands.append("DEL", part)
        KPIView.appendHSET(part, contribution.map { ($0.key, KPIState.encode($0.value)) }, to: &commands)
        commands.append(["XADD", keys.deltas(partition: partition), "MAXLEN", "~", String(deltasLimit), "*", "~reset", String(epoch)])
        contribution.removeAll()
        var batch = RedisCommandBuffer()
        batch.evalsha(Self.fencedCommit, keys: [keys.fence(partition: partition)], arguments: [String(epoch)], commands: commands)
        try Self.check(try await redis.send(batch, reloading: Self.fencedCommit))
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

    /// Applies every record of a stream's state hash (`stream:kpi`) to `state`.
    private func applyRecords(of stream: String, origin: Int32, to state: inout KPIState) async throws -> Int {
        var records = 0
        try await scan(KPIKeys.stateKey(stream: stream)) { page in
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
            try await scan(archiveKey) { page throws(KPIRecord.Unreadable) in
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

    /// Calls `body` with each page of a hash's fields and values (HSCAN).
    private func scan<Failure: Error>(_ key: String, _ body: ([(field: [UInt8], value: [UInt8])]) throws(Failure) -> Void) async throws {
        var cursor = "0"
        repeat {
            let reply = try await redis.command("HSCAN", key, cursor, "COUNT", "10000").throwingServerError()
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string, let items = parts[1].array else {
                throw RedisError(.unexpectedReply, "HSCAN \(key)")
            }
            cursor = next
            var page: [(field: [UInt8], value: [UInt8])] = []
            page.reserveCapacity(items.count / 2)
            var index = 1
            while index < items.count {
                if let field = items[index - 1].bytes, let value = items[index].bytes { page.append((field, value)) }
                index += 2
            }
            try body(page)
            if key.hasSuffix(":kpi:archive") { foldedRecords += page.count }
        } while cursor != "0"
    }
}
