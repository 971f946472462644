import Foundation
public import ServiceLifecycle
import Synchronization
public import Contract
public import StreamRuntime
import PostgresClient
import RedisClient

/// The `warehouse` group as a Service: `workers` consumers in this process, each with its own
/// Redis and PostgreSQL connections, running until a graceful shutdown (each finishes its batch
/// in flight) or, with `untilDrained`, until the group is caught up. A fatal failure of one worker
/// stops them all (the error names the cause and what to do).
public final class WarehouseLoaderService: Service {
    public let options: ConsumerGroupRunner.Options
    public let workers: Int
    public let layout: StreamLayout
    public let servers: ServerConfiguration
    let log: @Sendable (String) -> Void
    private let result = Mutex(ConsumerGroupRunner.Stats())

    public init(
        options: ConsumerGroupRunner.Options, workers: Int, layout: StreamLayout, servers: ServerConfiguration,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.options = options
        self.workers = workers
        self.layout = layout
        self.servers = servers
        self.log = log
    }

    /// What the workers did, summed (once `run()` returned).
    public var stats: ConsumerGroupRunner.Stats { result.withLock { $0 } }

    public func run() async throws {
        let servers = self.servers, layout = self.layout, log = self.log, workers = self.workers, base = self.options
        try await withThrowingTaskGroup(of: ConsumerGroupRunner.Stats.self) { tasks in
            for worker in 0..<workers {
                var options = base
                if workers > 1 { options.consumer = "\(base.consumer)-\(worker)" }
                tasks.addTask {
                    let redis: RedisConnection, postgres: PostgresConnection
                    do {
                        redis = try await ConsumerGroupRunner.retryingTransient("connecting to Redis", log: log) {
                            try await RedisConnection(url: servers.redisURL)
                        }
                        postgres = try await ConsumerGroupRunner.retryingTransient("connecting to PostgreSQL", log: log) {
                            try await PostgresConnection(servers.databaseURL)
                        }
                    } catch is CancellationError {
                        return ConsumerGroupRunner.Stats()
                    }
                    return try await WarehouseLoader(group: options.group).consume(options, layout: layout, redis: redis, postgres: postgres, log: log)
                }
            }
            for try await stats in tasks {
                result.withLock { $0 = $0 + stats }
            }
        }
    }
}
