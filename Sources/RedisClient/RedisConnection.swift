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
    /// Set when the server is a node of a Redis Cluster: its map and a connection per node.
    var cluster: ClusterState?
    private var backoff: ReconnectBackoff
    /// How many times the connection was (re)established; 1 after `init`.
    public private(set) var connects = 0
    /// How many times this connection saw the server side change under it: a lost connection
    /// (the server restarted, or a cluster node failed), or a MOVED (a slot now served elsewhere,
    /// as after a failover). Redis replicates asynchronously, so writes a primary acknowledged may
    /// be missing from its successor: a writer that keeps state in memory compares this before
    /// and after its commits and, when it moved, reads its state again from Redis.
    public internal(set) var topologyChanges = 0

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
    /// On a cluster, into every primary's (a script may run in any slot).
    public func load(_ script: RedisScript) async throws {
        var batch = RedisCommandBuffer()
        batch.append("SCRIPT", "LOAD", script.source)
        for (node, replies) in try await sendToEachPrimary(batch) {
            let reply = try replies[0].throwingServerError()
            guard reply.string == script.sha1 else {
                throw RedisError(.unexpectedReply, "SCRIPT LOAD on \(node) returned \(reply), expected \(script.sha1)")
            }
        }
    }

    // MARK: - The C layer (runs on `thread`)

    /// Reconnects if needed, waiting out the backoff after a failed attempt.
    func ensureConnected() async throws {
        if box != nil { return }
        if let cluster {
            if cluster.stale || ContinuousClock.now - cluster.refreshedAt >= configuration.topologyRefresh {
                do {
                    try refreshTopology()
                } catch {
                    backoff.recordFailure()
                    throw error
                }
            }
            return
        }
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
        cluster = nil
        var failures: [String] = []
        for seed in configuration.seeds {
            let candidate: RedisContextBox
            do {
                candidate = try openContext(host: seed.host, port: seed.port, selectDatabase: true)
            } catch let error as RedisError where error.code == .connection || error.code == .timeout {
                failures.append(error.message)
                continue
            }
            // Cluster mode is detected, not configured: a node of a cluster answers CLUSTER SLOTS
            // with its map, a standalone server with an error.
            let reply = try exchangeWith(candidate.context, "CLUSTER", "SLOTS")
            if case .array = reply, let state = ClusterState(slots: reply, askedHost: seed.host) {
                let address = ClusterRouting.address(host: seed.host, port: seed.port)
                if state.primaries.contains(address) { state.nodes[address] = candidate }
                cluster = state
            } else {
                box = candidate
            }
            backoff.reset()
            connects += 1
            return
        }
        throw RedisError(.connection, failures.count == 1 ? failures[0] : "no seed node answered: " + failures.joined(separator: "; "))
    }

    /// Connects to one node and runs the handshake (AUTH, and SELECT when asked).
    func openContext(host: String, port: Int, selectDatabase: Bool) throws -> RedisContextBox {
        let config = configuration
        guard let context = redisConnectWithTimeout(host, Int32(port), timeval(config.connectTimeout)) else {
            throw RedisError(.connection, "cannot allocate a hiredis context")
        }
        let candidate = RedisContextBox(context)
        if context.pointee.err != 0 {
            throw RedisError(.connection, "cannot connect to \(ClusterRouting.address(host: host, port: port)): \(errorText(context))")
        }
        redisSetTimeout(context, timeval(config.socketTimeout))
        redisEnableKeepAlive(context)
        // Keep the read buffer between replies (hiredis frees it past 16 KiB when empty, and
        // large stream reads would reallocate it every time).
        context.pointee.reader?.pointee.maxbuf = 0
        var handshake: [[String]] = []
        if let password = config.password {
            handshake.append(config.username.map { ["AUTH", $0, password] } ?? ["AUTH", password])
        }
        if selectDatabase && config.database != 0 {
            handshake.append(["SELECT", String(config.database)])
        }
        for command in handshake {
            if case .error(let message) = try exchangeWith(context, command) {
                // The server's words first, so its error prefix (WRONGPASS, NOAUTH) still says what happened.
                throw RedisError(.server, "\(message) (handshake with \(config.redactedURL))")
            }
        }
        return candidate
    }

    /// One command on a context not yet in use (connecting, reading the slot map).
    private func exchangeWith(_ context: UnsafeMutablePointer<redisContext>, _ arguments: String...) throws -> RedisReply {
        try exchangeWith(context, arguments)
    }

    private func exchangeWith(_ context: UnsafeMutablePointer<redisContext>, _ arguments: [String]) throws -> RedisReply {
        var batch = RedisCommandBuffer()
        batch.append(arguments)
        let appended = batch.bytes.withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(context, $0.baseAddress, $0.count) }
        }
        var raw: UnsafeMutableRawPointer?
        guard appended == REDIS_OK, redisGetReply(context, &raw) == REDIS_OK, let raw else {
            throw RedisError(.connection, "\(arguments[0]) failed: \(errorText(context))")
        }
        defer { freeReplyObject(raw) }
        return RedisReply(converting: raw.assumingMemoryBound(to: redisReply.self))
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
        if batch.isEmpty { return [] }
        if let cluster { return try clusterRoundTrip(batch, cluster, blockingFor: block, decode: decode) }
        guard let context = box?.context else {
            throw RedisError(.connection, "not connected to \(configuration.redactedURL)")
        }
        if configuration.replicaAcknowledgements > 0 {
            var waiting = batch
            waiting.append(bytes: Self.waitCommand(configuration))
            return try exchange(waiting, on: context, blockingFor: block) {
                let results = try readReplies(batch.count, on: context, decode: decode)
                let acknowledged = try readReplies(1, on: context) { RedisReply(converting: $0) }[0]
                try Self.checkReplicas(acknowledged, configuration, node: ClusterRouting.address(host: configuration.host, port: configuration.port))
                return results
            }
        }
        return try exchange(batch, on: context, blockingFor: block) {
            try readReplies(batch.count, on: context, decode: decode)
        }
    }

    /// Reads `count` replies and decodes each with `decode`.
    func readReplies<T>(
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

    /// `WAIT n timeout` for `configuration`'s durability setting.
    static func waitCommand(_ configuration: RedisConfiguration) -> [[UInt8]] {
        [Array("WAIT".utf8), Array(String(configuration.replicaAcknowledgements).utf8),
         Array(String(max(1, configuration.replicaTimeout.milliseconds)).utf8)]
    }

    /// Throws unless the WAIT reply counts enough replicas.
    static func checkReplicas(_ reply: RedisReply, _ configuration: RedisConfiguration, node: String) throws {
        guard let count = reply.int, count >= configuration.replicaAcknowledgements else {
            throw RedisError(.connection, "\(node): only \(reply.int.map(String.init) ?? "\(reply)") of the \(configuration.replicaAcknowledgements) "
                             + "replica(s) asked for acknowledged the writes within \(configuration.replicaTimeout.milliseconds) ms")
        }
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
        if let cluster { return try clusterStreamRoundTrip(batch, cluster, blockingFor: block) }
        guard let context = box?.context, let reader = context.pointee.reader else {
            throw RedisError(.connection, "not connected to \(configuration.redactedURL)")
        }
        return try exchange(batch, on: context, blockingFor: block) {
            try readStreamReply(on: context, reader: reader) { dropConnection($0) }
        }
    }

    /// Reads one stream-read reply into `flat` through the flat object functions.
    func readStreamReply(
        on context: UnsafeMutablePointer<redisContext>, reader: UnsafeMutablePointer<redisReader>,
        failing fail: (UnsafeMutablePointer<redisContext>) -> RedisError
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
        guard status == REDIS_OK, raw != nil else { throw fail(context) }
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
        let error = connectionError(context, node: ClusterRouting.address(host: configuration.host, port: configuration.port))
        box = nil
        topologyChanges += 1
        backoff.reset()
        return error
    }

    /// The error a failed hiredis call on `context` (a connection to `node`) stands for.
    func connectionError(_ context: UnsafeMutablePointer<redisContext>, node: String) -> RedisError {
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
        return RedisError(code, "\(node): \(text.isEmpty ? "connection lost" : text)")
    }

    func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
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
