/// The one error type of the Redis client.
///
/// `code` tells apart where a failure came from: a server error reply (its first word, such as
/// `OOM`, `READONLY` or `NOPERM`, says which), a connection error or timeout (the next call
/// reconnects), a protocol error, a configuration error. What a caller does about each is the
/// caller's decision (the pipeline's `FailureClass`).
public struct RedisError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case server, connection, timeout, protocolError, configuration, unexpectedReply
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The server answered with an error reply (`-ERR …`, `-NOSCRIPT …`, `-BUSYGROUP …`).
        public static let server = Code(.server)
        /// The connection could not be made or was lost (refused, reset, closed by the server).
        public static let connection = Code(.connection)
        /// The socket timed out waiting for the server.
        public static let timeout = Code(.timeout)
        /// hiredis could not parse what the server sent.
        public static let protocolError = Code(.protocolError)
        /// The URL or the options are unusable.
        public static let configuration = Code(.configuration)
        /// The server's reply did not have the shape the command expects.
        public static let unexpectedReply = Code(.unexpectedReply)

        public var description: String {
            switch base {
            case .server: "server"
            case .connection: "connection"
            case .timeout: "timeout"
            case .protocolError: "protocol"
            case .configuration: "configuration"
            case .unexpectedReply: "unexpected reply"
            }
        }
    }

    public var code: Code
    /// A human-readable message. Never holds a password.
    public var message: String
    /// Where it was thrown.
    public var file: String
    public var line: Int

    public init(_ code: Code, _ message: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.file = file
        self.line = line
    }

    /// For server errors, the first word of the reply (`ERR`, `NOSCRIPT`, `BUSYGROUP`, `WRONGTYPE`).
    public var serverErrorPrefix: String? {
        guard code == .server else { return nil }
        return message.split(separator: " ", maxSplits: 1).first.map(String.init)
    }

    public var description: String { "Redis \(code) error: \(message)" }
}
