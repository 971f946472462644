import Foundation
public import RedisClient
import ServiceLifecycle
public import RedisWire

/// The consumer-group runtime every group shares: reads batches with XREADGROUP, hands them to a
/// handler, acknowledges them only after the handler returned (its effects are durable), and
/// handles every failure by its class (`FailureClass`):
///
/// - *data*: the batch is applied entry by entry; the entries that can never be applied are
///   dead-lettered with the reason and acknowledged; the rest load.
/// - *transient*: the same step is retried with exponential backoff and jitter behind a circuit
///   breaker, never dead-lettered, never acknowledged; this covers every Redis call of the runner
///   itself (reads, acks, dead-letter writes, reclaiming), not only the handler.
/// - *fatal*: the runner stops without acknowledging anything in hand and throws a `ConsumerStop`
///   that names the cause and what to do.
///
/// Entries a dead consumer left pending are reclaimed after `minIdle`; one delivered more than
/// `deliveryLimit` times is dead-lettered as poison. A delivery that ended in a fatal failure (or
/// in a shutdown while a transient failure was being waited out) is given back: its delivery count
/// is set back by one (XCLAIM … RETRYCOUNT), so a consumer its supervisor restarts again and again
/// never turns good entries into poison. The runner stops on a graceful shutdown
/// (swift-service-lifecycle) after the batch in flight, or, with `untilDrained`, once the group has
/// nothing left to read and nothing pending.
public struct ConsumerGroupRunner: Sendable {
    public struct Options: Sendable {
        public var group: String
        public var consumer: String
        public var streams: [String]
        /// XREADGROUP COUNT (per stream).
        public var batchSize = 1000
        /// XREADGROUP BLOCK.
        public var block: Duration = .seconds(2)
        /// Exit once there is no lag and nothing pending.
        public var untilDrained = false
        /// Entries pending this long are reclaimed from their consumer (presumed dead).
        public var minIdle: Duration = .seconds(60)
        /// Deliveries after which an entry is dead-lettered as poison.
        public var deliveryLimit = 5
        /// Consecutive transient failures after which the circuit opens (logged; retries continue slower).
        public var circuitThreshold = 3
        /// The handler acknowledges the entries it applies itself, in the same atomic step as its
        /// effects (the KPI group); the runner then acknowledges only what it dead-letters.
        public var handlerAcknowledges = false

        public init(group: String, consumer: String, streams: [String]) {
            self.group = group
            self.consumer = consumer
            self.streams = streams
        }
    }

    /// Counters of one run.
    public struct Stats: Sendable, Equatable {
        public var batches = 0
        public var entries = 0
        public var deadLettered = 0
        public var retries = 0
        public var reclaimed = 0
        public init() {}

        public static func + (lhs: Stats, rhs: Stats) -> Stats {
            var sum = lhs
            sum.batches += rhs.batches
            sum.entries += rhs.entries
            sum.deadLettered += rhs.deadLettered
            sum.retries += rhs.retries
            sum.reclaimed += rhs.reclaimed
            return sum
        }
    }

    /// What the handler reports back: entries it could not use, with the reason (dead-lettered, acked).
    public typealias Rejects = [(stream: String, entry: StreamEntry, reason: String)]
    public typealias Handler = @Sendable ([StreamRead]) async throws -> Rejects

    public let options: Options
    public let deadLetters: DeadLetterQueue
    public let log: @Sendable (String) -> Void

    public init(options: Options, deadLetters: DeadLetterQueue, log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.options = options
        self.deadLetters = deadLetters
        self.log = log
    }

    /// True once the process is shutting down (SIGINT/SIGTERM through the service group) or the
    /// task is cancelled: the loops finish what is in hand and return.
    package static var stopping: Bool { Task.isShuttingDownGracefully || Task.isCancelled }

