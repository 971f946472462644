/// The one error type of the PostgreSQL client.
///
/// `description` never prints SQL text, parameter values, `DETAIL` lines (which can quote row
/// values) or passwords; `detail` is kept for callers that decide to show it.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable { case server, connection, protocolError, configuration, decoding }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The server rejected a statement (it carries a SQLSTATE).
        public static let server = Code(.server)
        /// The connection could not be made or was lost.
        public static let connection = Code(.connection)
        /// libpq returned something the client did not expect.
        public static let protocolError = Code(.protocolError)
        /// The URL or the options are unusable.
        public static let configuration = Code(.configuration)
        /// A value could not be read as the type asked for.
        public static let decoding = Code(.decoding)

        public var description: String {
            switch base {
            case .server: "server"
            case .connection: "connection"
            case .protocolError: "protocol"
            case .configuration: "configuration"
            case .decoding: "decoding"
            }
        }
    }

    public var code: Code
    /// The five-character SQLSTATE, for server errors (and some connection errors).
    public var sqlState: String?
    /// The primary message. Never holds a password or a parameter value.
    public var message: String
    /// The server's DETAIL line; may quote row values, so it is not part of `description`.
    public var detail: String?
    /// The constraint that was violated, when the server names one.
    public var constraint: String?
    public var file: String
    public var line: Int

    public init(
        _ code: Code, _ message: String, sqlState: String? = nil, detail: String? = nil, constraint: String? = nil,
        file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.constraint = constraint
        self.file = file
        self.line = line
    }

    /// True for failures worth retrying after a pause: a lost connection, a serialization failure
    /// (40001), a deadlock (40P01), an administrator shutdown or a server not accepting connections
    /// yet (57P0x), too many connections (53300), and connection exceptions (class 08).
    public var isTransient: Bool {
        if code == .connection { return true }
        guard let sqlState else { return false }
        return Self.transientStates.contains(sqlState) || sqlState.hasPrefix("08")
    }

    static let transientStates: Set<String> = ["40001", "40P01", "57P01", "57P02", "57P03", "53300", "55P03"]

    public var description: String {
        var text = "PostgreSQL \(code) error"
        if let sqlState { text += " [\(sqlState)]" }
        text += ": \(message)"
        if let constraint { text += " (constraint \(constraint))" }
        return text
    }
}
