import Foundation
public import RedisClient

/// The `kpi` consumer group: keeps the KPIs in Redis from every entity stream.
///
/// Per batch, for each stream it read: the records of the state changes its entries caused are
/// written to the stream's state hash (`sw:{orders:0}:kpi`, same slot as the stream) and the
/// entries are acknowledged, in one MULTI/EXEC, so a batch's effects and its acknowledgement
/// commit together or not at all. The figures are then written as absolute values (never
/// increments) to the `{kpi}` keys in a second MULTI/EXEC with the batch's change record; both go
/// in one round trip. Figures derive from the committed state alone, so writing them twice is
/// harmless, and after a crash the aggregator rebuilds them from the persisted records (applying
/// them again gives the same state whatever their order) and rewrites every KPI key: a crash, a
/// redelivery or a replay never applies anything twice.
///
/// One aggregator runs per namespace (its state is in memory): a lease (`{kpi}:lease`) keeps a
/// second one waiting until the first stops.
public actor KPIAggregator {
    public let layout: StreamLayout
    public let keys: KPIKeys
    public let group: String
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
    private var originKeys: [String] = []
    private var origins: [String: Int32] = [:]
    private let redis: RedisConnection
    private let deadLetters: DeadLetterQueue
    private var state = KPIState()
    private var writtenTotals: [String: String] = [:]
    private var needsRebuild = true

    /// `redis` is used for the aggregator's writes only (the runner reads on its own connection,
    /// so a write never waits behind a blocked read).
    public init(layout: StreamLayout, group: String = "kpi", redis: RedisConnection) {
        self.layout = layout
        self.keys = KPIKeys(layout: layout)
        self.group = group
        self.redis = redis
        self.deadLetters = DeadLetterQueue(layout: layout)
    }

    /// Runs the group with the lease held: returns when `stop` is set (or, with `untilDrained`,
    /// once there is nothing left), having finished the batch in flight.
    public static func consume(
        _ options: ConsumerGroupRunner.Options, layout: StreamLayout, url: String, leaseTTL: Duration = .seconds(10),
        stateRetention: Duration? = nil, retireEvery: Duration = .seconds(5),
        stop: StopFlag = StopFlag(), log: @escaping @Sendable (String) -> Void = { _ in },
        ready: (@Sendable () -> Void)? = nil
    ) async throws -> ConsumerGroupRunner.Stats {
        var options = options
        options.handlerAcknowledges = true
        let reader = try await RedisConnection(url: url)
        let writer = try await RedisConnection(url: url)
        let lease = KPILease(key: KPIKeys(layout: layout).lease, owner: options.consumer, ttl: leaseTTL)
        guard try await lease.acquire(on: writer, stop: stop, log: log) else { return ConsumerGroupRunner.Stats() }
        let keeper = Task { try await lease.keep(url: url, stop: stop, log: log) }
        defer { keeper.cancel() }
        let aggregator = KPIAggregator(layout: layout, group: options.group, redis: writer)
        await aggregator.setStateRetention(stateRetention, every: retireEvery)
        let started = ContinuousClock.now
        let records = try await aggregator.rebuild()
        log("kpi: state rebuilt from \(records) records in \(String(format: "%.2f", (ContinuousClock.now - started).seconds)) s")
        ready?()
        let runner = ConsumerGroupRunner(options: options, deadLetters: DeadLetterQueue(layout: layout), stop: stop, log: log)
        let stats: ConsumerGroupRunner.Stats
        do {
            stats = try await runner.run(redis: reader, idle: { try await aggregator.flush() }) { reads in
                try await aggregator.apply(reads)
                return []
            }
            try await aggregator.flush()
        } catch {
            try? await aggregator.flush()
            throw error
        }
        keeper.cancel()
        if stateRetention != nil {
            let retired = await aggregator.retiredRecords
            let held = await aggregator.heldRecords
            log("kpi: retired \(retired) records into counters; holding \(held.lines) lines, \(held.payments) payments, \(held.movements) movements")
        }
        try? await lease.release(on: writer)
        if lease.lost.isStopped { throw KPILease.Lost() }
        return stats
    }

    public func setStateRetention(_ retention: Duration?, every: Duration = .seconds(5)) {
        stateRetention = retention
        retireEvery = every
        lastRetirement = .now - every
    }

    private func origin(_ stream: String) -> Int32 {
        if let origin = origins[stream] { return origin }
        let origin = Int32(originKeys.count)
        originKeys.append(stream)
        origins[stream] = origin
        return origin
    }

    /// The commit of the previous batch, still in flight: a batch is applied in memory while the
    /// one before it commits (its entries stay pending until then; if that commit fails, the
    /// state is rebuilt from what did commit and the entries are redelivered).
    private var inFlight: Task<Void, any Error>?
    private var lastBatchBytes = 64 * 1024

    /// Applies a batch: state changes and XACK per stream, then the figures and a change record.
    /// Returns once the commit is sent; `flush()` waits for the last one.
    public func apply(_ reads: [StreamRead]) async throws {
        do {
            if needsRebuild {
                try await flush()
                try await rebuild()
            }
            try await applyBatch(reads)
        } catch {
            // The state in memory may be ahead of what committed: rebuild it from Redis first.
            needsRebuild = true
            throw error
        }
    }

    /// Waits for the commit in flight; throws its error.
    public func flush() async throws {
        guard let task = inFlight else { return }
        inFlight = nil
        do {
            try await task.value
        } catch {
            needsRebuild = true
            throw error
        }
    }

    private func applyBatch(_ reads: [StreamRead]) async throws {
        var batch = RedisCommandBuffer(reservingCapacity: lastBatchBytes + lastBatchBytes / 4)
        var rejects: [(stream: String, entry: StreamEntry, reason: String, deliveries: Int?)] = []
        var events = 0
        var through: [String] = []
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
            batch.append("MULTI")
            if !records.isEmpty {
                let stateKey = KPIKeys.stateKey(stream: read.key)
                var start = 0
                while start < records.count {
                    let chunk = records[start..<min(start + 1000, records.count)]
                    start += chunk.count
                    batch.begin(arguments: 2 + chunk.count * 2)
                    batch.add("HSET"); batch.add(stateKey)
                    for (field, value) in chunk { batch.add(field); batch.add(value) }
                }
            }
            batch.xack(read.key, group: group, ids: read.entries.map(\.id))
            batch.append("EXEC")
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
        batch.append("MULTI")
        KPIView.appendWrites(
            state, dirty: dirty, totals: Dictionary(uniqueKeysWithValues: changed), removedTotals: removed, keys: keys, to: &batch)
        appendChangeRecord(changed: changed, removed: removed, events: events, through: through, to: &batch)
        batch.append("EXEC")
        try await flush()
        let redis = self.redis
        let commands = batch
        lastBatchBytes = batch.bytes.count
        inFlight = Task.detached { try Self.check(try await redis.send(commands)) }
        writtenTotals = totals
    }

    /// Per origin, in one MULTI in its slot: the HDEL of the retired records, the HINCRBY of the
    /// counters that replace them, the new horizon and watermark, and the HDEL of expired minutes.
    private func appendRetirements(_ retirements: [KPIState.Retirement], to batch: inout RedisCommandBuffer) {
        for r in retirements {
            let stream = originKeys[Int(r.origin)]
            let stateKey = KPIKeys.stateKey(stream: stream), retiredKey = KPIKeys.retiredKey(stream: stream)
            batch.append("MULTI")
            var fields = r.lines.map { KPIRecord.lineField(orderID: $0.orderID, lineNumber: $0.lineNumber) }
            fields += (r.payments + r.movements).map(KPIRecord.keyField)
            var start = 0
            while start < fields.count {
                let chunk = fields[start..<min(start + 1000, fields.count)]
                start += chunk.count
                batch.begin(arguments: 2 + chunk.count)
                batch.add("HDEL"); batch.add(stateKey)
                for field in chunk { batch.add(field) }
            }
            for (field, amount) in r.counters.sorted(by: { $0.key < $1.key }) where amount != 0 {
                batch.append(["HINCRBY", retiredKey, field, String(amount)])
            }
            batch.append(["HSET", retiredKey, "wm", String(r.watermark), "horizon", String(r.horizon)])
            if !r.expiredFields.isEmpty { batch.append(["HDEL", retiredKey] + r.expiredFields) }
            batch.append("EXEC")
            retiredRecords += r.records
        }
    }

    /// Records retired since the start (for the log and tests).
    public private(set) var retiredRecords = 0
    public var heldRecords: (lines: Int, payments: Int, movements: Int) { state.heldRecords }

    private func appendChangeRecord(
        changed: [(String, String)], removed: [String], events: Int, through: [String], to batch: inout RedisCommandBuffer
    ) {
        var fields = [
            "at", Timestamp.now.description,
            "watermark", state.watermark?.description ?? "",
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

    /// Replies of MULTI … EXEC blocks: an error anywhere (queued, aborted or inside EXEC) throws.
    static func check(_ replies: [RedisReply]) throws {
        for reply in replies {
            switch reply {
            case .error(let message): throw RedisError(.server, message)
            case .null: throw RedisError(.server, "a transaction was aborted")
            case .array(let elements):
                for element in elements { if case .error(let message) = element { throw RedisError(.server, message) } }
            default: continue
            }
        }
    }

    /// Rebuilds the state from every persisted record and rewrites every KPI key from it.
    @discardableResult
    public func rebuild() async throws -> Int {
        var fresh = KPIState()
        var records = 0
        for key in try await redis.scanKeys(match: "\(layout.namespace):{*}:kpi") {
            let origin = origin(String(key.dropLast(":kpi".count)))
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
                        _ = fresh.apply(event, origin: origin)
                        records += 1
                    }
                    index += 2
                }
            } while cursor != "0"
        }
        for key in try await redis.scanKeys(match: "\(layout.namespace):{*}:kpi:retired") {
            let stream = String(key.dropLast(":kpi:retired".count))
            let reply = try await redis.command("HGETALL", key).throwingServerError()
            let items = reply.array ?? []
            var fields: [(String, String)] = []
            var index = 1
            while index < items.count {
                if let field = items[index - 1].string, let value = items[index].string { fields.append((field, value)) }
                index += 2
            }
            fresh.absorb(origin: origin(stream), fields: fields)
        }
        _ = fresh.takeDirty()
        let stale = try await redis.scanKeys(match: "\(keys.dayProductsPrefix)*")
        var batch = RedisCommandBuffer()
        batch.append("MULTI")
        batch.append(["DEL", keys.totals, keys.minutes, keys.hours, keys.days, keys.products, keys.onHand] + stale)
        let totals = KPIView.totals(fresh)
        KPIView.appendWrites(fresh, dirty: nil, totals: totals, removedTotals: [], keys: keys, to: &batch)
        batch.append("EXEC")
        try Self.check(try await redis.send(batch))
        state = fresh
        writtenTotals = totals
        needsRebuild = false
        return records
    }

}

