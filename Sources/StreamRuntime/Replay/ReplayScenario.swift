import Foundation
import Contract

/// A named replay scenario (`replay/NAME.scenario`): `key = value` lines, `#` comments.
///
/// Keys: `data` (folder, relative to the scenario file), `speed` (`max` or N), `from`, `to`
/// (ISO-8601), `partitions`, `duplicate_rate` (0–1), `shuffle_window` (events), `seed`.
public struct ReplayScenario: Sendable, Equatable {
    public var name: String
    public var data: String?
    public var speed: String?
    public var from: String?
    public var to: String?
    public var partitions: Int?
    public var duplicateRate: Double?
    public var shuffleWindow: Int?
    public var seed: UInt64?

    public static let keys = ["data", "speed", "from", "to", "partitions", "duplicate_rate", "shuffle_window", "seed"]

    /// Reads a scenario from a path, or by name from a `replay/` folder (`history` → `replay/history.scenario`).
    public static func load(_ nameOrPath: String, searchFolder: String = "replay") throws -> ReplayScenario {
        var path = nameOrPath
        if !FileManager.default.fileExists(atPath: path) {
            path = (searchFolder as NSString).appendingPathComponent(nameOrPath.hasSuffix(".scenario") ? nameOrPath : nameOrPath + ".scenario")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ContractError("no scenario \(nameOrPath) (looked for \(nameOrPath) and \(path))")
        }
        var scenario = try parse(String(decoding: data, as: UTF8.self), name: ((path as NSString).lastPathComponent as NSString).deletingPathExtension, file: path)
        if let folder = scenario.data, !folder.hasPrefix("/") {
            scenario.data = (((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(folder) as NSString).standardizingPath
        }
        return scenario
    }

    public static func parse(_ text: String, name: String, file: String = "scenario") throws -> ReplayScenario {
        var scenario = ReplayScenario(name: name)
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)?.trimmingSpaces() ?? ""
            if line.isEmpty { continue }
            let parts = line.split(separator: "=", maxSplits: 1).map { String($0).trimmingSpaces() }
            guard parts.count == 2, !parts[1].isEmpty else {
                throw ContractError("\(file):\(number + 1): expected key = value")
            }
            let (key, value) = (parts[0], parts[1])
            func bad(_ what: String) -> ContractError { ContractError("\(file):\(number + 1): \(key) must be \(what)") }
            switch key {
            case "data": scenario.data = value
            case "speed":
                guard Pacer.parseSpeed(value) != nil else { throw bad("max or a positive number") }
                scenario.speed = value
            case "from":
                guard Timestamp(iso8601: value) != nil else { throw bad("an ISO-8601 timestamp") }
                scenario.from = value
            case "to":
                guard Timestamp(iso8601: value) != nil else { throw bad("an ISO-8601 timestamp") }
                scenario.to = value
            case "partitions":
                guard let n = Int(value), n >= 1 else { throw bad("a positive integer") }
                scenario.partitions = n
            case "duplicate_rate":
                guard let rate = Double(value), rate >= 0, rate <= 1 else { throw bad("between 0 and 1") }
                scenario.duplicateRate = rate
            case "shuffle_window":
                guard let n = Int(value), n >= 0 else { throw bad("a non-negative integer") }
                scenario.shuffleWindow = n
            case "seed":
                guard let n = UInt64(value) else { throw bad("a non-negative integer") }
                scenario.seed = n
            default:
                throw ContractError("\(file):\(number + 1): unknown key \(key) (known: \(keys.joined(separator: ", ")))")
            }
        }
        return scenario
    }
}
