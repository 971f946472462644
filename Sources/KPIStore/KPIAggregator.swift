import Foundation
public import RedisClient
public import Contract
public import RedisWire
import KPIModel
import StreamRuntime

/// The owner of one partition's KPIs (the `kpi` group scaled out by partition).
///
/// Its state holds the partition's facts (order lines, payments, movements) and every dimension
/// version (customers, products, suppliers) of every partition: the partition's own arrive with
/// its group reads, the others' from the process's dimension feed (`StreamTail`, XREAD). Per
/// batch it commits, in one fenced script call in the partition's slot: the records of the state
/// changes (`sw:{p3}:orders:kpi`, …), the XACK of the batch's entries, the changed fields of the
/// partition's contribution to the figures (`sw:{p3}:kpi:part`) and an entry that lists them
/// (`sw:{p3}:kpi:deltas`), which the merge stage follows (`KPIMerger`). So a batch's effects, its
/// acknowledgement and what the global view learns of it commit together or not at all.
///
/// After a crash or a takeover the state is rebuilt from the persisted records (the partition's
/// own, and the dimension records of every partition, plus what the dimension streams hold) and
/// the whole contribution is written again (a `reset` delta): nothing is applied twice.
///
/// A lease per partition keeps one owner at a time, and the lease is *fenced*: each take draws a
/// new epoch, the new owner raises the partition's fence to it before it reads anything, and every
/// commit is a script that refuses to write (`FENCED`) when the fence is above the writer's epoch.
/// An owner paused past its lease can never commit after its successor read the state.
public actor KPIAggregator {
    public let layout: StreamLayout
    public let partition: Int
    public let keys: KPIKeys
    public let group: String
    /// The fencing epoch this aggregator writes with (from its partition's lease).
    public let epoch: Int
    /// Delta entries kept in the partition's `deltas` stream (approximately).
    public var deltasLimit = 10_000
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
    var tracker = ContributionTracker()
    var needsRebuild = true
    /// The writer connection's `topologyChanges` when the state was last read from Redis.
    var knownTopology = 0
    /// Operations one at a time (a batch, dimensions from the feed, a settle): each leaves the
    /// state and what is in flight consistent before the next starts.
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    /// Runs `body` when no other operation is in progress (within the actor: no hop to another
    /// executor on the hot path).
    func exclusively<T>(_ body: () async throws -> T) async throws -> T {
        if busy {
            await withCheckedContinuation { waiting.append($0) }
        } else {
            busy = true
        }
        defer {
            if waiting.isEmpty { busy = false } else { waiting.removeFirst().resume() }
        }
        return try await body()
    }

    /// `redis` is used for the aggregator's writes only (the runner reads on its own connections,
    /// so a write never waits behind a blocked read). `epoch` comes from the partition's lease.
    public init(layout: StreamLayout, partition: Int, group: String = "kpi", redis: RedisConnection, epoch: Int) {
        self.layout = layout
        self.partition = partition
        self.keys = KPIKeys(layout: layout)
        self.group = group
        self.redis = redis
        self.epoch = epoch
        self.deadLetters = DeadLetterQueue(layout: layout)
        // Dimension versions of other partitions are applied under one origin of their own, which
        // is never retired (only facts are).
        self.originKeys = [Self.foreignDimensions]
        self.origins = [Self.foreignDimensions: 0]
    }

    /// The origin of dimension events that come from other partitions' streams (never persisted here).
    static let foreignDimensions = "(dimensions of other partitions)"

    /// This partition's streams.
    public var streams: [String] { layout.partitionStreams(partition) }

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
    /// Dimension batches from the feed that arrived while the state was being rebuilt.
    var queuedDimensions: [[StreamRead]] = []
    var rebuilding = false

    /// Applies a batch of this partition's entries: state changes, records, XACK and the
    /// contribution's changes in one fenced commit. Returns once the commit is sent; `settle()`
    /// waits for the last one. After any failure the state is rebuilt from what committed before
    /// anything else is applied, so the caller retries a failed call with the same entries and
    /// nothing is lost or doubled.
    public func apply(_ reads: [StreamRead]) async throws {
        try await exclusively { try await guarded { try await applyBatch(reads, own: true) } }
    }

    /// Applies dimension entries read from any partition's streams by the process's feed (no
    /// records, no XACK: their own partition's owner persists and acknowledges them), committing
    /// the contribution's changes (a late customer moves lines between segments). While the state
    /// waits for a rebuild (before the takeover's, or after a failed commit, until the next batch
    /// or idle settle) they wait too, and are applied after it: the feed never starts a rebuild
    /// itself, which before the takeover would read what the previous owner may still change.
    public func applyDimensions(_ reads: [StreamRead]) async throws {
        if rebuilding || needsRebuild {
            queuedDimensions.append(reads)
            return
        }
        try await exclusively { try await guarded { try await applyBatch(reads, own: false) } }
    }

    /// Waits until everything applied so far is committed (rebuilding and committing again what a
    /// failed commit left out); throws what still fails.
    public func settle() async throws {
        try await exclusively { try await guarded { try await flush() } }
    }

    private func guarded(_ body: () async throws -> Void) async throws {
        do {
            try await rebuildIfNeeded()
            try await body()
        } catch {
            // The state in memory may be ahead of what committed: rebuild it from Redis first.
            needsRebuild = true
            throw Self.fenced(error)
        }
    }

    private func rebuildIfNeeded() async throws {
        guard needsRebuild else { return }
        try await flush()
        try await rebuildNow()
        if !unconfirmed.isEmpty {
            try await applyBatch(unconfirmed, own: true)
            unconfirmed = []
        }
    }

    /// Waits for the commit in flight; throws its error (its entries then wait in `unconfirmed`).
    func flush() async throws {
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

    /// A commit refused by the fence: another aggregator took the partition's lease (this one was
    /// paused past it); stop, with a message that says so.
    static func fenced(_ error: any Error) -> any Error {
        guard let error = error as? RedisError, error.serverErrorPrefix == "FENCED" else { return error }
        return ConsumerStop(
            cause: "this KPI aggregator lost a partition's lease to another one (\(error.message)); its commit was refused",
            advice: "nothing: the aggregator holding the lease carries on; this one takes partitions again when they are its own")
    }

    func applyBatch(_ reads: [StreamRead], own: Bool) async throws {
        var commands = RedisCommandBuffer.scriptArguments(reservingCapacity: lastBatchBytes + lastBatchBytes / 4)
        var rejects: [(stream: String, entry: StreamEntry, reason: String, deliveries: Int?)] = []
        var through: [String] = []
        var events = 0
        // Decoded first: what the batch may change that only the archive holds is revived before
        // any of it applies (`KPIState+Revival.swift`).
        var decoded: [(read: StreamRead, entity: Entity, origin: Int32, events: [KPIState.Event?])] = []
        for read in reads where !read.entries.isEmpty {
            guard let (entity, partition) = layout.parse(streamKey: read.key) else {
                if own { rejects += read.entries.map { (read.key, $0, "not a stream of namespace \(layout.namespace)", nil) } }
                continue
            }
            if own && partition != self.partition {
                rejects += read.entries.map { (read.key, $0, "not a stream of partition \(self.partition)", nil) }
                continue
            }
            if !own && !entity.isDimension { continue }
            let origin = own ? origin(read.key) : origin(Self.foreignDimensions)
            var batch: [KPIState.Event?] = []
            batch.reserveCapacity(read.entries.count)
            for entry in read.entries {
                do {
                    batch.append(try KPIRecord.event(entry, entity: entity))
                } catch {
                    batch.append(nil)
                    if own { rejects.append((read.key, entry, error.description, nil)) }
                }
            }
            decoded.append((read, entity, origin, batch))
        }
        if state.hasRetired {
            let events = decoded.lazy.flatMap { d in d.events.lazy.compactMap { $0.map { (event: $0, origin: d.origin) } } }
            let recall = state.recall(events)
            if !recall.isEmpty { try await revive(recall, into: &commands) }
        }
        for (read, entity, origin, batch) in decoded {
            // In entry order: when a key changes twice in a batch, HSET keeps the last pair.
            var records: [(field: [UInt8], value: [UInt8])] = []
            for case let event? in batch {
                switch state.apply(event, origin: origin) {
                case .applied: if own { records.append(KPIRecord.record(event)) }
                case .unchanged:
                    // This partition's own dimension version, which the feed may have brought
                    // first: persisted here all the same (its owner is the one that persists it,
                    // with the XACK), or a rebuild after the entry is trimmed would lack it.
                    if own && entity.isDimension && state.holdsDimension(event) { records.append(KPIRecord.record(event)) }
                }
            }
            guard own else { continue }
            appendHSET(KPIKeys.stateKey(stream: read.key), records, to: &commands)
            commands.xack(read.key, group: group, ids: read.entries.map(\.id))
            events += read.entries.count
            through.append("\(read.key)=\(read.entries.last!.id)")
        }
        if own, let retention = stateRetention, ContinuousClock.now - lastRetirement >= retireEvery {
            lastRetirement = .now
            appendRetirements(state.retire(olderThan: retention.milliseconds * 1000), to: &commands)
        }
        // Unreadable entries are dead-lettered first (idempotently), so an acknowledged one is
        // always in the dead-letter stream.
        if !rejects.isEmpty { try await deadLetters.appendEvents(rejects, stage: group, on: redis) }

        let delta = tracker.delta(state, dirty: state.takeDirty())
        appendDelta(delta, through: through, events: events, to: &commands)
        if commands.isEmpty { return }
        var batch = RedisCommandBuffer(reservingCapacity: commands.bytes.count + 256)
        batch.evalsha(Self.fencedCommit, keys: [keys.fence(partition: partition)], arguments: [String(epoch)], commands: commands)
        try await flush()
        let redis = self.redis
        lastBatchBytes = batch.bytes.count
        let known = knownTopology
        inFlight = (Task.detached {
            try Self.check(try await redis.send(batch, reloading: Self.fencedCommit))
            try await Self.checkTopology(redis, known: known)
        }, own ? reads : [])
    }

    /// Throws when the connection saw the server or the cluster change since `known` (a restart,
    /// a failover): writes acknowledged before it may be missing from the server now, so what the
    /// state holds in memory is read again (the commit is then treated as failed: its entries are
    /// applied again after the rebuild, which changes nothing if it did survive).
    static func checkTopology(_ redis: RedisConnection, known: Int) async throws {
        let now = await redis.topologyChanges
        guard now == known else {
            throw RedisError(.connection, "the Redis server or cluster changed under this aggregator's commits (a restart or a failover may have "
                             + "lost writes it acknowledged); reading the state again")
        }
    }

    /// Records retired since the start (for the log and tests).
    public internal(set) var retiredRecords = 0
    /// Retired records revived since the start (a change reached them).
    public internal(set) var revivedRecords = 0
    /// The last rebuild's archived records folded back in, and the format-1 retired keys
    /// rebuilds converted (`KPIAggregator+Rebuild.swift`).
    public internal(set) var foldedRecords = 0
    /// The contribution fields the last rebuild found different from the persisted ones, and wrote.
    public internal(set) var rewrittenFields = 0
    /// Rebuilds since the start: the takeover's, then one after each failed commit.
    public internal(set) var rebuilds = 0
    public internal(set) var convertedRetirements = 0
    public var heldRecords: (lines: Int, payments: Int, movements: Int) { state.heldRecords }
}

extension Entity {
    /// Customers, suppliers and products: every partition's aggregator needs all of them.
    var isDimension: Bool { self == .customers || self == .suppliers || self == .products }
}
