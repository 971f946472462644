import Foundation
public import RedisClient
import Synchronization

/// A few Redis connections handed out in turn: each connection runs one command at a time on its
/// own thread, so concurrent API requests spread over several.
public final class RedisPool: Sendable {
    private let connections: [RedisConnection]
    private let next = Atomic<Int>(0)

    public init(url: String, size: Int) async throws {
        var connections: [RedisConnection] = []
        for _ in 0..<max(1, size) { connections.append(try await RedisConnection(url: url)) }
        self.connections = connections
    }

    /// The next connection.
    public var connection: RedisConnection {
        let index = next.wrappingAdd(1, ordering: .relaxed).newValue & Int.max
        return connections[index % connections.count]
    }
}
