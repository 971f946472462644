import ArgumentParser
import Foundation
import Pipeline

/// How events are laid out in Redis: shared by every command that reads or writes streams.
struct StreamOptions: ParsableArguments {
    @Option(help: "Key prefix of every stream and key (default: $WAREHOUSE_NAMESPACE, else sw).")
    var namespace: String?

    var resolvedNamespace: String {
        if let namespace, !namespace.isEmpty { return namespace }
        return ProcessInfo.processInfo.environment["WAREHOUSE_NAMESPACE"].flatMap { $0.isEmpty ? nil : $0 } ?? StreamLayout.defaultNamespace
    }

    func layout(partitions: Int = 1) -> StreamLayout {
        StreamLayout(namespace: resolvedNamespace, partitions: partitions)
    }
}
