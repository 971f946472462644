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
