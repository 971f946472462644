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
    /// then this partition's own records, retired counters and the keys of its archive.
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
        for stream in streams {
            records += try await applyRecords(of: stream, origin: origin(stream), to: &fresh)
            let reply = try await redis.command("HGETALL", KPIKeys.retiredKey(stream: stream)).throwingServerError()
            let items = reply.array ?? []
            var fields: [(String, String)] = []
            var index = 1
            while index < items.count {
                if let field = items[index - 1].string, let value = items[index].string { fields.append((field, value)) }
                index += 2
            }
            if !fields.isEmpty { fresh.absorb(origin: origin(stream), fields: fields) }
            let archived = try await redis.command("GET", KPIKeys.archivedKeysKey(stream: stream)).throwingServerError()
            if let packed = archived.bytes { fresh.absorbRetiredKeys(origin: origin(stream), packed: packed) }
        }
        state = fresh
        fresh = KPIState()
        var commands = RedisCommandBuffer.scriptArguments()
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
        let key = KPIKeys.stateKey(stream: stream)
        var records = 0
        var cursor = "0"
        repeat {
            let reply = try await redis.command("HSCAN", key, cursor, "COUNT", "10000").throwingServerError()
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string, let items = parts[1].array else {
                throw RedisError(.unexpectedReply, "HSCAN \(key)")
            }
            cursor = next
            var index = 1
            while index < items.count {
                if let field = items[index - 1].bytes, let value = items[index].bytes,
                   let event = KPIRecord.decode(field: field, value: value) {
                    _ = state.apply(event, origin: origin)
                    records += 1
                }
                index += 2
            }
        } while cursor != "0"
        return records
    }
}
