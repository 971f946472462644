import Foundation
public import RedisClient

/// The dead-letter stream: rows and events that could not be used, each with where it came from,
/// why, and the raw record, so an operator can see them and redrive them.
///
/// Appending the same reject twice (a second replay of the same file) is a no-op: a script adds
/// the entry only when its fingerprint is new to the companion set (both keys share a hash slot).
public struct DeadLetterQueue: Sendable {
    public let layout: StreamLayout

    public init(layout: StreamLayout) {
        self.layout = layout
    }

    /// Adds the entry (`fields[1…]`) unless an entry with the same fingerprint was added before.
    static let appendOnce = RedisScript("""
        if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
          return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
        end
        return false
        """)

    /// The fields of a replay reject.
    public static func fields(for rejection: Rejection, entity: Entity?, stage: String = "replay", at time: Timestamp = .now) -> [String] {
        [
            "source", "\(rejection.file):\(rejection.line)",
            "file", rejection.file,
            "line", String(rejection.line),
            "column", rejection.column ?? "",
            "code", rejection.code,
            "reason", rejection.reason,
            "raw", rejection.raw,
            "header", rejection.header,
            "entity", entity?.rawValue ?? "",
            "stage", stage,
            "rejected_at", time.description,
        ]
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
                    arguments: [Self.fingerprint(for: rejection)] + Self.fields(for: rejection, entity: entity))
            }
            var replies = try await redis.send(batch)
            if replies.contains(where: { if case .error(let message) = $0 { message.hasPrefix("NOSCRIPT") } else { false } }) {
                // The script cache was flushed (a restart, SCRIPT FLUSH) after the load above. The
                // script is idempotent, so sending the whole chunk again is safe.
                try await redis.load(Self.appendOnce)
                replies = try await redis.send(batch)
            }
            for reply in replies {
                switch reply {
                case .error(let message): throw RedisError(.server, message)
                case .bulk, .status: added += 1
                default: break
                }
            }
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
            for (name, value) in event.entry.pairs { object[name] = value }
            let raw = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
                .map { String(decoding: $0, as: UTF8.self) } ?? ""
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
            var hasher = EventIDHasher()
            hasher.combine(stage)
            hasher.combine(event.stream)
            hasher.combine(event.entry.id.description)
            batch.evalsha(Self.appendOnce, keys: [layout.deadLetterKey, layout.deadLetterSeenKey],
                          arguments: [hasher.finalize().description] + fields)
        }
        var replies = try await redis.send(batch)
        if replies.contains(where: { if case .error(let message) = $0 { message.hasPrefix("NOSCRIPT") } else { false } }) {
            try await redis.load(Self.appendOnce)
            replies = try await redis.send(batch)
        }
        for reply in replies {
            if case .error(let message) = reply { throw RedisError(.server, message) }
        }
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

    public func stats(on redis: RedisConnection) async throws -> Stats {
        var stats = Stats(total: 0, byFile: [:], byReason: [:])
        var start = "-"
        while true {
            let page = try await redis.xrange(layout.deadLetterKey, start: start, count: 1000)
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
