import Foundation
import Logging
public import ServiceLifecycle
import Synchronization
public import Contract
public import StreamRuntime
import RedisClient
import RedisWire
import KPIModel

/// One `consume --group kpi` process: the KPIs scaled out by partition.
///
/// Every aggregator process registers in `sw:{kpi}:members` (a heartbeat with an expiry) and works
/// out the same assignment from the live members: partition p belongs to the (p mod n)-th member in
/// name order. It takes the lease of each partition that is its own (waiting while the previous
/// owner finishes its batch and lets go, or its lease expires after a crash) and runs a
/// `KPIAggregator` and a consumer-group runner for it; it lets go of a partition that is no longer
/// its own. So adding a process moves partitions to it, removing one moves them back, and a dead
/// one's partitions are taken over once its heartbeat and leases expire. Each process also follows
/// every partition's dimension streams (`StreamTail`, XREAD from a cursor of its own) for its
/// aggregators, and whichever process holds the `{kpi}` lease runs the merge stage (`KPIMerger`),
/// which writes the global view. There is no other kind of process to run.
public final class KPIAggregatorService: Service {
    public let options: ConsumerGroupRunner.Options
    public let layout: StreamLayout
    public let url: String
    public let leaseTTL: Duration
    public let stateRetention: Duration?
    public let retireEvery: Duration
    let log: @Sendable (String) -> Void
    let ready: (@Sendable () -> Void)?
    private let result = Mutex(ConsumerGroupRunner.Stats())

    public init(
        options: ConsumerGroupRunner.Options, layout: StreamLayout, url: String, leaseTTL: Duration = .seconds(10),
        stateRetention: Duration? = nil, retireEvery: Duration = .seconds(5),
        log: @escaping @Sendable (String) -> Void = { _ in }, ready: (@Sendable () -> Void)? = nil
    ) {
        var options = options
        options.handlerAcknowledges = true
        self.options = options
        self.layout = layout
        self.url = url
        self.leaseTTL = leaseTTL
        self.stateRetention = stateRetention
        self.retireEvery = retireEvery
        self.log = log
        self.ready = ready
    }

    /// What the run did (once `run()` returned).
    public var stats: ConsumerGroupRunner.Stats { result.withLock { $0 } }

    /// A value set by one task and read by another.
    final class Cell<Value: Sendable>: Sendable {
        private let value = Mutex<Value?>(nil)
        func set(_ new: Value) { value.withLock { $0 = new } }
        var get: Value? { value.withLock { $0 } }
    }

    /// A partition this process owns.
    struct Owned: Sendable {
        let lease: KPILease
        let epoch: Int
        let aggregator: KPIAggregator
        let task: Task<ConsumerGroupRunner.Stats, any Error>
        /// Set when the runner ended.
        let outcome: Cell<Result<ConsumerGroupRunner.Stats, any Error>>
        /// Set once the state is rebuilt and the runner reads.
        let rebuilt: Cell<Bool>
    }

    /// The merge stage, when this process holds its lease.
    struct Merging: Sendable {
        let lease: KPILease
        let epoch: Int
        let task: Task<Void, any Error>
        let outcome: Cell<Result<Void, any Error>>
        let merger: Cell<KPIMerger>
    }

    /// Every aggregator of this process, for the dimension feed.
    private let aggregators = Registry()

    final class Registry: Sendable {
        private let byPartition = Mutex<[Int: KPIAggregator]>([:])
        func set(_ partition: Int, _ aggregator: KPIAggregator?) { byPartition.withLock { $0[partition] = aggregator } }
        var all: [KPIAggregator] { byPartition.withLock { Array($0.values) } }
    }

