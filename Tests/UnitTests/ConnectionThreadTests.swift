import ConnectionExecutor
import Testing
import Contract
import KPIModel
import StreamRuntime
import WarehouseSink
import KPIStore
import DataGenerator
import RedisWire
import RedisClient
import PostgresClient

/// An actor pinned to a `ConnectionThread`, as the Redis and PostgreSQL connections are.
private actor Pinned {
    let thread = ConnectionThread(name: "test")
    var log: [Int] = []
    nonisolated var unownedExecutor: UnownedSerialExecutor { thread.asUnownedSerialExecutor() }
    func record(_ value: Int) -> Bool {
        log.append(value)
        return thread.isCurrent
    }
    deinit { thread.shutdown() }
}

@Suite struct ConnectionThreadTests {
    @Test func actorMethodsRunOnTheDedicatedThread() async {
        let pinned = Pinned()
        for value in 0..<100 {
            #expect(await pinned.record(value))
        }
        #expect(await pinned.log == Array(0..<100))
        #expect(!pinned.thread.isCurrent)
    }
}
