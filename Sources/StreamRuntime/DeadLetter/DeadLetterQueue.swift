import Foundation
import Synchronization
public import RedisClient
public import Contract
public import RedisWire

/// The dead-letter stream: rows and events that could not be used, each with where it came from,
/// why, and the raw record, so an operator can see them and redrive them.
///
/// Appending the same reject twice (a second replay of the same file) is a no-op: a script adds
/// the entry only when its fingerprint is new to the companion set (both keys share a hash slot).
///
/// Bounded: at its cap (`DeadLetterPolicy.cap`) an append drops the oldest entries first, and
/// their fingerprints from the set (each entry carries its own), with a warning and
/// `warehouse_dead_letters_dropped_total`. Private: columns named in
/// `DeadLetterPolicy.maskedColumns` reach it as `***`.
public struct DeadLetterQueue: Sendable {
    public let layout: StreamLayout
    public var policy: DeadLetterPolicy { layout.deadLetters }

    public init(layout: StreamLayout) {
        self.layout = layout
    }

    /// Adds the entry (`fields` from ARGV[3]) unless an entry with the same fingerprint (ARGV[1])
    /// was added before; first drops the oldest entries while the stream holds `cap` (ARGV[2],
    /// 0: no cap) or more. Returns false for a duplicate, else {id, entries dropped}.
    static let appendOnce = RedisScript("""
        if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return false end
        local cap = tonumber(ARGV[2])
        local dropped = 0
        if cap > 0 then
          local excess = redis.call('XLEN', KEYS[1]) - cap + 1
          if excess > 0 then
            for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', excess)) do
              local fields = entry[2]
              for i = 1, #fields, 2 do
                if fields[i] == 'fingerprint' then redis.call('SREM', KEYS[2], fields[i + 1]) end
              end
              redis.call('XDEL', KEYS[1], entry[1])
              dropped = dropped + 1
            end
          end
        end
        local id = redis.call('XADD', KEYS[1], '*', 'fingerprint', ARGV[1], unpack(ARGV, 3))
        return {id, dropped}
        """)

    /// Counts an append's reply: true when an entry was added; drops are counted and warned about.
    private func added(_ reply: RedisReply, dropped: inout Int) throws -> Bool {
        switch reply {
        case .error(let message): throw RedisError(.server, message)
        case .array(let parts):
            dropped += parts.count > 1 ? (parts[1].int ?? 0) : 0
            return true
        case .bulk, .status: return true
        default: return false
        }
    }

    private func reportDropped(_ dropped: Int) {
        guard dropped > 0 else { return }
        PipelineMetrics.deadLettersDropped(dropped)
        DeadLetterQueue.warnings.warn(
            "warning: the dead-letter stream \(layout.deadLetterKey) is at its cap of \(policy.cap) entries: dropped the \(dropped) oldest (raise --dead-letter-cap, or redrive or remove entries)")
    }

    static let warnings = RateLimitedWarning(every: .seconds(10))

    /// The longest raw copy of a record kept in an entry; a longer one is cut (at a character
    /// boundary) and the entry says how long it was (`raw_bytes`), so one huge row cannot make the
    /// dead-letter stream huge.
    public static let maxRawBytes = 64 * 1024

    /// `raw` cut to `maxRawBytes`, and its full length when it was cut.
    static func bounded(_ raw: String) -> (String, [String]) {
        let bytes = raw.utf8.count
        guard bytes > maxRawBytes else { return (raw, []) }
        var end = raw.utf8.index(raw.utf8.startIndex, offsetBy: maxRawBytes)
        while end > raw.startIndex, raw.utf8[end] & 0xC0 == 0x80 { end = raw.utf8.index(before: end) }
        return (String(raw[..<end]), ["raw_bytes", String(bytes)])
    }

    /// The fields of a replay reject (masked by `policy`).
    public static func fields(
        for rejection: Rejection, entity: Entity?, stage: String = "replay", at time: Timestamp = .now, policy: DeadLetterPolicy = DeadLetterPolicy()
    ) -> [String] {
        let rejection = policy.masked(rejection)
        let (raw, cut) = bounded(rejection.raw)
        return [
            "source", "\(rejection.file):\(rejection.line)",
            "file", rejection.file,
            "line", String(rejection.line),
            "column", rejection.column ?? "",
            "code", rejection.code,
            "reason", rejection.reason,
            "raw", raw,
            "header", rejection.header,
            "entity", entity?.rawValue ?? "",
            "stage", stage,
            "rejected_at", time.description,
        ] + cut
    }

    /// A stable fingerprint of a reject: where it came from and what it held.
    public static func fingerprint(for rejection: Rejection) -> String {
        var hasher = EventIDHasher()
        hasher.combine(rejection.file)
        hasher.combine(String(rejection.line))
        hasher.combine(rejection.raw)
        hasher.combine(rejection.code)
        return hasher.finalize().description
    }