    public func run() async throws {
        let log = self.log, url = self.url, layout = self.layout
        let keys = KPIKeys(layout: layout)
        let name = options.consumer
        let control: RedisConnection
        let feed: StreamTail
        do {
            control = try await ConsumerGroupRunner.retryingTransient("connecting to Redis", log: log) { try await RedisConnection(url: url) }
            try await ConsumerGroupRunner.retryingTransient("checking the deployment", log: log) {
                try await ConsumerGroupRunner.checkDeployment(control)
            }
            let dimensionStreams = (0..<layout.partitions).flatMap { p in [Entity.customers, .products, .suppliers].map { layout.streamKey($0, partition: p) } }
            // The feed starts at each stream's end: a partition's rebuild, always later, reads every
            // dimension stream whole. (From the start, at 26 M events, the feed delivered 430 k
            // entries at once; the first made a stale aggregator rebuild before its takeover, and
            // the takeover rebuilt again: a restart took twice as long and held two states.)
            let ends = try await ConsumerGroupRunner.retryingTransient("reading the dimension streams", log: log) {
                try await control.lastEntryIDs(dimensionStreams)
            }
            feed = try await ConsumerGroupRunner.retryingTransient("connecting to Redis", log: log) {
                try await StreamTail(cursors: Dictionary(uniqueKeysWithValues: dimensionStreams.map { ($0, ends[$0] ?? .zero) }),
                                     configuration: control.configuration, block: options.block, log: log)
            }
        } catch is CancellationError {
            return
        }
        defer { feed.stop() }
        let aggregators = self.aggregators
        let feedTask = Task {
            while let reads = await feed.next() {
                for aggregator in aggregators.all {
                    // A failure marks the aggregator for a rebuild, which reads every dimension again.
                    try? await aggregator.applyDimensions(reads)
                }
            }
        }
        defer { feedTask.cancel() }

        var owned: [Int: Owned] = [:]
        var merging: Merging?
        var total = ConsumerGroupRunner.Stats()
        var fatal: (any Error)?
        var announcedReady = false
        let tick = min(leaseTTL / 3, .seconds(1))
        let mergeLease = KPILease(keys: keys, owner: name, ttl: leaseTTL)

        var retired = 0, revived = 0, held = (lines: 0, payments: 0, movements: 0)
        func stopPartition(_ partition: Int, release: Bool) async {
            guard let item = owned.removeValue(forKey: partition) else { return }
            item.task.cancel()
            if let stats = try? await item.task.value { total = total + stats }
            retired += await item.aggregator.retiredRecords
            revived += await item.aggregator.revivedRecords
            let records = await item.aggregator.heldRecords
            held = (held.lines + records.lines, held.payments + records.payments, held.movements + records.movements)
            aggregators.set(partition, nil)
            try? await item.aggregator.settle()
            if release { try? await item.lease.release(on: control) }
        }

        while fatal == nil {
            let stopping = ConsumerGroupRunner.stopping
            if stopping { break }
            do {
                // Heartbeat, and the live members in name order.
                let now = Int(Date().timeIntervalSince1970 * 1000)
                var batch = RedisCommandBuffer()
                batch.append("ZADD", keys.members, String(now + Int(leaseTTL.milliseconds)), name)
                batch.append("ZREMRANGEBYSCORE", keys.members, "-inf", String(now))
                batch.append("ZRANGE", keys.members, "0", "-1")
                let replies = try await control.send(batch)
                let members = (try replies[2].throwingServerError().array ?? []).compactMap(\.string).sorted()
                let index = members.firstIndex(of: name) ?? 0
                let desired = Set((0..<layout.partitions).filter { members.isEmpty || $0 % members.count == index })

                // Partitions whose runner ended: a fenced commit (another took it) is let go; a
                // finished drain stays held; anything else fatal stops the process.
                for (partition, item) in owned {
                    guard let outcome = item.outcome.get else { continue }
                    switch outcome {
                    case .success(let stats):
                        if !options.untilDrained {
                            total = total + stats
                            owned[partition] = nil
                            aggregators.set(partition, nil)
                        }
                    case .failure(let error):
                        if "\(error)".contains("FENCED") || "\(error)".contains("lost a partition's lease") {
                            log("kpi: partition \(partition) was taken over by another aggregator; letting it go")
                            owned[partition] = nil
                            aggregators.set(partition, nil)
                        } else {
                            fatal = error
                        }
                    }
                }
                if fatal != nil { break }
                // Renew what is held; let go of what is no longer this process's.
                for (partition, item) in owned {
                    if !desired.contains(partition) && !options.untilDrained {
                        log("kpi: partition \(partition) moves to another aggregator (\(members.count) members); letting it go")
                        await stopPartition(partition, release: true)
                    } else if try await !item.lease.renew(on: control, epoch: item.epoch) {
                        log("kpi: lost the lease of partition \(partition); letting it go")
                        await stopPartition(partition, release: false)
                    }
                }
                // Take what is this process's and free.
                for partition in desired.sorted() where owned[partition] == nil {
                    let lease = KPILease(keys: keys, partition: partition, owner: name, ttl: leaseTTL)
                    guard let epoch = try await lease.tryTake(on: control) else { continue }
                    owned[partition] = try await startPartition(partition, lease: lease, epoch: epoch)
                }
                // The merge stage.
                if let current = merging {
                    if let outcome = current.outcome.get, case .failure(let error) = outcome {
                        log("kpi: the merge stage stopped (\(error)); starting it again")
                        merging = nil
                        try? await current.lease.release(on: control)
                    } else if try await !current.lease.renew(on: control, epoch: current.epoch) {
                        log("kpi: lost the merge stage's lease; stopping it")
                        current.task.cancel()
                        merging = nil
                    }
                }
                if merging == nil, let epoch = try await mergeLease.tryTake(on: control) {
                    merging = startMerger(epoch: epoch, lease: mergeLease)
                }
                // Ready once its own partitions are taken and rebuilt, and a merge stage runs (here,
                // started, or elsewhere).
                if !announcedReady, desired.allSatisfy({ owned[$0]?.rebuilt.get == true }) {
                    let merged = if let merging { merging.merger.get != nil } else { try await control.command("EXISTS", keys.lease).int == 1 }
                    if merged {
                        announcedReady = true
                        ready?()
                    }
                }
                if options.untilDrained, try await drained(owned: owned, merging: merging, feed: feed, control: control) { break }
            } catch where FailureClass.of(error) == .transient {
                log("kpi: \(error); retrying")
            } catch {
                fatal = error
                break
            }
            do { try await ConsumerGroupRunner.pause(tick) } catch { break }
        }
        // Stop: every runner finishes its batch in flight and commits; leases let go.
        for partition in owned.keys.sorted() { await stopPartition(partition, release: true) }
        if let merging {
            merging.task.cancel()
            _ = try? await merging.task.value
            try? await merging.lease.release(on: control)
        }
        _ = try? await control.command("ZREM", keys.members, name)
        result.withLock { $0 = total }
        if stateRetention != nil {
            log("kpi: retired \(retired) records into the archive, revived \(revived); holding \(held.lines) lines, \(held.payments) payments, \(held.movements) movements")
        }
        if let fatal {
            throw fatal is ConsumerStop ? fatal : ConsumerStop(group: options.group, fatal: fatal)
        }
    }

