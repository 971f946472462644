public import RedisClient
public import RedisWire
import Synchronization

/// Follows streams with XREAD (no consumer group: every follower sees every entry) from cursors
/// of its own. On a Redis Cluster one XREAD may name only keys of one slot, so the keys are read
/// per slot, each slot by a task and a connection of its own that blocks on its node; on a single
/// Redis one blocking XREAD covers them all. Batches arrive on `batches` as they are read;
/// transient failures (a lost node, a failover) are waited out and the read goes on from the
/// same cursor. `next()` hands over everything read since the last call at once, so a consumer
/// slower than the entries arrive processes them in larger batches instead of queueing behind
/// them one by one.
public final class StreamTail: Sendable {
    private let signals: Signals
    private let pending: Pending

    /// The readers' "something arrived" signals, and their one iterator (only the consumer's
    /// task calls `next()`).
    final class Signals: @unchecked Sendable {
        var iterator: AsyncStream<Void>.AsyncIterator
        init(_ stream: AsyncStream<Void>) { iterator = stream.makeAsyncIterator() }
    }
    private let tasks: [Task<Void, Never>]

    /// What the readers have read and the consumer not yet taken.
    final class Pending: Sendable {
        let reads = Mutex<(items: [StreamRead], finished: Bool)>(([], false))
        /// Entries held before the readers wait for the consumer.
        let limit = 20_000
    }
    /// Per key, the last id handed over.
    private let positions: Positions

    final class Positions: Sendable {
        let ids: Mutex<[String: StreamID]>
        init(_ ids: [String: StreamID]) { self.ids = Mutex(ids) }
    }

    /// Starts following `cursors` (key → the id after which to read; `0-0` from the start).
    public init(
        cursors: [String: StreamID], configuration: RedisConfiguration, count: Int = 1000, block: Duration = .seconds(2),
        log: @escaping @Sendable (String) -> Void
    ) async throws {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        signals = Signals(stream)
        let pending = Pending()
        self.pending = pending
        let positionsOfAll = Positions(cursors)
        positions = positionsOfAll
        let first = try await RedisConnection(configuration: configuration)
        var units: [[String]] = [cursors.keys.sorted()]
        if try await first.isCluster {
            units = Dictionary(grouping: cursors.keys, by: HashSlot.of).values.map { $0.sorted() }.sorted { $0[0] < $1[0] }
        }
        var tasks: [Task<Void, Never>] = []
        for (index, keys) in units.enumerated() {
            let start = keys.map { cursors[$0]! }
            tasks.append(Task {
                var redis: RedisConnection? = index == 0 ? first : nil
                var positions = start
                while !Task.isCancelled {
                    do {
                        if redis == nil { redis = try await RedisConnection(configuration: configuration) }
                        let reads = try await redis!.xread(
                            streams: zip(keys, positions).map { ($0, $1.description) }, count: count, block: block)
                        let nonEmpty = reads.filter { !$0.entries.isEmpty }
                        for read in nonEmpty {
                            if let index = keys.firstIndex(of: read.key), let last = read.entries.last { positions[index] = last.id }
                        }
                        if !nonEmpty.isEmpty {
                            // Bounded: wait while the consumer has many entries still to take.
                            while pending.reads.withLock({ $0.items.reduce(0) { $0 + $1.entries.count } }) > pending.limit, !Task.isCancelled {
                                try? await Task.sleep(for: .milliseconds(5))
                            }
                            pending.reads.withLock { $0.items += nonEmpty }
                            if case .terminated = continuation.yield() { return }
                        }
                        positionsOfAll.ids.withLock { all in for (key, id) in zip(keys, positions) { all[key] = id } }
                    } catch {
                        if Task.isCancelled { return }
                        if FailureClass.of(error) != .transient { log("following \(keys.first ?? "") …: \(error); retrying") }
                        try? await Task.sleep(for: .milliseconds(200))
                    }
                }
            })
        }
        self.tasks = tasks
        let all = tasks
        Task {
            for task in all { await task.value }
            continuation.finish()
        }
    }

    /// Everything read since the last call (waiting until there is something); nil once the
    /// readers stopped. One consumer task only.
    public func next() async -> [StreamRead]? {
        while true {
            let taken = pending.reads.withLock { state -> [StreamRead] in
                defer { state.items = [] }
                return state.items
            }
            if !taken.isEmpty { return taken }
            guard await signals.iterator.next() != nil else {
                let last = pending.reads.withLock { state -> [StreamRead] in
                    defer { state.items = [] }
                    return state.items
                }
                return last.isEmpty ? nil : last
            }
        }
    }

    /// True when every stream followed has no entry after what was handed over (and taken: the
    /// caller has processed what it received once it asks).
    public func caughtUp(on redis: RedisConnection) async throws -> Bool {
        let positions = self.positions.ids.withLock { $0 }
        let lasts = try await redis.lastEntryIDs(positions.keys.sorted())
        return !lasts.contains { key, last in last > positions[key] ?? .zero }
    }

    /// Stops every reader (a read blocked on its node returns within its BLOCK time).
    public func stop() {
        for task in tasks { task.cancel() }
    }

    deinit { stop() }
}