    /// Appends the rejects (pipelined); returns how many were new.
    @discardableResult
    public func append(_ rejections: [(Rejection, Entity?)], on redis: RedisConnection) async throws -> Int {
        guard !rejections.isEmpty else { return 0 }
        try await redis.load(Self.appendOnce)
        var added = 0
        for chunk in stride(from: 0, to: rejections.count, by: 500) {
            var batch = RedisCommandBuffer()
            for (rejection, entity) in rejections[chunk..<min(chunk + 500, rejections.count)] {
                batch.evalsha(
                    Self.appendOnce, keys: [layout.deadLetterKey, layout.deadLetterSeenKey],
                    arguments: [Self.fingerprint(for: rejection), String(policy.cap)] + Self.fields(for: rejection, entity: entity, policy: policy))
            }
            // The script is idempotent, so a chunk sent again after a flushed script cache is safe.
            let replies = try await redis.send(batch, reloading: Self.appendOnce)
            var dropped = 0
            for reply in replies where try self.added(reply, dropped: &dropped) { added += 1 }
            reportDropped(dropped)
        }
        return added
    }

    /// Dead-letters stream entries a consumer could not use (bad data, or poison after too many
    /// deliveries), with the stream, the entry id, the reason and the entry's fields as JSON.
    public func appendEvents(
        _ events: [(stream: String, entry: StreamEntry, reason: String, deliveries: Int?)], stage: String, on redis: RedisConnection
    ) async throws {
        guard !events.isEmpty else { return }
        try await redis.load(Self.appendOnce)
        var batch = RedisCommandBuffer()
        for event in events {
            var object: [String: String] = [:]
            for (name, value) in event.entry.pairs { object[name] = policy.maskedColumns.contains(name) ? DeadLetterPolicy.mask : value }
            let (raw, cut) = Self.bounded((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
                .map { String(decoding: $0, as: UTF8.self) } ?? "")
            let entity = layout.parse(streamKey: event.stream)?.entity
            var fields = [
                "source", "\(event.stream)/\(event.entry.id)",
                "stream", event.stream,
                "entry_id", event.entry.id.description,
                "file", entity?.fileName ?? "",
                "line", event.entry["source"].flatMap { $0.split(separator: ":").last.map(String.init) } ?? "",
                "code", event.deliveries == nil ? "unloadable" : "poison",
                "reason", event.reason,
                "raw", raw,
                "entity", entity?.rawValue ?? "",
                "stage", stage,
                "rejected_at", Timestamp.now.description,
            ]
            if let deliveries = event.deliveries { fields += ["deliveries", String(deliveries)] }
            fields += cut
            var hasher = EventIDHasher()
            hasher.combine(stage)
            hasher.combine(event.stream)
            hasher.combine(event.entry.id.description)
            batch.evalsha(Self.appendOnce, keys: [layout.deadLetterKey, layout.deadLetterSeenKey],
                          arguments: [hasher.finalize().description, String(policy.cap)] + fields)
        }
        let replies = try await redis.send(batch, reloading: Self.appendOnce)
        var dropped = 0
        for reply in replies { _ = try added(reply, dropped: &dropped) }
        reportDropped(dropped)
    }

    /// Counts by file and by rule.
    public struct Stats: Sendable, Codable, Equatable {
        public var total: Int
        public var byFile: [String: Int]
        public var byReason: [String: Int]

        enum CodingKeys: String, CodingKey {
            case total
            case byFile = "by_file"
            case byReason = "by_reason"
        }
    }

    /// Counts by file and by reason of the entries dead-lettered in [`since`, `until`) (wall-clock
    /// milliseconds; an entry's id is the time it was dead-lettered), or of all of them.
    public func stats(on redis: RedisConnection, sinceMilliseconds: Int64? = nil, untilMilliseconds: Int64? = nil) async throws -> Stats {
        var stats = Stats(total: 0, byFile: [:], byReason: [:])
        var start = sinceMilliseconds.map { "\(max(0, $0))-0" } ?? "-"
        // Exclusive: an entry dead-lettered exactly at `until` belongs to the next window.
        let end = untilMilliseconds.map { "(\(max(0, $0))-0" } ?? "+"
        if let sinceMilliseconds, let untilMilliseconds, untilMilliseconds <= sinceMilliseconds { return stats }
        while true {
            let page = try await redis.xrange(layout.deadLetterKey, start: start, end: end, count: 1000)
            for entry in page {
                stats.total += 1
                stats.byFile[entry["file"] ?? "?", default: 0] += 1
                stats.byReason[entry["code"] ?? "?", default: 0] += 1
            }
            guard let last = page.last, page.count == 1000 else { break }
            start = "(" + last.id.description
        }
        return stats
    }

    /// Entries oldest first, from `start` (exclusive when it starts with `(`).
    public func list(on redis: RedisConnection, start: String = "-", count: Int = 50) async throws -> [StreamEntry] {
        try await redis.xrange(layout.deadLetterKey, start: start, count: count)
    }

    /// One entry by id.
    public func entry(_ id: StreamID, on redis: RedisConnection) async throws -> StreamEntry? {
        try await redis.xrange(layout.deadLetterKey, start: id.description, end: id.description, count: 1).first
    }
}


/// A warning printed on stderr at most once per interval (the metric counts every drop; the log says it once per interval).
final class RateLimitedWarning: Sendable {
    private let every: Duration
    private let last = Mutex<ContinuousClock.Instant?>(nil)

    init(every: Duration) { self.every = every }

    func warn(_ message: String) {
        let now = ContinuousClock.now
        let due = last.withLock { last in
            if let previous = last, now - previous < every { return false }
            last = now
            return true
        }
        if due { FileHandle.standardError.write(Data((message + "\n").utf8)) }
    }
}
