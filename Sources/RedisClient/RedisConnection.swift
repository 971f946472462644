import CHiredis
#if canImport(Glibc)
import Glibc
#endif
public import RedisWire
import ConnectionExecutor

/// Owns a hiredis context and frees it when dropped. Never leaves its connection's thread.
final class RedisContextBox {
    let context: UnsafeMutablePointer<redisContext>
    init(_ context: UnsafeMutablePointer<redisContext>) { self.context = context }
    deinit { redisFree(context) }
}

/// One connection to Redis, with async methods over hiredis.
///
/// Every hiredis call runs on the connection's own thread (`ConnectionThread`), never on Swift's
/// cooperative pool, so a `BLOCK` read ties up nothing but this connection. Methods are
/// batch-shaped: send many commands with `send(_:)` and read all their replies in one `await`.
///
/// A lost connection surfaces as a `RedisError` with code `.connection` (or `.timeout`); the next
/// call reconnects, pausing with exponential backoff and jitter after failed attempts.
/// One task at a time should use a connection (as with a connection lent by a pool).
public actor RedisConnection {
    /// The configuration this connection was made with.
    public nonisolated let configuration: RedisConfiguration
    private nonisolated let thread: ConnectionThread
    private var box: RedisContextBox?
    private var backoff: ReconnectBackoff
    /// How many times the connection was (re)established; 1 after `init`.
    public private(set) var connects = 0

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        thread.asUnownedSerialExecutor()
    }

    /// hiredis writes with write(2), which raises SIGPIPE when the server has closed the socket
    /// (a restart, a failover, a proxy cutting the connection), and SIGPIPE's default action ends
    /// the process. A process that uses this client ignores it once: the write then fails with
    /// EPIPE, which is an ordinary connection error that the caller retries.
    private static let pipeSignalIgnored: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    /// Connects now; throws if the server cannot be reached or rejects the credentials.
    public init(configuration: RedisConfiguration) async throws {
        _ = Self.pipeSignalIgnored
        self.configuration = configuration
        self.thread = ConnectionThread(name: "redis-conn")
        self.backoff = ReconnectBackoff(maximum: configuration.maximumReconnectDelay)
        // From here on the initializer runs on `thread`: connecting blocks only it.
        try connectNow()
    }

    /// Connects to a `redis://` URL.
    public init(url: String) async throws {
        try await self.init(configuration: RedisConfiguration(url: url))
    }

    deinit {
        thread.shutdown()
    }

    /// Closes the socket. The next call connects again.
    public func close() {
        box = nil
    }

    // MARK: - Commands

    /// Sends every command of `batch` in one write and returns one reply per command, in order.
    /// Error replies are returned as `.error` values, not thrown.
    public func send(_ batch: RedisCommandBuffer) async throws -> [RedisReply] {
        try await ensureConnected()
        return try roundTrip(batch) { RedisReply(converting: $0) }
    }

    /// Sends every command of `batch` and returns only the error replies, by position: for large
    /// write pipelines (XADD, HSET) whose replies are not needed, without converting each one.
    public func sendReturningErrors(_ batch: RedisCommandBuffer) async throws -> [(index: Int, message: String)] {
        try await ensureConnected()
        let errors = try roundTrip(batch) { reply -> String? in
            reply.pointee.type == REDIS_REPLY_ERROR ? replyString(reply) : nil
        }
        return errors.enumerated().compactMap { item in item.element.map { (item.offset, $0) } }
    }

    /// Sends one command; an error reply is thrown as a `RedisError` with code `.server`.
    public func command(_ arguments: [String]) async throws -> RedisReply {
        var batch = RedisCommandBuffer()
        batch.append(arguments)
        return try await single(batch)
    }

    /// Sends one command; an error reply is thrown as a `RedisError` with code `.server`.
    public func command(_ arguments: String...) async throws -> RedisReply {
        try await command(arguments)
    }

    /// Sends one command of binary arguments.
    public func command(bytes arguments: [[UInt8]]) async throws -> RedisReply {
        var batch = RedisCommandBuffer()
        batch.append(bytes: arguments)
        return try await single(batch)
    }

    /// Sends one prepared command (a buffer holding exactly one) and throws its error reply.
    public func single(_ batch: RedisCommandBuffer) async throws -> RedisReply {
        precondition(batch.count == 1, "single() takes exactly one command")
        try await ensureConnected()
        return try roundTrip(batch) { RedisReply(converting: $0) }[0].throwingServerError()
    }

    // MARK: - Scripts

    /// Runs `script` with `EVALSHA`, loading it with `SCRIPT LOAD` first when the server does not
    /// have it (after a restart or `SCRIPT FLUSH`).
    public func run(_ script: RedisScript, keys: [String] = [], arguments: [String] = []) async throws -> RedisReply {
        var batch = RedisCommandBuffer()
        batch.evalsha(script, keys: keys, arguments: arguments)
        try await ensureConnected()
        let reply = try roundTrip(batch) { RedisReply(converting: $0) }[0]
        if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
            try await load(script)
            return try await single(batch)
        }
        return try reply.throwingServerError()
    }

    /// Sends `batch`, whose script calls must be safe to run twice; when the server lacks `script`
    /// (a `NOSCRIPT` reply: a restart or `SCRIPT FLUSH` since it was loaded), loads it and sends
    /// the whole batch again.
    public func send(_ batch: RedisCommandBuffer, reloading script: RedisScript) async throws -> [RedisReply] {
        let replies = try await send(batch)
        guard replies.contains(where: { if case .error(let message) = $0 { message.hasPrefix("NOSCRIPT") } else { false } }) else {
            return replies
        }
        try await load(script)
        return try await send(batch)
    }

    /// Loads `script` into the server's script cache.
    public func load(_ script: RedisScript) async throws {
        let reply = try await command("SCRIPT", "LOAD", script.source)
        guard reply.string == script.sha1 else {
            throw RedisError(.unexpectedReply, "SCRIPT LOAD returned \(reply), expected \(script.sha1)")
        }
    }

    // MARK: - The C layer (runs on `thread`)

    /// Reconnects if needed, waiting out the backoff after a failed attempt.
    func ensureConnected() async throws {
        if box != nil { return }
        let wait = backoff.wait
        if wait > .zero {
            try await Task.sleep(for: wait)
            if box != nil { return }
        }
        do {
            try connectNow()
        } catch {
            backoff.recordFailure()
            throw error
        }
    }

    private func connectNow() throws {
        box = nil
        let config = configuration
        guard let context = redisConnectWithTimeout(config.host, Int32(config.port), timeval(config.connectTimeout)) else {
            throw RedisError(.connection, "cannot allocate a hiredis context")
        }
        let candidate = RedisContextBox(context)
        if context.pointee.err != 0 {
            throw RedisError(.connection, "cannot connect to \(config.host):\(config.port): \(errorText(context))")
        }
        redisSetTimeout(context, timeval(config.socketTimeout))
        redisEnableKeepAlive(context)
        // Keep the read buffer between replies (hiredis frees it past 16 KiB when empty, and
        // large stream reads would reallocate it every time).
        context.pointee.reader?.pointee.maxbuf = 0
        box = candidate
        var handshake = RedisCommandBuffer()
        if let password = config.password {
            if let username = config.username {
                handshake.append("AUTH", username, password)
            } else {
                handshake.append("AUTH", password)
            }
        }
        if config.database != 0 {
            handshake.append("SELECT", String(config.database))
        }
        if !handshake.isEmpty {
            let replies = try roundTrip(handshake) { RedisReply(converting: $0) }
            for reply in replies {
                if case .error(let message) = reply {
                    box = nil
                    // The server's words first, so its error prefix (WRONGPASS, NOAUTH) still says what happened.
                    throw RedisError(.server, "\(message) (handshake with \(config.redactedURL))")
                }
            }
        }
        backoff.reset()
        connects += 1
    }

    /// Writes `batch` and decodes one reply per command with `decode`.
    ///
    /// On a connection failure the context is dropped (hiredis errors are sticky) and the error
    /// thrown. If `decode` throws, the remaining replies are still read so the connection stays
    /// in step, and the first decode error is thrown.
    func roundTrip<T>(
        _ batch: RedisCommandBuffer,
        blockingFor block: Duration? = nil,
        decode: (UnsafeMutablePointer<redisReply>) throws -> T
    ) throws -> [T] {
        precondition(batch.isComplete, "a command in the batch is missing arguments")
        guard let context = box?.context else {
            throw RedisError(.connection, "not connected to \(configuration.redactedURL)")
        }
        if batch.isEmpty { return [] }
        return try exchange(batch, on: context, blockingFor: block) {
            try readReplies(batch.count, on: context, decode: decode)
        }
    }

    /// Reads `count` replies and decodes each with `decode`.
    private func readReplies<T>(
        _ count: Int, on context: UnsafeMutablePointer<redisContext>, decode: (UnsafeMutablePointer<redisReply>) throws -> T
    ) throws -> [T] {
        var results: [T] = []
        results.reserveCapacity(count)
        var decodeError: (any Error)?
        for _ in 0..<count {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
                throw dropConnection(context)
            }
            let reply = raw.assumingMemoryBound(to: redisReply.self)
            defer { freeReplyObject(raw) }
            if decodeError != nil { continue }
            do {
                results.append(try decode(reply))
            } catch {
                decodeError = error
            }
        }
        if let decodeError { throw decodeError }
        return results
    }

    /// The flat reply buffer of this connection's stream reads (reused: no growth after warm-up).
    private lazy var flat = FlatReply()

    /// The object functions, at a stable address for the reader to point at.
    nonisolated(unsafe) private static let flatFunctions: UnsafeMutablePointer<redisReplyObjectFunctions> = {
        let pointer = UnsafeMutablePointer<redisReplyObjectFunctions>.allocate(capacity: 1)
        pointer.initialize(to: FlatReply.functions)
        return pointer
    }()

    /// Writes one XREAD/XREADGROUP and decodes its reply through `FlatReply` (no reply tree).
    func streamRoundTrip(_ batch: RedisCommandBuffer, blockingFor block: Duration? = nil) throws -> [StreamRead] {
        precondition(batch.isComplete && batch.count == 1, "one stream read at a time")
        guard let context = box?.context, let reader = context.pointee.reader else {
            throw RedisError(.connection, "not connected to \(configuration.redactedURL)")
        }
        return try exchange(batch, on: context, blockingFor: block) { try readStreamReply(on: context, reader: reader) }
    }

    /// Reads one stream-read reply into `flat` through the flat object functions.
    private func readStreamReply(
        on context: UnsafeMutablePointer<redisContext>, reader: UnsafeMutablePointer<redisReader>
    ) throws -> [StreamRead] {
        let flat = self.flat
        flat.reset()
        let saved = (reader.pointee.fn, reader.pointee.privdata)
        reader.pointee.fn = Self.flatFunctions
        reader.pointee.privdata = Unmanaged.passUnretained(flat).toOpaque()
        var raw: UnsafeMutableRawPointer?
        let status = redisGetReply(context, &raw)
        if status != REDIS_OK {
            // A reply cut off part-way (the connection lost mid-read) leaves the reader holding
            // its half-built root object, which is the builder itself. The defaults restored below
            // would hand it to `freeReplyObject` when the context is freed, freeing a live Swift
            // object (heap corruption). Nothing of it needs freeing: forget it first.
            reader.pointee.reply = nil
        }
        // Restored before anything can free the context (and the reader with it).
        reader.pointee.fn = saved.0
        reader.pointee.privdata = saved.1
        guard status == REDIS_OK, raw != nil else { throw dropConnection(context) }
        return try flat.streamReads()
    }

    /// Writes `batch` on `context` and runs `read` for its replies, with the socket timeout
    /// widened by `block` (a blocking read) until `read` returns.
    private func exchange<R>(
        _ batch: RedisCommandBuffer, on context: UnsafeMutablePointer<redisContext>, blockingFor block: Duration?, _ read: () throws -> R
    ) throws -> R {
        if let block {
            redisSetTimeout(context, timeval(configuration.socketTimeout + block))
        }
        defer {
            if block != nil, let context = box?.context {
                redisSetTimeout(context, timeval(configuration.socketTimeout))
            }
        }
        let appended = batch.bytes.withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(context, $0.baseAddress, $0.count) }
        }
        guard appended == REDIS_OK else { throw dropConnection(context) }
        return try read()
    }

    private func dropConnection(_ context: UnsafeMutablePointer<redisContext>) -> RedisError {
        let code: RedisError.Code
        let err = context.pointee.err
        if err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ETIMEDOUT) {
            code = .timeout
        } else if err == REDIS_ERR_PROTOCOL {
            code = .protocolError
        } else {
            code = .connection
        }
        let text = errorText(context)
        box = nil
        backoff.reset()
        return RedisError(code, "\(configuration.host):\(configuration.port): \(text.isEmpty ? "connection lost" : text)")
    }

    private func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            let length = bytes.firstIndex(of: 0) ?? bytes.count
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[0..<length]), as: UTF8.self)
        }
    }
}

