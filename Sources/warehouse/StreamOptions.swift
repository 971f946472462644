import ArgumentParser
import Foundation
import Contract
import RedisClient
import StreamRuntime

/// How events are laid out in Redis: shared by every command that reads or writes streams.
struct StreamOptions: ParsableArguments {
    @Option(help: "Key prefix of every stream and key (default: $WAREHOUSE_NAMESPACE, else sw).")
    var namespace: String?

    var resolvedNamespace: String {
        if let namespace, !namespace.isEmpty { return namespace }
        return ProcessInfo.processInfo.environment["WAREHOUSE_NAMESPACE"].flatMap { $0.isEmpty ? nil : $0 } ?? StreamLayout.defaultNamespace
    }

    @Option(help: "Entries the dead-letter stream keeps at most; past it the oldest are dropped, with a warning and a metric (0: no cap; default $WAREHOUSE_DEAD_LETTER_CAP, else 1000000).")
    var deadLetterCap: Int?

    @Option(help: "Columns never copied into the dead-letter stream, comma-separated (their values show as ***; default $WAREHOUSE_DEAD_LETTER_MASK).")
    var deadLetterMask: String?

    /// The layout recorded for the namespace (`LayoutRegistry`): `partitions` is the command's
    /// `--partitions` (nil when not given), checked against the record; `record` writes the record
    /// when there is none (the commands that write or consume).
    func layout(partitions: Int?, record: Bool, command: String, on redis: RedisConnection) async throws -> StreamLayout {
        try await LayoutRegistry.resolve(layout(), requested: partitions, record: record, by: command, on: redis)
    }

    func layout(partitions: Int = 1) -> StreamLayout {
        var layout = StreamLayout(namespace: resolvedNamespace, partitions: partitions)
        let environment = ProcessInfo.processInfo.environment
        let cap = deadLetterCap ?? environment["WAREHOUSE_DEAD_LETTER_CAP"].flatMap(Int.init) ?? DeadLetterPolicy.defaultCap
        let mask = (deadLetterMask ?? environment["WAREHOUSE_DEAD_LETTER_MASK"] ?? "")
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
        layout.deadLetters = DeadLetterPolicy(cap: cap, maskedColumns: Set(mask))
        return layout
    }
}
