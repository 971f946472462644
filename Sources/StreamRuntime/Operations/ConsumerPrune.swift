public import RedisClient
import RedisWire

/// `warehouse lag --prune`: deletes the consumers of a group that have been gone a while and hold
/// nothing pending. XGROUP DELCONSUMER throws away a consumer's pending entries, so the check and
/// the delete run in one script: an entry delivered to the consumer between a read and a delete
/// can never be lost. A pruned consumer that comes back is created again by its next read.
public enum ConsumerPrune {
    public struct Pruned: Sendable, Codable, Equatable {
        public var stream: String
        public var group: String
        public var consumer: String
        public var idleMilliseconds: Int
        enum CodingKeys: String, CodingKey {
            case stream, group, consumer
            case idleMilliseconds = "idle_ms"
        }
    }

    /// KEYS[1] the stream, ARGV[1] the group, ARGV[2] the least idle time (ms). Returns a flat
    /// array of name, idle pairs of the consumers deleted.
    static let script = RedisScript("""
        local deleted = {}
        for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
          local fields = {}
          for i = 1, #consumer, 2 do fields[consumer[i]] = consumer[i + 1] end
          if tonumber(fields['pending']) == 0 and tonumber(fields['idle']) >= tonumber(ARGV[2]) then
            redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], fields['name'])
            deleted[#deleted + 1] = fields['name']
            deleted[#deleted + 1] = tostring(fields['idle'])
          end
        end
        return deleted
        """)

    /// Prunes every group of `streams` (or only `group`): consumers idle at least `idleAtLeast`
    /// with nothing pending.
    public static func prune(
        streams: [String], group: String? = nil, idleAtLeast: Duration, on redis: RedisConnection
    ) async throws -> [Pruned] {
        let idle = idleAtLeast.milliseconds
        var pruned: [Pruned] = []
        for stream in streams {
            guard try await redis.command("EXISTS", stream).int == 1 else { continue }
            for info in try await redis.xinfoGroups(stream) where group == nil || info.name == group {
                var batch = RedisCommandBuffer()
                batch.evalsha(script, keys: [stream], arguments: [info.name, String(idle)])
                guard let reply = try await redis.send(batch, reloading: script).first else { continue }
                let items = try reply.throwingServerError().array ?? []
                var index = 1
                while index < items.count {
                    if let name = items[index - 1].string {
                        pruned.append(Pruned(stream: stream, group: info.name, consumer: name, idleMilliseconds: items[index].int ?? 0))
                    }
                    index += 2
                }
            }
        }
        return pruned
    }
}
