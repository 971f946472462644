import Foundation

/// A failure the CLI reports as one line on stderr, exiting 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Prints a JSON-serialisable value on one line, keys sorted.
func printJSON(_ value: Any) {
    guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]) else {
        print("{}")
        return
    }
    print(String(decoding: data, as: UTF8.self))
}

/// Prints an `Encodable` value as one line of JSON, keys sorted.
func printEncodedJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// An `Encodable` value as the JSON object (or array) it encodes to, keys sorted when printed, for
/// output that adds keys to it or nests it.
func encodedObject(_ value: some Encodable) throws -> Any {
    try JSONSerialization.jsonObject(with: JSONEncoder().encode(value))
}

/// A whole number with thousands separators, right-aligned in `width` columns.
func grouped(_ value: Double, width: Int = 10) -> String {
    let text = String(Int(value.rounded()))
    var out = ""
    for (index, character) in text.reversed().enumerated() {
        if index > 0 && index % 3 == 0 && character != "-" { out.append(",") }
        out.append(character)
    }
    let number = String(out.reversed())
    return String(repeating: " ", count: max(0, width - number.count)) + number
}

/// "35d", "12h", "30m", "180s", "250ms" or a number of seconds, as a duration.
func parseDurationText(_ text: String) -> Duration? {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
    for (suffix, seconds) in units where text.hasSuffix(suffix) {
        guard let number = Double(text.dropLast(suffix.count)), number.isFinite, number >= 0 else { continue }
        return .milliseconds(Int64((number * seconds * 1000).rounded()))
    }
    guard let number = Double(text), number.isFinite, number >= 0 else { return nil }
    return .milliseconds(Int64((number * 1000).rounded()))
}
