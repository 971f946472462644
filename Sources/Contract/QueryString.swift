/// A URL query string's parameters (`top=5&low_stock=10`, percent-encoded, `+` for a space), and
/// the dashboard API's rule for an integer option. Pure, and fuzzed (`scripts/fuzz.sh query`).
public enum QueryString {
    /// The parameters in order; a name without `=` has an empty value. Bytes that do not decode
    /// (a bad `%` escape, or not UTF-8 once decoded) are kept as they were written.
    public static func parameters(_ query: String) -> [(name: String, value: String)] {
        query.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }

    /// The value of the first parameter called `name`.
    public static func value(_ query: String?, _ name: String) -> String? {
        guard let query else { return nil }
        return parameters(query).first { $0.name == name }?.value
    }

    /// An integer option: `defaultValue` when absent, else a number in `range`, or a message for a 400.
    public static func int(_ query: String?, _ name: String, default defaultValue: Int, range: ClosedRange<Int>) -> Result<Int, Invalid> {
        guard let text = value(query, name) else { return .success(defaultValue) }
        guard let number = Int(text), range.contains(number) else {
            let shown = text.count > 40 ? String(text.prefix(40)) + "…" : text
            return .failure(Invalid(message: "\(name): '\(shown)' is not an integer in \(range.lowerBound)...\(range.upperBound)"))
        }
        return .success(number)
    }

    public struct Invalid: Error, Equatable {
        public var message: String
    }

    static func decode(_ text: Substring) -> String {
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) else { return String(text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var index = text.utf8.startIndex
        let utf8 = text.utf8
        while index < utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "+") {
                bytes.append(32)
            } else if byte == UInt8(ascii: "%"),
                      let first = utf8.index(index, offsetBy: 1, limitedBy: utf8.endIndex), first < utf8.endIndex,
                      let second = utf8.index(first, offsetBy: 1, limitedBy: utf8.endIndex), second < utf8.endIndex,
                      let high = hex(utf8[first]), let low = hex(utf8[second]) {
                bytes.append(high << 4 | low)
                index = second
            } else {
                bytes.append(byte)
            }
            index = utf8.index(after: index)
        }
        return String(validating: bytes, as: UTF8.self) ?? String(text)
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
