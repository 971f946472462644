/// The state of a consumer's dependency, as a circuit breaker sees it: closed (working), open
/// (failing: calls wait for a cool-down before the next probe) or half-open (probing after the
/// cool-down). Pure: the runner feeds it outcomes and asks how long to wait.
public struct CircuitBreaker: Sendable, Equatable {
    public enum State: String, Sendable, Equatable { case closed, open, halfOpen = "half_open" }

    public private(set) var state: State = .closed
    /// Transient failures in a row.
    public private(set) var failures = 0
    /// Failures in a row that open the circuit.
    public let threshold: Int
    /// The longest wait between probes while open.
    public let maximumCoolDown: Duration

    public init(threshold: Int = 3, maximumCoolDown: Duration = .seconds(10)) {
        precondition(threshold >= 1)
        self.threshold = threshold
        self.maximumCoolDown = maximumCoolDown
    }

    /// Records a transient failure; returns how long to wait before trying again (exponential
    /// from 100 ms, capped at `maximumCoolDown`, with jitter on the upper half) and whether this
    /// failure opened the circuit.
    public mutating func recordFailure() -> (wait: Duration, opened: Bool) {
        failures += 1
        let opened = state == .closed && failures >= threshold
        if failures >= threshold { state = .open }
        let base = Duration.milliseconds(100) * (1 << min(failures - 1, 16))
        let capped = min(base, maximumCoolDown)
        return (capped / 2 + capped / 2 * Double.random(in: 0...1), opened)
    }

    /// Before a retry while open: the next call is a probe.
    public mutating func probe() {
        if state == .open { state = .halfOpen }
    }

    /// Records a success; returns true when it closed an open (or half-open) circuit.
    public mutating func recordSuccess() -> Bool {
        let closed = state != .closed
        state = .closed
        failures = 0
        return closed
    }
}
