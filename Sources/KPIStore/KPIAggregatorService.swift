import Foundation
import Logging
public import ServiceLifecycle
import Synchronization
public import Contract
public import StreamRuntime
import RedisClient
import RedisWire

/// The `kpi` group as a Service: waits for the lease's epoch (`KPILeaseKeeper`), raises the
/// fences, rebuilds the state from Redis and runs the consumer-group runner with the aggregator
/// as its handler, until a graceful shutdown (after the batch in flight) or, with
/// `untilDrained`, until caught up.
public final class KPIAggregatorService: Service {
    public let options: ConsumerGroupRunner.Options
    public let layout: StreamLayout
    public let url: String
    public let grant: KPILeaseGrant
    public let stateRetention: Duration?
    public let retireEvery: Duration
    let log: @Sendable (String) -> Void
    let ready: (@Sendable () -> Void)?
    private let result = Mutex(ConsumerGroupRunner.Stats())

    public init(
        options: ConsumerGroupRunner.Options, layout: StreamLayout, url: String, grant: KPILeaseGrant,
        stateRetention: Duration? = nil, retireEvery: Duration = .seconds(5),
        log: @escaping @Sendable (String) -> Void = { _ in }, ready: (@Sendable () -> Void)? = nil
    ) {
        var options = options
        options.handlerAcknowledges = true
        self.options = options
        self.layout = layout
        self.url = url
        self.grant = grant
        self.stateRetention = stateRetention
        self.retireEvery = retireEvery
        self.log = log
        self.ready = ready
    }

    /// What the run did (once `run()` returned).
    public var stats: ConsumerGroupRunner.Stats { result.withLock { $0 } }

    public func run() async throws {
        let grant = self.grant
        guard let epoch = await withGracefulShutdownHandler(operation: { await grant.epoch() }, onGracefulShutdown: { grant.close() })
        else { return }
        let log = self.log
        let url = self.url
        let reader: RedisConnection, writer: RedisConnection
        do {
            reader = try await ConsumerGroupRunner.retryingTransient("connecting to Redis", log: log) { try await RedisConnection(url: url) }
            writer = try await ConsumerGroupRunner.retryingTransient("connecting to Redis", log: log) { try await RedisConnection(url: url) }
        } catch is CancellationError {
            return
        }
        let aggregator = KPIAggregator(layout: layout, group: options.group, redis: writer, epoch: epoch)
        await aggregator.setStateRetention(stateRetention, every: retireEvery)
        let runner = ConsumerGroupRunner(options: options, deadLetters: DeadLetterQueue(layout: layout), log: log)
        let streams = options.streams
        let ready = self.ready
        let stats = try await runner.run(redis: reader, prepare: {
            let started = ContinuousClock.now
            try await aggregator.raiseFences(streams: streams)
            let records = try await aggregator.rebuild()
            log("kpi: epoch \(epoch): state rebuilt from \(records) records in \(String(format: "%.2f", (ContinuousClock.now - started).seconds)) s")
            ready?()
        }, idle: {
            try await aggregator.settle()
        }) { reads in
            try await aggregator.apply(reads)
            return []
        }
        result.withLock { $0 = stats }
        if stateRetention != nil {
            let retired = await aggregator.retiredRecords
            let held = await aggregator.heldRecords
            log("kpi: retired \(retired) records into counters; holding \(held.lines) lines, \(held.payments) payments, \(held.movements) movements")
        }
    }
}

extension KPIAggregator {
    /// The lease keeper and the aggregator of one namespace, as a service group with no signal
    /// handling (the caller's own group, or a test, decides when it stops): for tests and
    /// benchmarks that run the group in process. Returns when the aggregator is done
    /// (`untilDrained`) or the group is shut down.
    public static func serviceGroup(
        _ options: ConsumerGroupRunner.Options, layout: StreamLayout, url: String, leaseTTL: Duration = .seconds(10),
        log: @escaping @Sendable (String) -> Void = { _ in }, ready: (@Sendable () -> Void)? = nil
    ) -> (group: ServiceGroup, aggregator: KPIAggregatorService) {
        let grant = KPILeaseGrant()
        let keeper = KPILeaseKeeper(
            lease: KPILease(keys: KPIKeys(layout: layout), owner: options.consumer, ttl: leaseTTL), grant: grant, url: url, log: log)
        let aggregator = KPIAggregatorService(options: options, layout: layout, url: url, grant: grant, log: log, ready: ready)
        var logger = Logger(label: "kpi")
        logger.logLevel = .warning
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [
            .init(service: keeper, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup),
            .init(service: aggregator, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup),
        ], logger: logger))
        return (group, aggregator)
    }

    /// Runs the aggregator with its lease in process until it is done (`untilDrained`).
    public static func consume(
        _ options: ConsumerGroupRunner.Options, layout: StreamLayout, url: String, leaseTTL: Duration = .seconds(10)
    ) async throws -> ConsumerGroupRunner.Stats {
        let (group, aggregator) = serviceGroup(options, layout: layout, url: url, leaseTTL: leaseTTL)
        try await group.run()
        return aggregator.stats
    }
}
