public import Contract
import Foundation
public import RedisClient
import ServiceLifecycle
import RedisWire
import StreamRuntime

/// Publishes a `SyntheticLoad` in real time (`warehouse produce synthetic`): orders arrive at
/// `rate ÷ SyntheticLoad.eventsPerOrder` per second, follow-ups when they are due, every event
/// through the contract's validation; publishing pauses while the slowest group lags more than
/// `maxLag` entries. Runs until `duration` is over or a graceful shutdown.
public struct SyntheticProducer: Sendable {
    public var layout: StreamLayout
    public var rate: Double
    public var duration: Duration
    public var maxLag: Int

    public init(layout: StreamLayout, rate: Double, duration: Duration, maxLag: Int) {
        self.layout = layout
        self.rate = rate
        self.duration = duration
        self.maxLag = maxLag
    }

    public struct Totals: Sendable {
        public var events = 0, rejected = 0, orders = 0
        public var paused = 0.0, seconds = 0.0
    }

    /// Runs the load; `log` gets a summary line every 5 s, and each rejection.
    public func run(_ load: inout SyntheticLoad, on redis: RedisConnection, log: @escaping @Sendable (String) -> Void) async throws -> Totals {
        let producer = Producer(layout: layout)
        let now = Timestamp.now
        var totals = Totals()
        var pending: [SyntheticLoad.Event] = []
        if load.catalog.isEmpty {
            pending = load.bootstrap(at: now)
            log("synthetic: the warehouse has no catalog; publishing one (\(load.catalog.products.count) products, \(load.catalog.customers.count) customers)")
        } else {
            log("synthetic: \(load.catalog.customers.count) customers and \(load.catalog.products.count) products from the warehouse")
        }
        let backPressure = maxLag > 0 ? BackPressure(limit: maxLag, streams: layout.allStreams) : nil
        let clock = ContinuousClock()
        let started = clock.now
        let end = started + duration
        let ordersPerSecond = rate / SyntheticLoad.eventsPerOrder
        var nextArrival = started + .microseconds(Int64(load.interarrival(ordersPerSecond: ordersPerSecond) * 1_000_000))
        var lastSummary = started, lastCheck = started, lastSummaryEvents = 0
        var slowest: (group: String, lag: Int)?

        func publish() async throws {
            guard !pending.isEmpty else { return }
            var byEntity: [Entity: [(line: Int, values: [String: String])]] = [:]
            for (index, event) in pending.enumerated() { byEntity[event.entity, default: []].append((totals.events + index + 1, event.values)) }
            // Dimensions first, so a consumer reading one batch sees the customer before the order.
            for entity in Entity.allCases {
                guard let objects = byEntity[entity] else { continue }
                let outcome = try await producer.publish(objects: objects, entity: entity, input: "synthetic", on: redis)
                for rejection in outcome.rejected { log("rejected \(rejection.description)") }
                totals.rejected += outcome.rejected.count
            }
            totals.events += pending.count
            pending.removeAll(keepingCapacity: true)
        }

        while clock.now < end && !Task.isShuttingDownGracefully {
            let wall = clock.now
            while nextArrival <= wall {
                pending += load.arrival(at: Timestamp.now)
                totals.orders += 1
                nextArrival += .microseconds(Int64(load.interarrival(ordersPerSecond: ordersPerSecond) * 1_000_000))
            }
            pending += load.due(at: Timestamp.now)
            try await publish()
            if let backPressure, clock.now - lastCheck >= backPressure.checkEvery {
                lastCheck = clock.now
                slowest = try await BackPressure.slowestLag(backPressure.streams, on: redis)
                let paused = try await backPressure.wait(on: redis, from: slowest, cancelled: { Task.isShuttingDownGracefully }) { group, lag in
                    log("synthetic: paused by back-pressure: group \(group) lags \(lag) entries (limit \(backPressure.limit))")
                }
                if paused > 0 {
                    totals.paused += paused
                    nextArrival = clock.now
                }
            }
            if clock.now - lastSummary >= .seconds(5) {
                let elapsed = (clock.now - lastSummary).seconds
                log(String(format: "synthetic: %.0f s, %d events (%.0f/s now), %d orders, %d rejected, %d follow-ups scheduled, slowest lag %@",
                           (clock.now - started).seconds, totals.events, Double(totals.events - lastSummaryEvents) / elapsed,
                           totals.orders, totals.rejected, load.scheduled, slowest.map { "\($0.lag) (\($0.group))" } ?? "-"))
                lastSummary = clock.now
                lastSummaryEvents = totals.events
            }
            let wake = min(nextArrival, clock.now + .milliseconds(20))
            if wake > clock.now { try? await Task.sleep(until: wake, clock: clock) }
        }
        try await publish()
        totals.seconds = (clock.now - started).seconds
        return totals
    }
}
