import Foundation
import PostgresClient
public import RedisClient

/// A flag a signal handler sets to ask long-running loops to drain and stop.
public final class StopFlag: @unchecked Sendable {
    // @unchecked: `stopped` is read and written only under `lock`.
    private let lock = NSLock()
    private var stopped = false

    public init() {}

    public func stop() {
        lock.lock(); stopped = true; lock.unlock()
    }

    public var isStopped: Bool {
        lock.lock(); defer { lock.unlock() }
        return stopped
    }
}

/// The consumer-group runtime every group shares: reads batches with XREADGROUP, hands them to a
/// handler, acknowledges them only after the handler returned (its effects are durable), retries
/// transient failures with exponential backoff and jitter behind a circuit breaker (never
/// dead-lettering them), isolates entries that fail for good and dead-letters them, reclaims
/// entries a dead consumer left pending, and stops when asked (after the batch in flight) or,
/// with `untilDrained`, once the group has nothing left to read and nothing pending.
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
    }

    /// What the handler reports back: entries it could not use, with the reason (dead-lettered, acked).
    public typealias Rejects = [(stream: String, entry: StreamEntry, reason: String)]

    public let options: Options
    public let deadLetters: DeadLetterQueue
    public let stop: StopFlag
    public let log: @Sendable (String) -> Void

    public init(options: Options, deadLetters: DeadLetterQueue, stop: StopFlag = StopFlag(), log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.options = options
        self.deadLetters = deadLetters
        self.stop = stop
        self.log = log
    }

    /// `idle` runs whenever a read comes back empty, before the drained check (a handler that
    /// commits asynchronously waits for its last commit there).
    public func run(
        redis: RedisConnection, idle: (@Sendable () async throws -> Void)? = nil,
        handler: @Sendable ([StreamRead]) async throws -> Rejects
    ) async throws -> Stats {
        var stats = Stats()
        PipelineMetrics.circuit(group: options.group, state: .closed)
        for stream in options.streams {
            try await redis.xgroupCreate(stream, group: options.group, id: "0", makeStream: true)
        }
        // What this consumer name left pending before (a restart after a crash) comes first.
        while !stop.isStopped {
            let reads = try await redis.xreadgroup(
                group: options.group, consumer: options.consumer, streams: options.streams.map { ($0, "0") },
                count: options.batchSize)
            let pending = reads.filter { !$0.entries.isEmpty }
            if pending.isEmpty { break }
            try await process(pending, redis: redis, handler: handler, stats: &stats)
        }
        var lastReclaim = ContinuousClock.now
        try await reclaim(redis: redis, handler: handler, stats: &stats)
        // While the handler applies one batch, the next is already being read (its entries are
        // pending for this consumer until processed, so a stop in between loses nothing).
        var prefetched: Task<[StreamRead], any Error>?
        defer { prefetched?.cancel() }
        while !stop.isStopped {
            let reads: [StreamRead]
            if let next = prefetched {
                prefetched = nil
                do {
                    reads = try await next.value
                } catch where Self.isTransient(error) {
                    reads = try await readWithRetry(redis: redis, stats: &stats)
                }
            } else {
                reads = try await readWithRetry(redis: redis, stats: &stats)
            }
            let nonEmpty = reads.filter { !$0.entries.isEmpty }
            if nonEmpty.isEmpty {
                try await idle?()
                if options.untilDrained, try await drained(redis: redis) { break }
            } else {
                let options = self.options
                prefetched = Task {
                    try await redis.xreadgroup(
                        group: options.group, consumer: options.consumer, streams: options.streams.map { ($0, ">") },
                        count: options.batchSize, block: .milliseconds(1))
                }
                try await process(nonEmpty, redis: redis, handler: handler, stats: &stats)
            }
            if ContinuousClock.now - lastReclaim >= options.minIdle {
                lastReclaim = .now
                try await reclaim(redis: redis, handler: handler, stats: &stats)
            }
        }
        // Asked to stop: what was already read is part of the work in flight; finish it, so a
        // graceful stop leaves nothing pending.
        if let next = prefetched {
            prefetched = nil
            if let reads = try? await next.value {
                let nonEmpty = reads.filter { !$0.entries.isEmpty }
                if !nonEmpty.isEmpty { try await process(nonEmpty, redis: redis, handler: handler, stats: &stats) }
            }
        }
        return stats
    }

    private func readWithRetry(redis: RedisConnection, stats: inout Stats) async throws -> [StreamRead] {
        var failures = 0
        while true {
            do {
                return try await redis.xreadgroup(
                    group: options.group, consumer: options.consumer, streams: options.streams.map { ($0, ">") },
                    count: options.batchSize, block: options.block)
            } catch let error as RedisError where error.isTransient {
                failures += 1
                stats.retries += 1
                log("Redis unavailable (\(error.message)); retrying")
                try await Task.sleep(for: Self.backoff(failures))
                if stop.isStopped { return [] }
            }
        }
    }

    /// Hands `reads` to the handler until it succeeds (transient failures are retried, never
    /// dead-lettered), then dead-letters what it rejected and acknowledges everything.
    func process(
        _ reads: [StreamRead], redis: RedisConnection, handler: @Sendable ([StreamRead]) async throws -> Rejects, stats: inout Stats
    ) async throws {
        let started = ContinuousClock.now
        var breaker = CircuitBreaker(threshold: options.circuitThreshold)
        var rejects: Rejects = []
        while true {
            do {
                rejects = try await handler(reads)
                let failures = breaker.failures
                if breaker.recordSuccess() {
                    log("circuit closed: the batch went through after \(failures) failures")
                    PipelineMetrics.circuit(group: options.group, state: .closed)
                }
                break
            } catch where Self.isTransient(error) {
                let (wait, opened) = breaker.recordFailure()
                stats.retries += 1
                if opened {
                    PipelineMetrics.circuit(group: options.group, state: .open)
                    log("circuit open after \(breaker.failures) transient failures in a row (\(error)); probing with backoff")
                } else if breaker.state == .closed {
                    log("transient failure (\(error)); retrying")
                }
                try await Task.sleep(for: wait)
                breaker.probe()
                if stop.isStopped { throw CancellationError() }
            } catch {
                // A permanent failure: find the entries that cause it by applying them one at a time.
                rejects = try await isolate(reads, error: error, handler: handler)
                break
            }
        }
        if !rejects.isEmpty {
            try await deadLetters.appendEvents(rejects.map { ($0.stream, $0.entry, $0.reason, nil) }, stage: options.group, on: redis)
            stats.deadLettered += rejects.count
        }
        if options.handlerAcknowledges {
            let rejected = Dictionary(grouping: rejects, by: \.stream).map { StreamRead(key: $0.key, entries: $0.value.map(\.entry)) }
            if !rejected.isEmpty { try await acknowledge(rejected, redis: redis) }
        } else {
            try await acknowledge(reads, redis: redis)
        }
        stats.batches += 1
        let count = reads.reduce(0) { $0 + $1.entries.count }
        stats.entries += count
        PipelineMetrics.batch(group: options.group, read: count, rejected: rejects.count, acknowledged: count, duration: .now - started)
    }

    private func isolate(
        _ reads: [StreamRead], error: any Error, handler: @Sendable ([StreamRead]) async throws -> Rejects
    ) async throws -> Rejects {
        log("batch failed (\(error)); applying its entries one by one to isolate the bad ones")
        var rejects: Rejects = []
        for read in reads {
            for entry in read.entries {
                let single = [StreamRead(key: read.key, entries: [entry])]
                var failures = 0
                while true {
                    do {
                        rejects += try await handler(single)
                        break
                    } catch where Self.isTransient(error) {
                        failures += 1
                        try await Task.sleep(for: Self.backoff(failures))
                    } catch {
                        rejects.append((read.key, entry, "cannot be loaded: \(error)"))
                        break
                    }
                }
            }
        }
        return rejects
    }

    private func acknowledge(_ reads: [StreamRead], redis: RedisConnection) async throws {
        var batch = RedisCommandBuffer()
        for read in reads where !read.entries.isEmpty {
            batch.xack(read.key, group: options.group, ids: read.entries.map(\.id))
        }
        var failures = 0
        while true {
            do {
                for reply in try await redis.send(batch) {
                    if case .error(let message) = reply { throw RedisError(.server, message) }
                }
                return
            } catch let error as RedisError where error.isTransient {
                // The effects are committed; acking again is harmless, losing the ack only
                // means a redelivery that the idempotent handler ignores.
                failures += 1
                try await Task.sleep(for: Self.backoff(failures))
            }
        }
    }

    /// Claims entries idle past `minIdle` from other consumers; dead-letters those delivered more
    /// than `deliveryLimit` times (poison), processes the rest.
    private func reclaim(redis: RedisConnection, handler: @Sendable ([StreamRead]) async throws -> Rejects, stats: inout Stats) async throws {
        for stream in options.streams {
            var start = StreamID.zero
            repeat {
                let claimed = try await redis.xautoclaim(
                    stream, group: options.group, consumer: options.consumer, minIdle: options.minIdle, start: start,
                    count: options.batchSize)
                start = claimed.next
                guard !claimed.entries.isEmpty else { continue }
                stats.reclaimed += claimed.entries.count
                log("reclaimed \(claimed.entries.count) entries of \(stream) from a consumer that stopped")
                let deliveries = try await redis.xpending(
                    stream, group: options.group, start: claimed.entries.first!.id.description,
                    end: claimed.entries.last!.id.description, count: claimed.entries.count)
                let counts = Dictionary(deliveries.map { ($0.id, $0.deliveries) }, uniquingKeysWith: max)
                let poison = claimed.entries.filter { counts[$0.id, default: 0] > options.deliveryLimit }
                if !poison.isEmpty {
                    try await deadLetters.appendEvents(
                        poison.map { (stream, $0, "poison: delivered \(counts[$0.id, default: 0]) times without being applied", counts[$0.id]) },
                        stage: options.group, on: redis)
                    try await redis.xack(stream, group: options.group, ids: poison.map(\.id))
                    stats.deadLettered += poison.count
                }
                let rest = claimed.entries.filter { counts[$0.id, default: 0] <= options.deliveryLimit }
                if !rest.isEmpty {
                    try await process([StreamRead(key: stream, entries: rest)], redis: redis, handler: handler, stats: &stats)
                }
            } while start != .zero && !stop.isStopped
        }
    }

    /// True when every stream has been read to its end by the group and nothing is pending.
    func drained(redis: RedisConnection) async throws -> Bool {
        for stream in options.streams {
            guard let info = try await redis.xinfoGroups(stream).first(where: { $0.name == options.group }) else { return false }
            if info.pending > 0 { return false }
            if let lag = info.lag {
                if lag > 0 { return false }
            } else {
                let last = try await redis.xinfoStream(stream).lastGeneratedID
                if info.lastDeliveredID < last { return false }
            }
        }
        return true
    }

    static func isTransient(_ error: any Error) -> Bool {
        if let error = error as? RedisError { return error.isTransient }
        if let error = error as? PostgresError { return error.isTransient }
        return false
    }

    /// 100 ms doubling to 10 s, with jitter on the upper half.
    static func backoff(_ failures: Int) -> Duration {
        let base = Duration.milliseconds(100) * (1 << min(max(failures, 1) - 1, 7))
        let capped = min(base, .seconds(10))
        return capped / 2 + capped / 2 * Double.random(in: 0...1)
    }
}