    /// Runs the group until a graceful shutdown (or, with `untilDrained`, until caught up).
    /// `prepare` runs first, with the runner's own checks of the deployment (a failure there is
    /// classed like any other: transient ones are waited out, fatal ones stop). `idle` runs whenever a read comes back empty, before the drained check (a handler that
    /// commits asynchronously waits for its last commit there); its failures are classed like the
    /// handler's. Throws `ConsumerStop` on a fatal failure.
    public func run(
        redis: RedisConnection, prepare: (@Sendable () async throws -> Void)? = nil, idle: (@Sendable () async throws -> Void)? = nil,
        handler: @escaping Handler
    ) async throws -> Stats {
        // On a Redis Cluster one XREADGROUP may name only keys of one hash slot: the streams are
        // read per slot (one partition's streams share one), each slot by a session of its own on
        // a connection of its own, so every read can block on its node without holding the others
        // up. The handler is called by one session at a time.
        let units = try await Self.retryingTransient("connecting", log: log) { try await readUnits(on: redis) }
        guard units.count > 1 else { return try await runUnit(options, redis: redis, prepare: prepare, idle: idle, handler: handler) }
        let gate = HandlerGate()
        let gatedHandler: Handler = { (reads: [StreamRead]) async throws -> Rejects in
            try await gate.serialized { () async throws -> Rejects in try await handler(reads) }
        }
        var gatedIdle: (@Sendable () async throws -> Void)?
        if let idle {
            gatedIdle = { () async throws -> Void in try await gate.serialized { () async throws -> Void in try await idle() } }
        }
        var prepareOnce: (@Sendable () async throws -> Void)?
        if let prepare {
            let once = PrepareOnce(prepare)
            prepareOnce = { try await once.run() }
        }
        let unitIdle = gatedIdle, unitPrepare = prepareOnce
        let log = self.log
        return try await withThrowingTaskGroup(of: Stats.self) { group in
            for (index, streams) in units.enumerated() {
                var unit = options
                unit.streams = streams
                group.addTask {
                    let connection = index == 0 ? redis : try await Self.retryingTransient("connecting", log: log) {
                        try await RedisConnection(configuration: redis.configuration)
                    }
                    return try await self.runUnit(unit, redis: connection, prepare: unitPrepare, idle: unitIdle, handler: gatedHandler)
                }
            }
            var total = Stats()
            for try await stats in group { total = total + stats }
            return total
        }
    }

    /// The streams each session reads together: all of them on a single Redis; per hash slot (in
    /// their order) on a cluster.
    func readUnits(on redis: RedisConnection) async throws -> [[String]] {
        guard try await redis.isCluster else { return [options.streams] }
        var order: [Int] = []
        var bySlot: [Int: [String]] = [:]
        for stream in options.streams {
            let slot = HashSlot.of(stream)
            if bySlot[slot] == nil { order.append(slot) }
            bySlot[slot, default: []].append(stream)
        }
        return order.map { bySlot[$0]! }
    }

    /// Runs one session over `unit.streams`.
    private func runUnit(
        _ unit: Options, redis: RedisConnection, prepare: (@Sendable () async throws -> Void)?, idle: (@Sendable () async throws -> Void)?,
        handler: Handler
    ) async throws -> Stats {
        let runner = ConsumerGroupRunner(options: unit, deadLetters: deadLetters, log: log)
        let session = Session(runner: runner, redis: redis)
        PipelineMetrics.circuit(group: options.group, state: .closed)
        do {
            try await session.run(prepare: prepare, idle: idle, handler: handler)
        } catch {
            await session.finishPrefetch()
            let stop: (any Error)? = switch FailureClass.of(error) {
            case .fatal, .data: ConsumerStop(group: options.group, fatal: error)
            case .transient: nil   // a shutdown while waiting out a transient failure
            }
            // Nothing in hand is acknowledged; its deliveries do not count toward the poison limit.
            await session.giveBackDeliveries()
            if let stop { throw stop }
        }
        return session.stats
    }

