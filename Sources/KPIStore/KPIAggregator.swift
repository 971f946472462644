import Foundation
public import RedisClient
public import Contract
public import RedisWire
import KPIModel
import StreamRuntime

/// The `kpi` consumer group: keeps the KPIs in Redis from every entity stream.
///
/// Per batch, for each stream it read: the records of the state changes its entries caused are
/// written to the stream's state hash (`sw:{orders:0}:kpi`, same slot as the stream) and the
/// entries are acknowledged, in one atomic script call, so a batch's effects and its
/// acknowledgement commit together or not at all. The figures are then written as absolute values
/// (never increments) to the `{kpi}` keys in a second script call with the batch's change record;
/// both go in one round trip. Figures derive from the committed state alone, so writing them twice
/// is harmless, and after a crash the aggregator rebuilds them from the persisted records (applying
/// them again gives the same state whatever their order) and rewrites every KPI key: a crash, a
/// redelivery or a replay never applies anything twice.
///
/// One aggregator runs per namespace (its state is in memory): a lease (`{kpi}:lease`) keeps a
/// second one waiting, and the lease is *fenced*. Each take of the lease draws a new epoch
/// (`{kpi}:epoch`); the new holder first raises the fence of every slot it writes to that epoch,
/// then rebuilds; every commit is a script that refuses to write (`FENCED`) when the slot's fence
/// is above the writer's epoch. So an aggregator that was paused past its lease (a stop signal, a
/// long pause, a partition) can never commit after its successor read the state: its first commit
/// is refused and it stops, whatever its lease keeper has or has not noticed yet.
public actor KPIAggregator {
    public let layout: StreamLayout
    public let keys: KPIKeys
    public let group: String
    /// The fencing epoch this aggregator writes with (from its lease).
    public let epoch: Int
    /// Change records kept in the `changes` stream (approximately).
    public var changesLimit = 10_000
    /// Retire what has been quiet this long (per stream, in event time) into counters, so the
    /// state stays bounded under a load that never stops (`KPIState+Retention.swift`); nil keeps
    /// every record (exact for any lateness, but the state grows with the history).
    public var stateRetention: Duration?
    /// How often (wall clock) a retirement pass runs.
    public var retireEvery: Duration = .seconds(5)
    private var lastRetirement = ContinuousClock.now
    /// Stream keys by origin number, and back.
    var originKeys: [String] = []
    private var origins: [String: Int32] = [:]
    let redis: RedisConnection
    private let deadLetters: DeadLetterQueue
    var state = KPIState()
    var writtenTotals: [String: String] = [:]
    var needsRebuild = true

    /// `redis` is used for the aggregator's writes only (the runner reads on its own connection,
    /// so a write never waits behind a blocked read). `epoch` comes from the lease
    /// (`KPILease.acquire`); an aggregator that holds none can use 0 only on a namespace no
    /// aggregator with a lease ever wrote to (a benchmark's probe).
    public init(layout: StreamLayout, group: String = "kpi", redis: RedisConnection, epoch: Int) {
        self.layout = layout
        self.keys = KPIKeys(layout: layout)
        self.group = group
        self.redis = redis
        self.epoch = epoch
        self.deadLetters = DeadLetterQueue(layout: layout)
    }

    public func setStateRetention(_ retention: Duration?, every: Duration = .seconds(5)) {
        stateRetention = retention
        retireEvery = every
        lastRetirement = .now - every
    }

    func origin(_ stream: String) -> Int32 {
        if let origin = origins[stream] { return origin }
        let origin = Int32(originKeys.count)
        originKeys.append(stream)
        origins[stream] = origin
        return origin
    }

    /// The commit of the previous batch, still in flight, with the entries it covers: a batch is
    /// applied in memory while the one before it commits (its entries stay pending until then).
    private var inFlight: (task: Task<Void, any Error>, reads: [StreamRead])?
    /// Entries whose commit failed: applied again, after the rebuild, before anything else (they
    /// are still pending for this consumer; the runner considers them handled).
    private var unconfirmed: [StreamRead] = []
    private var lastBatchBytes = 64 * 1024

    /// Applies a batch: state changes and XACK per stream, then the figures and a change record.
    /// Returns once the commit is sent; `settle()` waits for the last one. After any failure the
    /// state is rebuilt from what committed before anything else is applied, so the caller retries
    /// a failed call with the same entries and nothing is lost or doubled.
    public func apply(_ reads: [StreamRead]) async throws {
        do {
            try await rebuildIfNeeded()
            try await applyBatch(reads)
        } catch {
            // The state in memory may be ahead of what committed: rebuild it from Redis first.
            needsRebuild = true
            throw Self.fenced(error)
        }
    }

    /// Waits until everything applied so far is committed (rebuilding and committing again what a
    /// failed commit left out); throws what still fails.
    public func settle() async throws {
        do {
            try await rebuildIfNeeded()
            try await flush()
        } catch {
            needsRebuild = true
            throw Self.fenced(error)
        }
    }

    private func rebuildIfNeeded() async throws {
        guard needsRebuild else { return }
        try await flush()
        try await rebuild()
        if !unconfirmed.isEmpty {
            try await applyBatch(unconfirmed)
            unconfirmed = []
        }
    }

    /// Waits for the commit in flight; throws its error (its entries then wait in `unconfirmed`).
    private func flush() async throws {
        guard let (task, reads) = inFlight else { return }
        inFlight = nil
        do {
            try await task.value
        } catch {
            needsRebuild = true
            unconfirmed += reads
            throw error
        }
    }

    /// A commit refused by the fence: another aggregator took the lease (this one was paused past
    /// it); stop, with a message that says so.
    static func fenced(_ error: any Error) -> any Error {
        guard let error = error as? RedisError, error.serverErrorPrefix == "FENCED" else { return error }
        return ConsumerStop(
            cause: "this KPI aggregator lost its lease to a newer one (\(error.message)); its commit was refused and it stopped",
            advice: "nothing: the aggregator holding the lease carries on; restart this one to make it a standby")
    }

    private func applyBatch(_ reads: [StreamRead]) async throws {
        var batch = RedisCommandBuffer(reservingCapacity: lastBatchBytes + lastBatchBytes / 4)
        var rejects: [(stream: String, entry: StreamEntry, reason: String, deliveries: Int?)] = []
        var events = 0
        var through: [String] = []
        let epoch = String(self.epoch)
        for read in reads where !read.entries.isEmpty {
            events += read.entries.count
            // In entry order: when a key changes twice in a batch, HSET keeps the last pair.
            var records: [(field: [UInt8], value: [UInt8])] = []
            if let (entity, _) = layout.parse(streamKey: read.key) {
                let origin = origin(read.key)
                for entry in read.entries {
                    do {
                        let event = try KPIRecord.event(entry, entity: entity)
                        switch state.apply(event, origin: origin) {
                        case .applied: records.append(KPIRecord.record(event))
                        case .unchanged: break
                        case .beyondHorizon(let reason): rejects.append((read.key, entry, reason, nil))
                        }
                    } catch {
                        rejects.append((read.key, entry, error.description, nil))
                    }
                }
            } else {
                rejects += read.entries.map { (read.key, $0, "not a stream of namespace \(layout.namespace)", nil) }
            }
            var commands = RedisCommandBuffer.scriptArguments(reservingCapacity: records.count * 160 + read.entries.count * 24)
            if !records.isEmpty {
                let stateKey = KPIKeys.stateKey(stream: read.key)
                var start = 0
                while start < records.count {
                    let chunk = records[start..<min(start + 1000, records.count)]
                    start += chunk.count
                    commands.begin(arguments: 2 + chunk.count * 2)
                    commands.add("HSET"); commands.add(stateKey)
                    for (field, value) in chunk { commands.add(field); commands.add(value) }
                }
            }
            commands.xack(read.key, group: group, ids: read.entries.map(\.id))
            batch.evalsha(Self.fencedCommit, keys: [KPIKeys.fenceKey(stream: read.key)], arguments: [epoch], commands: commands)
            through.append("\(read.key)=\(read.entries.last!.id)")
        }
        if let retention = stateRetention, ContinuousClock.now - lastRetirement >= retireEvery {
            lastRetirement = .now
            appendRetirements(state.retire(olderThan: retention.milliseconds * 1000), to: &batch)
        }
        // Unreadable entries are dead-lettered first (idempotently), so an acknowledged one is
        // always in the dead-letter stream.
        if !rejects.isEmpty { try await deadLetters.appendEvents(rejects, stage: group, on: redis) }

        let dirty = state.takeDirty()
        let totals = KPIView.totals(state)
        var changed: [(String, String)] = []
        for (field, value) in totals where writtenTotals[field] != value { changed.append((field, value)) }
        let removed = writtenTotals.keys.filter { totals[$0] == nil }
        var figures = RedisCommandBuffer.scriptArguments()
        KPIView.appendWrites(
            state, dirty: dirty, totals: Dictionary(uniqueKeysWithValues: changed), removedTotals: removed, keys: keys, to: &figures)
        appendChangeRecord(changed: changed, removed: removed, events: events, through: through, to: &figures)
        batch.evalsha(Self.fencedCommit, keys: [keys.fence], arguments: [epoch], commands: figures)
        try await flush()
        let redis = self.redis
        let commands = batch
        lastBatchBytes = batch.bytes.count
        inFlight = (Task.detached { try Self.check(try await redis.send(commands)) }, reads)
        writtenTotals = totals
    }

    /// Records retired since the start (for the log and tests).
    public internal(set) var retiredRecords = 0
    public var heldRecords: (lines: Int, payments: Int, movements: Int) { state.heldRecords }


}