func timeval(_ duration: Duration) -> timeval {
    let (seconds, attoseconds) = duration.components
    return Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
}

extension RedisReply {
    /// Converts a hiredis reply tree into Swift values.
    init(converting reply: UnsafeMutablePointer<redisReply>) {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            self = .bulk(r.str.map { Array(UnsafeRawBufferPointer(start: $0, count: r.len)) } ?? [])
        case REDIS_REPLY_STATUS:
            self = .status(replyString(reply))
        case REDIS_REPLY_ERROR:
            self = .error(replyString(reply))
        case REDIS_REPLY_INTEGER:
            self = .integer(r.integer)
        case REDIS_REPLY_ARRAY:
            var elements: [RedisReply] = []
            elements.reserveCapacity(r.elements)
            for index in 0..<r.elements {
                if let element = r.element[index] {
                    elements.append(RedisReply(converting: element))
                } else {
                    elements.append(.null)
                }
            }
            self = .array(elements)
        default:
            self = .null
        }
    }
}

/// The text of a string, status or error reply ("" for anything else).
@inline(__always)
func replyString(_ reply: UnsafeMutablePointer<redisReply>) -> String {
    guard let str = reply.pointee.str else { return "" }
    return str.withMemoryRebound(to: UInt8.self, capacity: reply.pointee.len) {
        String(decoding: UnsafeBufferPointer(start: $0, count: reply.pointee.len), as: UTF8.self)
    }
}