    /// Checks what a consumer group needs of the Redis it runs on: a `maxmemory-policy` that never
    /// evicts (any other lets Redis drop stream entries, pending lists and consumer groups under
    /// memory pressure, which no consumer can detect or undo).
    public static func checkDeployment(_ redis: RedisConnection) async throws {
        let info = try await redis.command("INFO", "memory").string ?? ""
        let policy = info.split(whereSeparator: \.isNewline)
            .first { $0.hasPrefix("maxmemory_policy:") }
            .map { String($0.dropFirst("maxmemory_policy:".count)).trimmingCharacters(in: .whitespaces) }
        if let policy, policy != "noeviction" {
            throw ConsumerStop(
                cause: "Redis's maxmemory-policy is \(policy): under memory pressure it may evict stream entries, pending "
                    + "entries and consumer groups, and no consumer could tell that events were lost; refusing to start",
                advice: "set `maxmemory-policy noeviction` (CONFIG SET maxmemory-policy noeviction, and in redis.conf): Redis "
                    + "then refuses writes when full (OOM), which the consumers wait out")
        }
    }

    /// Runs `body` until it succeeds, waiting out transient failures with the circuit breaker's
    /// backoff (for what runs outside a session: connecting, taking a lease). Fatal failures are
    /// thrown at once; a graceful shutdown during a wait throws `CancellationError`.
    public static func retryingTransient<T>(
        _ what: String, log: @Sendable (String) -> Void, _ body: () async throws -> T
    ) async throws -> T {
        var breaker = CircuitBreaker()
        while true {
            do {
                return try await body()
            } catch where FailureClass.of(error) == .transient && !(error is CancellationError) {
                let (wait, _) = breaker.recordFailure()
                if breaker.failures == 1 || breaker.failures.isMultiple(of: 10) { log("\(what) failed (\(error)); retrying") }
                try await pause(wait)
            }
        }
    }

    /// Sleeps, but wakes at once on a graceful shutdown (then throws `CancellationError`).
    package static func pause(_ duration: Duration) async throws {
        try await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
    }
}

extension ConsumerGroupRunner {
    /// The mutable state of one run. Used by one task only.
    final class Session {
        let runner: ConsumerGroupRunner
        let redis: RedisConnection
        var options: Options { runner.options }
        var stats = Stats()
        var breaker: CircuitBreaker
        /// The next batch, read while the handler applies the current one (its entries are pending
        /// for this consumer until processed, so a stop in between loses nothing).
        var prefetched: Task<[StreamRead], any Error>?
        /// Set once the groups were created again after a NOGROUP, until a call goes through.
        var recreatedGroups = false

        init(runner: ConsumerGroupRunner, redis: RedisConnection) {
            self.runner = runner
            self.redis = redis
            self.breaker = CircuitBreaker(threshold: runner.options.circuitThreshold)
        }

        func run(prepare: (@Sendable () async throws -> Void)?, idle: (@Sendable () async throws -> Void)?, handler: Handler) async throws {
            let options = self.options
            let redis = self.redis
            try await retrying("starting") {
                try await ConsumerGroupRunner.checkDeployment(redis)
                try await prepare?()
                for stream in options.streams {
                    try await redis.xgroupCreate(stream, group: options.group, id: "0", makeStream: true)
                }
            }
            // What this consumer name left pending before (a restart after a crash) comes first.
            while !ConsumerGroupRunner.stopping {
                let reads = try await retrying("reading pending entries") {
                    try await redis.xreadgroup(
                        group: options.group, consumer: options.consumer, streams: options.streams.map { ($0, "0") },
                        count: options.batchSize)
                }
                let pending = reads.filter { !$0.entries.isEmpty }
                if pending.isEmpty { break }
                try await process(pending, handler: handler)
            }
            var lastReclaim = ContinuousClock.now
            try await reclaim(handler: handler)
            while !ConsumerGroupRunner.stopping {
                let reads: [StreamRead]
                if let next = prefetched {
                    prefetched = nil
                    do {
                        reads = try await next.value
                    } catch where FailureClass.of(error) == .transient || (error as? RedisError)?.serverErrorPrefix == "NOGROUP" {
                        reads = try await read()
                    }
                } else {
                    reads = try await read()
                }
                let nonEmpty = reads.filter { !$0.entries.isEmpty }
                if nonEmpty.isEmpty {
                    if let idle { try await retrying("committing") { try await idle() } }
                    if options.untilDrained, try await retrying("checking the lag", { try await self.drained() }) { break }
                } else {
                    prefetched = Task {
                        try await redis.xreadgroup(
                            group: options.group, consumer: options.consumer, streams: options.streams.map { ($0, ">") },
                            count: options.batchSize, block: .milliseconds(1))
                    }
                    try await process(nonEmpty, handler: handler)
                }
                if ContinuousClock.now - lastReclaim >= options.minIdle {
                    lastReclaim = .now
                    try await reclaim(handler: handler)
                }
            }
            // Asked to stop: what was already read is part of the work in flight; finish it, so a
            // graceful stop leaves nothing pending.
            if ConsumerGroupRunner.stopping {
                runner.log("\(options.group) \(options.consumer): asked to stop; finishing the batch in flight")
            }
            if let next = prefetched {
                prefetched = nil
                if let reads = try? await next.value {
                    let nonEmpty = reads.filter { !$0.entries.isEmpty }
                    if !nonEmpty.isEmpty { try await process(nonEmpty, handler: handler) }
                }
            }
            if let idle { try await retrying("committing") { try await idle() } }
        }

