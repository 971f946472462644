public import Contract
/// Maps event time onto wall time for `replay --speed N`: the first event sets the origin, and an
/// event at event time `t` is due at `origin.wall + (t − origin.event) / N`. `--speed max` never waits.
public struct Pacer: Sendable {
    /// Event seconds per wall second; nil for as fast as possible.
    public let speed: Double?
    private var origin: (event: Timestamp, wall: ContinuousClock.Instant)?

    public init(speed: Double?) {
        precondition(speed.map { $0 > 0 } ?? true, "speed must be positive")
        self.speed = speed
    }

    /// How long to wait before publishing an event at `eventTime`, when the clock reads `now`.
    public mutating func delay(for eventTime: Timestamp, now: ContinuousClock.Instant) -> Duration {
        guard let speed else { return .zero }
        guard let origin else {
            self.origin = (eventTime, now)
            return .zero
        }
        let eventMicros = Double(eventTime.microseconds - origin.event.microseconds)
        let due = origin.wall + .microseconds(Int64(eventMicros / speed))
        return due > now ? due - now : .zero
    }

    /// Starts pacing afresh from the next event (after a pause, so the paced schedule does not
    /// rush to make up the time spent waiting).
    public mutating func reset() { origin = nil }

    /// Parses `max` or a positive number (`3600`, `0.5`).
    public static func parseSpeed(_ text: String) -> Double?? {
        if text.lowercased() == "max" { return .some(nil) }
        guard let value = Double(text), value > 0, value.isFinite else { return nil }
        return .some(value)
    }
}
