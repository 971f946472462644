public import RedisClient
public import ServiceLifecycle
import Contract
import RedisWire

/// Retention: trims each stream (XTRIM MINID) to the oldest entry some consumer group still needs —
/// its oldest pending entry, or the first one after its last delivered — so nothing not yet
/// delivered to every group, or still pending, is ever removed. Each stream is trimmed by one
/// script, so no group can move between the reading and the trim. A stream is left alone until
/// every group in `requiredGroups` exists on it (a group created later would start from entries
/// already gone). `retention` keeps consumed entries that long on top (for debugging, re-reading).
public struct StreamTrimmer: Sendable {
    public var requiredGroups: [String]
    public var retention: Duration

    public init(requiredGroups: [String] = ["warehouse", "kpi"], retention: Duration = .zero) {
        self.requiredGroups = requiredGroups
        self.retention = retention
    }

    public struct Result: Sendable, Equatable {
        public var stream: String
        /// Entries removed (0 when nothing could go).
        public var removed: Int
        /// The MINID used, or why the stream was skipped.
        public var keptFrom: String?
        public var skipped: String?
    }

    static let script = RedisScript("""
        local function parse(id)
          local dash = string.find(id, '-', 1, true)
          return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
        end
        local function less(a, b)
          local am, as = parse(a)
          local bm, bs = parse(b)
          return am < bm or (am == bm and as < bs)
        end
        if redis.call('EXISTS', KEYS[1]) == 0 then return {0, '', 'no stream'} end
        local present = {}
        local keep = nil
        for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
          local name, last, pending
          for i = 1, #group, 2 do
            local field = group[i]
            if field == 'name' then name = group[i + 1]
            elseif field == 'last-delivered-id' then last = group[i + 1]
            elseif field == 'pending' then pending = group[i + 1] end
          end
          present[name] = true
          local need
          if pending > 0 then
            need = redis.call('XPENDING', KEYS[1], name)[2]
          else
            local ms, seq = parse(last)
            need = string.format('%d-%d', ms, seq + 1)
          end
          if keep == nil or less(need, keep) then keep = need end
        end
        for i = 2, #ARGV do
          if not present[ARGV[i]] then return {0, '', 'group ' .. ARGV[i] .. ' does not exist yet'} end
        end
        if keep == nil then return {0, '', 'no consumer group'} end
        if ARGV[1] ~= '' and less(ARGV[1], keep) then keep = ARGV[1] end
        return {redis.call('XTRIM', KEYS[1], 'MINID', keep), keep, ''}
        """)

    /// Trims one stream; `now` in milliseconds since the epoch (for the retention floor).
    public func trim(_ stream: String, on redis: RedisConnection, nowMilliseconds: Int64) async throws -> Result {
        var floor = ""
        if retention > .zero {
            floor = "\(max(0, nowMilliseconds - retention.milliseconds))-0"
        }
        let reply = try await redis.run(Self.script, keys: [stream], arguments: [floor] + requiredGroups).throwingServerError()
        guard let parts = reply.array, parts.count == 3, let removed = parts[0].int else {
            throw RedisError(.unexpectedReply, "the trim script returned \(reply)")
        }
        let keptFrom = parts[1].string.flatMap { $0.isEmpty ? nil : $0 }
        let skipped = parts[2].string.flatMap { $0.isEmpty ? nil : $0 }
        return Result(stream: stream, removed: removed, keptFrom: keptFrom, skipped: skipped)
    }

    /// Trims every stream.
    public func trim(_ streams: [String], on redis: RedisConnection) async throws -> [Result] {
        let now = Timestamp.now.milliseconds
        var results: [Result] = []
        for stream in streams { results.append(try await trim(stream, on: redis, nowMilliseconds: now)) }
        return results
    }
}

/// Retention as a Service: trims `streams` every `every` until a graceful shutdown. A failed pass
/// is logged and tried again at the next one (trimming is never urgent, and never unsafe).
public struct StreamTrimmerService: Service {
    public let trimmer: StreamTrimmer
    public let streams: [String]
    public let every: Duration
    public let url: String
    let log: @Sendable (String) -> Void

    public init(trimmer: StreamTrimmer, streams: [String], every: Duration, url: String, log: @escaping @Sendable (String) -> Void) {
        self.trimmer = trimmer
        self.streams = streams
        self.every = every
        self.url = url
        self.log = log
    }

    public func run() async throws {
        var redis: RedisConnection?
        while !ConsumerGroupRunner.stopping {
            do { try await ConsumerGroupRunner.pause(every) } catch { return }
            do {
                if redis == nil { redis = try await RedisConnection(url: url) }
                let removed = try await trimmer.trim(streams, on: redis!).reduce(0) { $0 + $1.removed }
                if removed > 0 { log("trimmed \(removed) entries every group has consumed") }
            } catch {
                redis = nil
                log("trimming failed (\(error)); retrying later")
            }
        }
    }
}