        /// Waits for a read started ahead, so no delivery happens after the runner gave its
        /// entries back.
        func finishPrefetch() async {
            if let next = prefetched {
                prefetched = nil
                _ = try? await next.value
            }
        }

        private func read() async throws -> [StreamRead] {
            let options = self.options
            let redis = self.redis
            return try await retrying("reading") {
                try await redis.xreadgroup(
                    group: options.group, consumer: options.consumer, streams: options.streams.map { ($0, ">") },
                    count: options.batchSize, block: options.block)
            }
        }

        /// Runs `body` until it succeeds, waiting out transient failures behind the circuit breaker;
        /// data and fatal failures are thrown at once, and so is a shutdown during a wait.
        func retrying<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
            while true {
                do {
                    let value = try await body()
                    recreatedGroups = false
                    let failures = breaker.failures
                    if breaker.recordSuccess() {
                        runner.log("\(options.group): circuit closed: \(what) went through after \(failures) failures")
                        PipelineMetrics.circuit(group: options.group, state: .closed)
                    }
                    return value
                } catch let error as RedisError where error.serverErrorPrefix == "NOGROUP" && !recreatedGroups {
                    // The group (or its stream) is gone: Redis lost it (restarted from an
                    // append-only file whose tail a crash cut off) or someone deleted it. This
                    // runner creates its groups, so it creates them again, from the start of each
                    // stream: the group reads again what the stream holds, and both groups apply
                    // a redelivery as a no-op. A second NOGROUP in a row is waited out as transient.
                    recreatedGroups = true
                    runner.log("\(options.group): the consumer group is gone from Redis (\(error.message)); "
                               + "creating it again from the start of each stream (what the streams hold is read again, idempotently)")
                    for stream in options.streams {
                        // A failure here shows again as NOGROUP on the retry, waited out below.
                        _ = try? await redis.xgroupCreate(stream, group: options.group, id: "0", makeStream: true)
                    }
                    stats.retries += 1
                    continue
                } catch {
                    guard FailureClass.of(error) == .transient || (error as? RedisError)?.serverErrorPrefix == "NOGROUP",
                          !(error is CancellationError) else { throw error }
                    let (wait, opened) = breaker.recordFailure()
                    stats.retries += 1
                    if opened {
                        PipelineMetrics.circuit(group: options.group, state: .open)
                        runner.log("\(options.group): circuit open after \(breaker.failures) transient failures in a row (\(error)); "
                                   + "retrying with backoff")
                    } else if breaker.state == .closed {
                        runner.log("\(options.group): transient failure \(what) (\(error)); retrying")
                    }
                    try await ConsumerGroupRunner.pause(wait)
                    breaker.probe()
                    recreatedGroups = false
                }
            }
        }

