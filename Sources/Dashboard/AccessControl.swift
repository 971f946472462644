public import Foundation
import Hummingbird
import HTTPTypes

/// Who may read a listener (the dashboard, or a `--metrics-port` endpoint): everyone on loopback;
/// off loopback, only a request carrying the token of `WAREHOUSE_AUTH_TOKEN`, as
/// `Authorization: Bearer TOKEN` (Prometheus, scripts) or as the password of HTTP basic auth with
/// any user name (a browser's own prompt, which also covers the page's server-sent events).
///
/// `/health` and `/ready` stay open, for probes. A listener bound to any address other than
/// loopback refuses to start without a token; a token that is set is required on loopback too.
/// Tokens are compared in constant time.
public struct AccessControl: Sendable {
    /// The environment variable holding the token.
    public static let variable = "WAREHOUSE_AUTH_TOKEN"
    /// The shortest token accepted (a guessable one would make the check decorative).
    public static let minimumLength = 16
    /// Paths answered without credentials.
    public static let openPaths: Set<String> = ["/health", "/ready"]

    public struct Refusal: Error, CustomStringConvertible {
        public let description: String
    }

    let token: [UInt8]?

    public var required: Bool { token != nil }

    public init(token: String?) {
        self.token = token.map { Array($0.utf8) }
    }

    /// The rule for a listener on `host`, from `environment`: throws when the host is not loopback
    /// and no token is set, or when the token is too short.
    public static func forListener(host: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> AccessControl {
        let token = environment[variable].flatMap { $0.isEmpty ? nil : $0 }
        if let token, token.utf8.count < minimumLength {
            throw Refusal(description: "\(variable) must be at least \(minimumLength) characters (openssl rand -hex 32 makes one)")
        }
        if token == nil && !isLoopback(host) {
            throw Refusal(description: "binding \(host) serves other hosts: set \(variable) (a bearer token, at least \(minimumLength) characters; openssl rand -hex 32 makes one) so that only holders of it read the page, API, events and metrics, or bind 127.0.0.1")
        }
        return AccessControl(token: token)
    }

    /// 127.0.0.0/8, ::1 and localhost.
    public static func isLoopback(_ host: String) -> Bool {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if bare == "localhost" || bare == "::1" || bare == "0:0:0:0:0:0:0:1" { return true }
        let octets = bare.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.first == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    /// Whether an `Authorization` header value carries the token.
    public func admits(_ authorization: String?) -> Bool {
        guard let token else { return true }
        guard let authorization else { return false }
        let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2 else { return false }
        let scheme = parts[0].lowercased(), value = parts[1].trimmingCharacters(in: .whitespaces)
        switch scheme {
        case "bearer":
            return Self.constantTimeEqual(Array(value.utf8), token)
        case "basic":
            guard let decoded = Data(base64Encoded: value), let colon = decoded.firstIndex(of: UInt8(ascii: ":")) else { return false }
            return Self.constantTimeEqual(Array(decoded[(colon + 1)...]), token)
        default:
            return false
        }
    }

    /// Equal bytes, in a time that depends only on the lengths (not on where they differ).
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        if a.count != b.count { difference |= 1 }
        for index in 0..<max(a.count, b.count) {
            let x = index < a.count ? a[index] : 0
            let y = index < b.count ? b[index] : 0
            difference |= x ^ y
        }
        return difference == 0
    }
}

/// Answers 401 (with a challenge a browser turns into a login prompt) to every request but
/// `/health` and `/ready` that does not carry the token.
struct AccessControlMiddleware<Context: RequestContext>: RouterMiddleware {
    let access: AccessControl

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if !access.required || AccessControl.openPaths.contains(request.uri.path) || access.admits(request.headers[.authorization]) {
            return try await next(request, context)
        }
        var headers = HTTPFields()
        headers[.wwwAuthenticate] = #"Basic realm="StreamWarehouse", charset="UTF-8""#
        headers.append(HTTPField(name: .wwwAuthenticate, value: #"Bearer realm="StreamWarehouse""#))
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: .unauthorized, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"error":"unauthorized: send Authorization: Bearer <WAREHOUSE_AUTH_TOKEN>"}"#)))
    }
}
