import CLibPQ
import ConnectionExecutor

/// Owns a libpq connection and closes it when dropped. Never leaves its connection's thread.
final class PGConnectionBox {
    let connection: OpaquePointer
    /// The statements prepared on this session: SQL text → statement name. A new session (a
    /// reconnect) starts with none, as the server does.
    var statements: [String: String] = [:]
    init(_ connection: OpaquePointer) { self.connection = connection }
    deinit { PQfinish(connection) }
}

/// Owns a libpq result and frees it when dropped.
final class PGResultBox {
    let result: OpaquePointer
    init(_ result: OpaquePointer) { self.result = result }
    deinit { PQclear(result) }
}

/// One connection to PostgreSQL, with async methods over libpq.
///
/// Every libpq call runs on the connection's own thread (`ConnectionThread`), never on Swift's
/// cooperative pool. Statements take bind parameters (`$1`, `$2`, …), never values spliced into
/// SQL. A lost connection surfaces as a `PostgresError` with code `.connection`; the next call
/// connects again (pausing with backoff after failed attempts). One task at a time should use a
/// connection.
public actor PostgresConnection {
    /// A `postgresql://` URL or a libpq keyword string (`host=… dbname=…`).
    public nonisolated let connectionString: String
    /// How long connecting may take.
    public nonisolated let connectTimeout: Duration
    private nonisolated let thread: ConnectionThread
    private var box: PGConnectionBox?
    private var backoff = ReconnectBackoff()
    private var transactionDepth = 0
    /// How many times the connection was (re)established; 1 after `init`.
    public private(set) var connects = 0
    /// Whether statements with parameters are prepared once per session and executed by name.
    public private(set) var preparesStatements = false
    /// Statements prepared per session at most (past it, the rest run unprepared).
    public static let preparedStatementLimit = 256

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        thread.asUnownedSerialExecutor()
    }

    /// Connects now; throws if the server cannot be reached or rejects the credentials.
    public init(_ connectionString: String, connectTimeout: Duration = .seconds(5)) async throws {
        self.connectionString = connectionString
        self.connectTimeout = connectTimeout
        self.thread = ConnectionThread(name: "pg-conn")
        // From here on the initializer runs on `thread`.
        try connectNow()
    }

    deinit {
        thread.shutdown()
    }

    /// Closes the connection. The next call connects again.
    public func close() {
        box = nil
    }

    /// Prepare each statement with parameters once per session (`PQprepare`) and run it by name
    /// after (`PQexecPrepared`): the server parses and analyses it once, and after five runs may
    /// keep a generic plan. For a connection that runs the same statements over and over (a
    /// loader); the statements must not depend on a search_path changed with SET afterwards.
    public func setPreparesStatements(_ on: Bool) {
        preparesStatements = on
    }

    /// The server process id of this connection (for `pg_terminate_backend` and logs).
    public func backendPID() async throws -> Int32 {
        try await ensureConnected()
        return PQbackendPID(try handle())
    }

    // MARK: - Statements

    /// Runs one statement with bind parameters and returns its rows.
    @discardableResult
    public func query(_ sql: String, _ parameters: [PostgresBind] = []) async throws -> PostgresRows {
        try await ensureConnected()
        return try runQuery(sql, parameters)
    }

    /// Runs one statement and returns how many rows it touched.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [PostgresBind] = []) async throws -> Int {
        try await query(sql, parameters).affectedRows
    }

    /// Runs one or more statements without parameters (simple query protocol): for migrations and DDL.
    public func executeScript(_ sql: String) async throws {
        try await ensureConnected()
        let connection = try handle()
        let result = try resultOrThrow(PQexec(connection, sql), connection)
        _ = result
        // PQexec returns the last result only; drain any leftovers (none expected).
        while let extra = PQgetResult(connection) { PQclear(extra) }
    }

    /// Runs `body` in a transaction: COMMIT when it returns, ROLLBACK when it throws.
    ///
    /// `body` runs isolated to this connection, so its statements go straight to the connection's
    /// thread. Nested calls use savepoints.
    public func withTransaction<T: Sendable>(
        _ body: @Sendable (isolated PostgresConnection) async throws -> T
    ) async throws -> T {
        try await ensureConnected()
        let depth = transactionDepth
        let savepoint = "sw_savepoint_\(depth)"
        _ = try runQuery(depth == 0 ? "BEGIN" : "SAVEPOINT \(savepoint)", [])
        transactionDepth += 1
        defer { transactionDepth = depth }
        do {
            let value = try await body(self)
            _ = try runQuery(depth == 0 ? "COMMIT" : "RELEASE SAVEPOINT \(savepoint)", [])
            return value
        } catch {
            if box != nil {
                _ = try? runQuery(depth == 0 ? "ROLLBACK" : "ROLLBACK TO SAVEPOINT \(savepoint)", [])
            }
            throw error
        }
    }

    /// True while a `withTransaction` body runs.
    public var inTransaction: Bool { transactionDepth > 0 }

    // MARK: - COPY

    /// Runs `COPY … FROM STDIN` and sends `data` (in the format the statement names; see
    /// `PostgresCopyEncoder` for the text format) in chunks. Returns the rows copied.
    @discardableResult
    public func copyIn(_ sql: String, data: [UInt8], chunkSize: Int = 256 * 1024) async throws -> Int {
        try await copyIn(sql, chunks: [data], chunkSize: chunkSize)
    }

    /// Like `copyIn(_:data:)` with the data already split into pieces.
    @discardableResult
    public func copyIn(_ sql: String, chunks: [[UInt8]], chunkSize: Int = 256 * 1024) async throws -> Int {
        try await ensureConnected()
        let connection = try handle()
        guard let start = PQexec(connection, sql) else { throw dropConnection(connection) }
        let startResult = PGResultBox(start)
        guard PQresultStatus(start) == PGRES_COPY_IN else {
            _ = try resultOrThrow(startResult, connection)
            throw PostgresError(.protocolError, "statement did not start COPY FROM STDIN")
        }
        var failure: PostgresError?
        outer: for chunk in chunks {
            var offset = 0
            while offset < chunk.count {
                let length = min(chunkSize, chunk.count - offset)
                let sent = chunk.withUnsafeBufferPointer { buffer in
                    buffer.baseAddress!.advanced(by: offset).withMemoryRebound(to: CChar.self, capacity: length) {
                        PQputCopyData(connection, $0, Int32(length))
                    }
                }
                if sent != 1 {
                    failure = dropConnection(connection)
                    break outer
                }
                offset += length
            }
        }
        if let failure { throw failure }
        guard PQputCopyEnd(connection, nil) == 1 else { throw dropConnection(connection) }
        var copied = 0
        var firstError: (any Error)?
        // A failure that lost the connection frees it (`resultOrThrow` drops the box): never ask the
        // freed handle for another result.
        while box?.connection == connection, let next = PQgetResult(connection) {
            let result = PGResultBox(next)
            do {
                let rows = try resultOrThrow(result, connection)
                copied = rows.affectedRows
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        if let firstError { throw firstError }
        return copied
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

    private func handle() throws -> OpaquePointer {
        guard let connection = box?.connection else {
            throw PostgresError(.connection, "not connected")
        }
        return connection
    }

    private func connectNow() throws {
        box = nil
        transactionDepth = 0
        let seconds = max(1, Int(connectTimeout.components.seconds))
        // Our defaults come first; what the connection string says wins (`expand_dbname`).
        let keywords = ["application_name", "connect_timeout", "dbname"]
        let values = ["streamwarehouse", String(seconds), connectionString]
        let connection = withCStrings(keywords) { keywordPointers in
            withCStrings(values) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let connection else { throw PostgresError(.connection, "cannot allocate a libpq connection") }
        let candidate = PGConnectionBox(connection)
        guard PQstatus(connection) == CONNECTION_OK else {
            // libpq quotes the connection string back in some messages (a URI it cannot parse),
            // password and all.
            let message = Secrets.redact(Self.errorMessage(connection))
            throw PostgresError(.connection, "cannot connect: \(message)", sqlState: PostgresError.connectionState(message))
        }
        // Notices (`… already exists, skipping`) are not errors; keep them off stderr.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        box = candidate
        backoff.reset()
        connects += 1
    }

    func runQuery(_ sql: String, _ parameters: [PostgresBind]) throws -> PostgresRows {
        let connection = try handle()
        // All parameter values live in one buffer, NUL-terminated, with offsets into it.
        var storage: [UInt8] = []
        var offsets: [Int] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        var types: [UInt32] = []
        offsets.reserveCapacity(parameters.count)
        for parameter in parameters {
            switch parameter {
            case .null:
                offsets.append(-1); lengths.append(0); formats.append(0); types.append(0)
            case .text(let text):
                offsets.append(storage.count)
                storage.append(contentsOf: text.utf8)
                storage.append(0)
                lengths.append(0); formats.append(0); types.append(0)
            case .bytea(let bytes):
                offsets.append(storage.count)
                storage.append(contentsOf: bytes)
                storage.append(0)
                lengths.append(Int32(bytes.count)); formats.append(1); types.append(17)
            case .array(let elements):
                offsets.append(storage.count)
                PostgresBind.appendArrayLiteral(elements, to: &storage)
                storage.append(0)
                lengths.append(0); formats.append(0); types.append(0)
            }
        }
        let name = preparesStatements && !parameters.isEmpty ? try preparedName(sql, types: types, on: connection) : nil
        let raw = storage.withUnsafeBufferPointer { buffer -> OpaquePointer? in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                var pointers: [UnsafePointer<CChar>?] = offsets.map { $0 < 0 ? nil : UnsafePointer(chars.baseAddress! + $0) }
                if let name {
                    return PQexecPrepared(connection, name, Int32(parameters.count), &pointers, lengths, formats, 0)
                }
                return PQexecParams(connection, sql, Int32(parameters.count), types, &pointers, lengths, formats, 0)
            }
        }
        return try resultOrThrow(raw, connection)
    }

    /// The name `sql` is prepared under on this session, preparing it the first time (nil once the
    /// session holds `preparedStatementLimit` statements). The types are those of the first run's
    /// parameters (0: the server infers them), as PQexecParams would use them.
    private func preparedName(_ sql: String, types: [UInt32], on connection: OpaquePointer) throws -> String? {
        guard let box else { return nil }
        if let name = box.statements[sql] { return name }
        guard box.statements.count < Self.preparedStatementLimit else { return nil }
        let name = "sw_\(box.statements.count + 1)"
        _ = try resultOrThrow(PQprepare(connection, name, sql, Int32(types.count), types), connection)
        box.statements[sql] = name
        return name
    }

    private func resultOrThrow(_ raw: OpaquePointer?, _ connection: OpaquePointer) throws -> PostgresRows {
        guard let raw else { throw dropConnection(connection) }
        return try resultOrThrow(PGResultBox(raw), connection)
    }

    private func resultOrThrow(_ box: PGResultBox, _ connection: OpaquePointer) throws -> PostgresRows {
        let result = box.result
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return Self.rows(result)
        case PGRES_COPY_IN, PGRES_COPY_OUT, PGRES_COPY_BOTH:
            return PostgresRows(columns: [], rows: [], affectedRows: 0)
        default:
            let sqlState = Self.field(result, "C")
            let message = Self.field(result, "M") ?? Self.errorMessage(connection)
            let error = PostgresError(
                PQstatus(connection) == CONNECTION_OK ? .server : .connection,
                message,
                sqlState: sqlState,
                detail: Self.field(result, "D"),
                constraint: Self.field(result, "n")
            )
            if PQstatus(connection) != CONNECTION_OK { dropConnectionState() }
            throw error
        }
    }

    private func dropConnection(_ connection: OpaquePointer) -> PostgresError {
        let message = Self.errorMessage(connection)
        dropConnectionState()
        return PostgresError(.connection, message.isEmpty ? "connection lost" : message)
    }

    private func dropConnectionState() {
        box = nil
        transactionDepth = 0
        backoff.reset()
    }

    private static func rows(_ result: OpaquePointer) -> PostgresRows {
        let fieldCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        var columns: [PostgresColumn] = []
        columns.reserveCapacity(fieldCount)
        for field in 0..<fieldCount {
            columns.append(PostgresColumn(name: String(cString: PQfname(result, Int32(field))), typeOID: PQftype(result, Int32(field))))
        }
        let index = ColumnIndex(columns)
        var rows: [PostgresRow] = []
        rows.reserveCapacity(rowCount)
        for row in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(fieldCount)
            for field in 0..<fieldCount {
                if PQgetisnull(result, Int32(row), Int32(field)) == 1 {
                    values.append(nil)
                } else {
                    let length = Int(PQgetlength(result, Int32(row), Int32(field)))
                    let pointer = PQgetvalue(result, Int32(row), Int32(field))!
                    values.append(pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
                        String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
                    })
                }
            }
            rows.append(PostgresRow(values: values, index: index))
        }
        let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        return PostgresRows(columns: columns, rows: rows, affectedRows: affected)
    }

    private static func field(_ result: OpaquePointer, _ code: Unicode.Scalar) -> String? {
        PQresultErrorField(result, Int32(code.value)).map { String(cString: $0) }
    }

    private static func errorMessage(_ connection: OpaquePointer) -> String {
        guard let text = PQerrorMessage(connection) else { return "" }
        return String(cString: text).trimmingWhitespace()
    }
}

/// Calls `body` with a C array of C strings that stays valid for the call.
private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    var storage: [UInt8] = []
    var offsets: [Int] = []
    for string in strings {
        offsets.append(storage.count)
        storage.append(contentsOf: string.utf8)
        storage.append(0)
    }
    return storage.withUnsafeBufferPointer { buffer in
        buffer.withMemoryRebound(to: CChar.self) { chars in
            var pointers: [UnsafePointer<CChar>?] = offsets.map { UnsafePointer(chars.baseAddress! + $0) }
            pointers.append(nil)
            return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        return String(scalars)
    }
}