        /// Hands `reads` to the handler until it succeeds (transient failures are retried, never
        /// dead-lettered; a data failure isolates the bad entries), then dead-letters what it
        /// rejected and acknowledges.
        func process(_ reads: [StreamRead], handler: Handler) async throws {
            let started = ContinuousClock.now
            var rejects: Rejects
            do {
                rejects = try await retrying("applying a batch") { try await handler(reads) }
            } catch where FailureClass.of(error) == .data {
                rejects = try await isolate(reads, error: error, handler: handler)
            }
            let options = self.options
            let redis = self.redis
            let deadLetters = runner.deadLetters
            if !rejects.isEmpty {
                let events: [(stream: String, entry: StreamEntry, reason: String, deliveries: Int?)] = rejects.map { ($0.stream, $0.entry, $0.reason, nil) }
                try await retrying("dead-lettering") {
                    try await deadLetters.appendEvents(events, stage: options.group, on: redis)
                }
                stats.deadLettered += rejects.count
            }
            if options.handlerAcknowledges {
                let rejected = Dictionary(grouping: rejects, by: \.stream).map { StreamRead(key: $0.key, entries: $0.value.map(\.entry)) }
                if !rejected.isEmpty { try await acknowledge(rejected) }
            } else {
                try await acknowledge(reads)
            }
            stats.batches += 1
            let count = reads.reduce(0) { $0 + $1.entries.count }
            stats.entries += count
            PipelineMetrics.batch(group: options.group, read: count, rejected: rejects.count, acknowledged: count, duration: .now - started)
        }

        /// After a data failure: applies the batch's entries one at a time; the ones that fail with
        /// a data failure are the rejects. Transient failures are retried, fatal ones stop.
        private func isolate(_ reads: [StreamRead], error: any Error, handler: Handler) async throws -> Rejects {
            runner.log("\(options.group): batch failed (\(error)); applying its entries one by one to isolate the bad ones")
            var rejects: Rejects = []
            for read in reads {
                for entry in read.entries {
                    let single = [StreamRead(key: read.key, entries: [entry])]
                    do {
                        rejects += try await retrying("applying one entry") { try await handler(single) }
                    } catch where FailureClass.of(error) == .data {
                        rejects.append((read.key, entry, "cannot be loaded: \(error)"))
                    }
                }
            }
            return rejects
        }

        private func acknowledge(_ reads: [StreamRead]) async throws {
            var batch = RedisCommandBuffer()
            for read in reads where !read.entries.isEmpty {
                batch.xack(read.key, group: options.group, ids: read.entries.map(\.id))
            }
            let redis = self.redis
            // The effects are committed; acking again is harmless, and an ack lost to a failure only
            // means a redelivery that the idempotent handler ignores.
            try await retrying("acknowledging") {
                for reply in try await redis.send(batch) {
                    if case .error(let message) = reply { throw RedisError(.server, message) }
                }
            }
        }

        /// Claims entries idle past `minIdle` from other consumers; dead-letters those delivered
        /// more than `deliveryLimit` times (poison), processes the rest.
        private func reclaim(handler: Handler) async throws {
            let options = self.options
            let redis = self.redis
            for stream in options.streams {
                var start = StreamID.zero
                repeat {
                    let from = start
                    let claimed = try await retrying("reclaiming") {
                        try await redis.xautoclaim(
                            stream, group: options.group, consumer: options.consumer, minIdle: options.minIdle, start: from,
                            count: options.batchSize)
                    }
                    start = claimed.next
                    guard let first = claimed.entries.first, let last = claimed.entries.last else { continue }
                    stats.reclaimed += claimed.entries.count
                    runner.log("\(options.group): reclaimed \(claimed.entries.count) entries of \(stream) from a consumer that stopped")
                    let deliveries = try await retrying("reading delivery counts") {
                        try await redis.xpending(
                            stream, group: options.group, start: first.id.description, end: last.id.description,
                            count: claimed.entries.count)
                    }
                    let counts = Dictionary(deliveries.map { ($0.id, $0.deliveries) }, uniquingKeysWith: max)
                    let poison = claimed.entries.filter { counts[$0.id, default: 0] > options.deliveryLimit }
                    if !poison.isEmpty {
                        let deadLetters = runner.deadLetters
                        let events: [(stream: String, entry: StreamEntry, reason: String, deliveries: Int?)] = poison.map {
                            (stream, $0, "poison: delivered \(counts[$0.id, default: 0]) times without being applied", counts[$0.id])
                        }
                        try await retrying("dead-lettering poison") {
                            try await deadLetters.appendEvents(events, stage: options.group, on: redis)
                            _ = try await redis.xack(stream, group: options.group, ids: poison.map(\.id))
                        }
                        stats.deadLettered += poison.count
                    }
                    let rest = claimed.entries.filter { counts[$0.id, default: 0] <= options.deliveryLimit }
                    if !rest.isEmpty {
                        try await process([StreamRead(key: stream, entries: rest)], handler: handler)
                    }
                } while start != .zero && !ConsumerGroupRunner.stopping
            }
        }

