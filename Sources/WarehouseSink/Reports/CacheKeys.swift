public import Contract
/// The keys of the analytics cache (`{cache}` slot): the generation the warehouse loader
/// increments after each commit, one entry per report, and the hit and miss counts.
public struct CacheKeys: Sendable {
    public let namespace: String
    public init(layout: StreamLayout) { self.namespace = layout.namespace }

    public var generation: String { "\(namespace):{cache}:generation" }
    public var stats: String { "\(namespace):{cache}:stats" }
    public func entry(_ report: String) -> String { "\(namespace):{cache}:analytics:\(report)" }
}