/// A lease that lets one aggregator run per namespace: SET NX PX, renewed at a third of its TTL
/// while the owner holds it; a crashed owner's lease expires after the TTL.
struct KPILease: Sendable {
    struct Lost: Error, CustomStringConvertible {
        var description: String { "the KPI aggregator lost its lease (another aggregator took over?); stopped" }
    }

    let key: String
    let owner: String
    let ttl: Duration
    let token = UUID().uuidString
    let lost = StopFlag()

    /// Renews the lease; takes it back if it expired and nobody else took it meanwhile.
    static let renew = RedisScript("""
        local holder = redis.call('GET', KEYS[1])
        if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
        if not holder then
          redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
          return 1
        end
        return 0
        """)
    static let release = RedisScript("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """)

    var ttlMilliseconds: Int { max(1, Int(ttl.components.seconds * 1000 + ttl.components.attoseconds / 1_000_000_000_000_000)) }
    var value: String { "\(owner) \(token)" }

    /// Waits for the lease; false when asked to stop first.
    func acquire(on redis: RedisConnection, stop: StopFlag, log: @Sendable (String) -> Void) async throws -> Bool {
        var announced = false
        while !stop.isStopped {
            let reply = try await redis.command("SET", key, value, "NX", "PX", String(ttlMilliseconds)).throwingServerError()
            if reply.string == "OK" { return true }
            if !announced {
                let holder = try await redis.command("GET", key).string ?? "?"
                log("another KPI aggregator holds the lease (\(holder.split(separator: " ").first ?? "?")); waiting for it to stop or expire")
                announced = true
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        return false
    }

    /// Renews the lease until cancelled; losing it sets `stop` (and `lost`).
    func keep(url: String, stop: StopFlag, log: @Sendable (String) -> Void) async throws {
        let redis = try await RedisConnection(url: url)
        while !Task.isCancelled {
            try await Task.sleep(for: ttl / 3)
            do {
                let reply = try await redis.run(Self.renew, keys: [key], arguments: [value, String(ttlMilliseconds)])
                if reply.int != 1 {
                    log("the KPI lease was lost; stopping")
                    lost.stop()
                    stop.stop()
                    return
                }
            } catch let error as RedisError where error.isTransient {
                log("could not renew the KPI lease (\(error.message)); retrying")
            }
        }
    }

    func release(on redis: RedisConnection) async throws {
        _ = try await redis.run(Self.release, keys: [key], arguments: [value])
    }
}