        /// True when every stream has been read to its end by the group and nothing is pending.
        func drained() async throws -> Bool {
            for stream in options.streams {
                guard let info = try await redis.xinfoGroups(stream).first(where: { $0.name == options.group }) else { return false }
                if info.pending > 0 { return false }
                // Redis's `lag` is a hint only: after a restart from an append-only file (or an
                // XCLAIM-heavy history) its entries-read counter can stay off by some entries for
                // good, so a group that has read everything would never count as drained. What
                // decides is whether an entry follows the last one delivered.
                if info.lag == 0 { continue }
                if try await LagMonitor.firstUndelivered(stream, after: info.lastDeliveredID, on: redis) != nil { return false }
            }
            return true
        }

        /// Sets back by one the delivery count of every entry pending for this consumer: they were
        /// delivered to it and not applied because of a fatal failure or a shutdown, not because
        /// of anything in them. Best effort: when Redis itself is what failed, the counts stay.
        func giveBackDeliveries() async {
            var given = 0
            do {
                for stream in options.streams {
                    var start = "-"
                    while true {
                        let pending: [PendingEntry]
                        do {
                            pending = try await redis.xpending(stream, group: options.group, start: start, end: "+", count: 1000,
                                                               consumer: options.consumer)
                        } catch let error as RedisError where error.serverErrorPrefix == "NOGROUP" {
                            break   // stopped before the group was created: nothing was delivered
                        }
                        var batch = RedisCommandBuffer()
                        for (count, entries) in Dictionary(grouping: pending.filter { $0.deliveries > 0 }, by: \.deliveries) {
                            batch.append(["XCLAIM", stream, options.group, options.consumer, "0"] + entries.map(\.id.description)
                                         + ["RETRYCOUNT", String(count - 1), "JUSTID"])
                            given += entries.count
                        }
                        if !batch.isEmpty { _ = try await redis.send(batch) }
                        guard pending.count == 1000, let last = pending.last else { break }
                        start = "(" + last.id.description
                    }
                }
                if given > 0 { runner.log("\(options.group): \(given) entries in hand left pending, their deliveries not counted as failures") }
            } catch {
                runner.log("\(options.group): could not give back the deliveries of the entries in hand (\(error))")
            }
        }
    }
}

/// Lets one caller at a time through (the handler of a runner whose sessions read concurrently).
public actor HandlerGate {
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    public init() {}

    public func serialized<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
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
}

/// Runs a deployment check once for all of a runner's sessions (the others wait for it; after a
/// failure the next caller runs it again).
actor PrepareOnce {
    private let body: @Sendable () async throws -> Void
    private var task: Task<Void, any Error>?
    init(_ body: @escaping @Sendable () async throws -> Void) { self.body = body }

    func run() async throws {
        let task = self.task ?? Task { [body] in try await body() }
        self.task = task
        do {
            try await task.value
        } catch {
            if self.task == task { self.task = nil }
            throw error
        }
    }
}
