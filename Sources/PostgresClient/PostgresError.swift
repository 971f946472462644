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

    /// The SQLSTATE behind a failed connection attempt, read from libpq's message (libpq gives no
    /// code for an attempt that never got a session): wrong credentials or an unknown database
    /// must not look like a server that is merely down. Nil when the message names no such cause.
    public static func connectionState(_ message: String) -> String? {
        let rules: [(text: String, state: String)] = [
            ("password authentication failed", "28P01"),
            ("no pg_hba.conf entry", "28000"),
            ("role \"", "28000"),                      // role "x" does not exist
            ("database \"", "3D000"),                  // database "x" does not exist
            ("authentication", "28000"),                // other authentication failures
            ("the database system is starting up", "57P03"),
            ("the database system is shutting down", "57P03"),
            ("the database system is in recovery mode", "57P03"),
            ("too many clients", "53300"),
            ("remaining connection slots are reserved", "53300"),
        ]
        for rule in rules where message.contains(rule.text) {
            if rule.text.hasSuffix("\"") && !message.contains("does not exist") { continue }
            return rule.state
        }
        return nil
    }

    public var description: String {
        var text = "PostgreSQL \(code) error"
        if let sqlState { text += " [\(sqlState)]" }
        text += ": \(message)"
        if let constraint { text += " (constraint \(constraint))" }
        return text
    }
}
