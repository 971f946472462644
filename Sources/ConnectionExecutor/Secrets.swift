/// Hides credentials in connection strings before they reach a message or a log: the one rule
/// every client and command uses.
public enum Secrets {
    /// `text` with every password-like value replaced by `***`:
    /// - the password of a URL's user info (`scheme://user:***@host`);
    /// - URL query parameters and keyword settings (`key=value`, space-separated, value quoted or
    ///   not) whose key names a secret: `password`, `sslpassword`, `passwd`, `pass`, `secret`, `token`,
    ///   `sslkey` and the like, in any case.
    public static func redact(_ text: String) -> String {
        var out = redactUserInfo(text)
        out = redactSettings(out)
        return out
    }

    static func isSecret(_ key: some StringProtocol) -> Bool {
        let key = key.lowercased()
        return ["password", "passwd", "pass", "pwd", "secret", "token", "apikey", "api_key", "auth", "sslpassword", "sslkey"]
            .contains { key == $0 || key.hasSuffix($0) || key.hasSuffix("_" + $0) }
    }

    /// Every `scheme://user:password@` in `text` becomes `scheme://user:***@`.
    private static func redactUserInfo(_ text: String) -> String {
        var out = ""
        var rest = Substring(text)
        while let scheme = schemeSeparator(in: rest) {
            out += rest[..<scheme]
            rest = rest[scheme...]
            // The authority ends at the first '/', '?', '#' or whitespace; its user info at its last '@'.
            let authorityEnd = rest.firstIndex { "/?# \t\n".contains($0) } ?? rest.endIndex
            let authority = rest[..<authorityEnd]
            if let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") {
                out += authority[..<colon] + ":***" + authority[at...]
            } else {
                out += authority
            }
            rest = rest[authorityEnd...]
        }
        return out + rest
    }

    /// Where what follows the first `://` in `text` starts.
    private static func schemeSeparator(in text: Substring) -> Substring.Index? {
        var index = text.startIndex
        while index < text.endIndex {
            if text[index...].hasPrefix("://") { return text.index(index, offsetBy: 3) }
            index = text.index(after: index)
        }
        return nil
    }

    /// `key=value` pairs whose key names a secret, in a query string (`?a=1&password=x`) or a
    /// keyword string (`host=h password='x y'`).
    private static func redactSettings(_ text: String) -> String {
        var out = ""
        var index = text.startIndex
        while index < text.endIndex {
            guard let equals = text[index...].firstIndex(of: "=") else { break }
            // The key: the run of key characters just before '='.
            var keyStart = equals
            while keyStart > index, let previous = Optional(text[text.index(before: keyStart)]),
                  previous.isLetter || previous.isNumber || previous == "_" || previous == "-" {
                keyStart = text.index(before: keyStart)
            }
            let key = text[keyStart..<equals]
            let valueStart = text.index(after: equals)
            guard !key.isEmpty, isSecret(key) else {
                out += text[index..<valueStart]
                index = valueStart
                continue
            }
            out += text[index..<valueStart] + "***"
            var valueEnd = valueStart
            if valueStart < text.endIndex, text[valueStart] == "'" || text[valueStart] == "\"" {
                let quote = text[valueStart]
                valueEnd = text.index(after: valueStart)
                while valueEnd < text.endIndex, text[valueEnd] != quote {
                    if text[valueEnd] == "\\" { valueEnd = text.index(after: valueEnd); if valueEnd == text.endIndex { break } }
                    valueEnd = text.index(after: valueEnd)
                }
                if valueEnd < text.endIndex { valueEnd = text.index(after: valueEnd) }
            } else {
                while valueEnd < text.endIndex, !"&# \t\n;,)".contains(text[valueEnd]) { valueEnd = text.index(after: valueEnd) }
            }
            index = valueEnd
        }
        return out + text[index...]
    }
}
