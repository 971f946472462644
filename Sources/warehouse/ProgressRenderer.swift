import Foundation
#if canImport(Glibc)
import Glibc
#endif
import StreamRuntime

/// Shows replay progress: a redrawn bar with rows/s and ETA on a terminal, a log line every five
/// seconds otherwise (stderr either way, so stdout stays machine-readable).
final class ProgressRenderer: @unchecked Sendable {
    // @unchecked: every mutable property is guarded by `lock`.
    private let lock = NSLock()
    private let enabled: Bool
    private let terminal = isatty(STDERR_FILENO) == 1
    private var lastLog = Date.distantPast
    private var drewBar = false

    init(enabled: Bool) {
        self.enabled = enabled
    }

    func show(_ progress: Replayer.Progress) {
        guard enabled else { return }
        lock.lock(); defer { lock.unlock() }
        let line: String
        switch progress {
        case .reading(let file, let rows):
            line = "reading \(file): \(rows) rows"
        case .publishing(let done, let total, let rate):
            let fraction = total > 0 ? Double(done) / Double(total) : 1
            let eta = rate > 0 ? Double(total - done) / rate : 0
            if terminal {
                let width = 30
                let filled = Int(fraction * Double(width))
                line = "publishing [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
                    + String(format: "%3.0f%%  %d/%d  %.0f events/s  ETA %d:%02d", fraction * 100, done, total, rate, Int(eta) / 60, Int(eta) % 60)
            } else {
                line = String(format: "publishing: %d/%d rows (%.0f%%), %.0f events/s, ETA %.0f s", done, total, fraction * 100, rate, eta)
            }
        case .throttled(let group, let lag, let limit):
            line = "paused by back-pressure: group \(group) lags \(lag) entries (limit \(limit)); waiting for it to catch up"
        }
        if terminal {
            FileHandle.standardError.write(Data(("\r\u{1B}[2K" + line).utf8))
            drewBar = true
        } else if Date().timeIntervalSince(lastLog) >= 5 {
            lastLog = Date()
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    func finish() {
        lock.lock(); defer { lock.unlock() }
        if drewBar { FileHandle.standardError.write(Data("\n".utf8)) }
        drewBar = false
    }
}
