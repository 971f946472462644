import Foundation
public import RedisClient
import RedisWire
import StreamRuntime

/// A fenced lease: a partition's (one owner at a time) or the merge stage's (one per namespace).
/// SET NX PX, renewed by its holder's process at every tick; a crashed holder's lease expires after
/// the TTL. Each take draws a new fencing epoch (INCR of the epoch key, in the same script), which
/// the holder's commits carry (`KPIAggregator`, `KPIMerger`).
public struct KPILease: Sendable {
    /// The lease key and its epoch counter (same slot).
    public let key: String
    public let epochKey: String
    public let owner: String
    public let ttl: Duration
    let token = UUID().uuidString

    /// The merge stage's lease (`{kpi}`).
    public init(keys: KPIKeys, owner: String, ttl: Duration) {
        self.init(key: keys.lease, epochKey: keys.epoch, owner: owner, ttl: ttl)
    }

    /// A partition's lease.
    public init(keys: KPIKeys, partition: Int, owner: String, ttl: Duration) {
        self.init(key: keys.lease(partition: partition), epochKey: keys.epoch(partition: partition), owner: owner, ttl: ttl)
    }

    public init(key: String, epochKey: String, owner: String, ttl: Duration) {
        self.key = key
        self.epochKey = epochKey
        self.owner = owner
        self.ttl = ttl
    }

    /// Takes the lease now if it is free: its epoch, or nil when another holder has it.
    public func tryTake(on redis: RedisConnection) async throws -> Int? {
        let epoch = try await redis.run(Self.take, keys: [key, epochKey], arguments: [value, String(ttlMilliseconds)]).int ?? 0
        return epoch > 0 ? epoch : nil
    }

    /// Takes the lease if it is free; returns the new epoch, or 0 when another holder has it.
    static let take = RedisScript("""
        if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
          return redis.call('INCR', KEYS[2])
        end
        return 0
        """)
    /// Renews the lease; takes it back if it expired and nobody took it meanwhile (the epoch has
    /// not moved). 1 when held, 0 when lost.
    ///
    /// An epoch *below* the holder's means Redis lost writes (restarted from an append-only file
    /// missing its tail, as after a machine crash with `appendfsync everysec`): nobody can have
    /// taken the lease since (there is no holder), so the epoch is put back and the lease taken
    /// again. Left as it was, the next take would hand out this holder's epoch a second time.
    static let renew = RedisScript("""
        local holder = redis.call('GET', KEYS[1])
        if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
        if holder then return 0 end
        local current = tonumber(redis.call('GET', KEYS[2]) or '0')
        local mine = tonumber(ARGV[3])
        if current > mine then return 0 end
        if current < mine then redis.call('SET', KEYS[2], ARGV[3]) end
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        return 1
        """)
    static let release = RedisScript("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """)

    var ttlMilliseconds: Int { max(1, Int(ttl.milliseconds)) }
    var value: String { "\(owner) \(token)" }

    /// Waits for the lease and returns its epoch; nil on a graceful shutdown first.
    public func acquire(on redis: RedisConnection, log: @Sendable (String) -> Void) async throws -> Int? {
        var announced = false
        while !ConsumerGroupRunner.stopping {
            if let epoch = try await tryTake(on: redis) { return epoch }
            if !announced {
                let holder = try await redis.command("GET", key).string ?? "?"
                log("another KPI aggregator holds the lease (\(holder.split(separator: " ").first ?? "?")); waiting for it to stop or expire")
                announced = true
            }
            do { try await ConsumerGroupRunner.pause(.milliseconds(200)) } catch { return nil }
        }
        return nil
    }

    /// Renews the lease held at `epoch`; false when it is lost.
    public func renew(on redis: RedisConnection, epoch: Int) async throws -> Bool {
        try await redis.run(Self.renew, keys: [key, epochKey], arguments: [value, String(ttlMilliseconds), String(epoch)]).int == 1
    }

    public func release(on redis: RedisConnection) async throws {
        _ = try await redis.run(Self.release, keys: [key], arguments: [value])
    }
}