    /// Starts the runner of a partition whose lease was just taken at `epoch`.
    private func startPartition(_ partition: Int, lease: KPILease, epoch: Int) async throws -> Owned {
        let url = self.url, log = self.log, layout = self.layout
        let writer = try await RedisConnection(url: url)
        let aggregator = KPIAggregator(layout: layout, partition: partition, group: options.group, redis: writer, epoch: epoch)
        await aggregator.setStateRetention(stateRetention, every: retireEvery)
        aggregators.set(partition, aggregator)
        var unit = options
        unit.streams = layout.partitionStreams(partition)
        let runner = ConsumerGroupRunner(options: unit, deadLetters: DeadLetterQueue(layout: layout), log: log)
        let consumer = options.consumer
        let outcome = Cell<Result<ConsumerGroupRunner.Stats, any Error>>()
        let rebuilt = Cell<Bool>()
        let task = Task {
            let result = await catching { () async throws -> ConsumerGroupRunner.Stats in
                let reader = try await ConsumerGroupRunner.retryingTransient("connecting to Redis", log: log) { try await RedisConnection(url: url) }
                return try await runner.run(redis: reader, prepare: {
                let started = ContinuousClock.now
                try await aggregator.takeOver(consumer: consumer)
                let records = try await aggregator.rebuild()
                let folded = await aggregator.foldedRecords, converted = await aggregator.convertedRetirements
                let rewritten = await aggregator.rewrittenFields
                log("kpi: partition \(partition), epoch \(epoch): state rebuilt from \(records) records"
                    + (folded > 0 ? " and \(folded) archived" : "") + " in "
                    + String(format: "%.2f", (ContinuousClock.now - started).seconds) + " s, \(rewritten) contribution field(s) rewritten"
                    + (converted > 0 ? "; \(converted) retired key(s) converted to format \(KPIKeys.retiredFormat)" : ""))
                rebuilt.set(true)
            }, idle: {
                try await aggregator.settle()
            }) { reads in
                try await aggregator.apply(reads)
                return []
            }
            }
            outcome.set(result)
            return try result.get()
        }
        log("kpi: took partition \(partition) (epoch \(epoch))")
        return Owned(lease: lease, epoch: epoch, aggregator: aggregator, task: task, outcome: outcome, rebuilt: rebuilt)
    }

