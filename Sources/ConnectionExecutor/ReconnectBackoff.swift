/// When a connection may try to connect again: at once after it was lost, then after pauses that
/// double from 50 ms up to `maximum`, with jitter on the upper half so that many clients do not
/// retry in step. A value type kept by each connection actor.
public struct ReconnectBackoff: Sendable {
    public let maximum: Duration
    private var failures = 0
    private var nextAttempt: ContinuousClock.Instant?

    public init(maximum: Duration = .seconds(2)) {
        self.maximum = maximum
    }

    /// How long to wait before the next attempt (zero when it may go now).
    public var wait: Duration {
        guard let nextAttempt else { return .zero }
        let remaining = nextAttempt - .now
        return remaining > .zero ? remaining : .zero
    }

    /// The pause after `failures` failed attempts in a row.
    public func delay(afterFailures failures: Int) -> Duration {
        let base = Duration.milliseconds(50) * (1 << min(max(failures, 1) - 1, 10))
        let capped = min(base, maximum)
        return capped / 2 + capped / 2 * Double.random(in: 0...1)
    }

    public mutating func recordFailure() {
        failures += 1
        nextAttempt = .now + delay(afterFailures: failures)
    }

    /// After a success, or when an established connection is lost: the next attempt goes at once.
    public mutating func reset() {
        failures = 0
        nextAttempt = nil
    }
}