    /// Starts the merge stage under its lease.
    private func startMerger(epoch: Int, lease: KPILease) -> Merging {
        let url = self.url, log = self.log, layout = self.layout, block = options.block
        let holder = Cell<KPIMerger>()
        let outcome = Cell<Result<Void, any Error>>()
        let task = Task {
          let result = await catching { () async throws -> Void in
            let writer = try await ConsumerGroupRunner.retryingTransient("connecting to Redis", log: log) { try await RedisConnection(url: url) }
            let merger = KPIMerger(layout: layout, redis: writer, epoch: epoch)
            try await ConsumerGroupRunner.retryingTransient("starting the merge stage", log: log) { try await merger.start() }
            holder.set(merger)
            log("kpi: merge stage started (epoch \(epoch)), \(await merger.startRewrites) day × product member(s) rewritten")
            while !Task.isCancelled {
                let tail = try await StreamTail(cursors: await merger.deltaCursors, configuration: writer.configuration, block: block, log: log)
                defer { tail.stop() }
                do {
                    while let reads = await tail.next() {
                        if Task.isCancelled { break }
                        try await merger.apply(reads)
                    }
                } catch where FailureClass.of(error) == .transient && !(error is CancellationError) {
                    log("kpi: merge stage: \(error); reading every contribution again")
                    try await ConsumerGroupRunner.retryingTransient("restarting the merge stage", log: log) { try await merger.start() }
                }
            }
          }
          outcome.set(result)
          try result.get()
        }
        return Merging(lease: lease, epoch: epoch, task: task, outcome: outcome, merger: holder)
    }

    /// For `untilDrained`: every runner of this process has drained its partition, the dimension
    /// feed has read every dimension stream to its end and every aggregator committed, and the
    /// merge stage (when here) has applied every delta.
    private func drained(owned: [Int: Owned], merging: Merging?, feed: StreamTail, control: RedisConnection) async throws -> Bool {
        for item in owned.values where item.outcome.get == nil { return false }
        // Every partition's streams read and acknowledged by the group (whoever owns them: an
        // entry is acknowledged in the same commit as its contribution).
        for stream in layout.allStreams {
            guard let info = try await control.xinfoGroups(stream).first(where: { $0.name == options.group }), info.pending == 0,
                  try await LagMonitor.firstUndelivered(stream, after: info.lastDeliveredID, on: control) == nil
            else { return false }
        }
        guard try await feed.caughtUp(on: control) else { return false }
        for item in owned.values { try await item.aggregator.settle() }
        guard let merging else {
            // Another process merges: it must be running.
            return try await control.command("EXISTS", KPIKeys(layout: layout).lease).int == 1
        }
        guard let merger = merging.merger.get else { return false }
        return try await merger.caughtUp()
    }
}

extension KPIAggregator {
    /// One aggregator process in a service group with no signal handling (the caller's own group,
    /// or a test, decides when it stops): for tests and benchmarks that run the group in process.
    /// Returns when the aggregator is done (`untilDrained`) or the group is shut down.
    public static func serviceGroup(
        _ options: ConsumerGroupRunner.Options, layout: StreamLayout, url: String, leaseTTL: Duration = .seconds(10),
        log: @escaping @Sendable (String) -> Void = { _ in }, ready: (@Sendable () -> Void)? = nil
    ) -> (group: ServiceGroup, aggregator: KPIAggregatorService) {
        let aggregator = KPIAggregatorService(options: options, layout: layout, url: url, leaseTTL: leaseTTL, log: log, ready: ready)
        var logger = Logger(label: "kpi")
        logger.logLevel = .warning
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [
            .init(service: aggregator, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup),
        ], logger: logger))
        return (group, aggregator)
    }

    /// Runs the aggregator in process until it is done (`untilDrained`).
    public static func consume(
        _ options: ConsumerGroupRunner.Options, layout: StreamLayout, url: String, leaseTTL: Duration = .seconds(10),
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> ConsumerGroupRunner.Stats {
        let (group, aggregator) = serviceGroup(options, layout: layout, url: url, leaseTTL: leaseTTL, log: log)
        try await group.run()
        return aggregator.stats
    }
}

/// The outcome of `body` as a value.
func catching<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
    do { return .success(try await body()) } catch { return .failure(error) }
}
