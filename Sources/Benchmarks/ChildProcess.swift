import Foundation
#if canImport(Glibc)
import Glibc
#endif
import RedisWire

/// A process a benchmark starts (`posix_spawn`), with its stdout and stderr in files, reaped
/// with `wait4` so its peak resident set (`ru_maxrss`) is known exactly. Waiting polls with
/// WNOHANG and sleeps between polls: nothing blocks Swift's cooperative threads.
struct ChildProcess: Sendable {
    struct Exit: Sendable {
        var status: Int32
        var peakRSSMegabytes: Double
        var seconds: Double
        var succeeded: Bool { status == 0 }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let pid: pid_t
    let name: String
    let stdoutPath: String
    let stderrPath: String
    let started: ContinuousClock.Instant

    /// This executable: benchmarks run the very binary that runs them.
    static var executable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// Starts `arguments` (the first is the program) with `environment` laid over this process's.
    init(name: String, _ arguments: [String], environment: [String: String] = [:], logFolder: String) throws {
        self.name = name
        stdoutPath = (logFolder as NSString).appendingPathComponent("\(name).out")
        stderrPath = (logFolder as NSString).appendingPathComponent("\(name).err")
        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, arguments[0], &actions, nil, argv, envp)
        guard result == 0 else { throw Failure(description: "cannot start \(arguments[0]): \(String(cString: strerror(result)))") }
        self.pid = pid
        started = .now
    }

    /// True once the process has exited (a zombie, not reaped yet): `wait()` still reaps it.
    var hasExited: Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    func signal(_ signal: Int32) {
        kill(pid, signal)
    }

    /// Waits for the process to exit; reaps it.
    func wait() async -> Exit {
        var status: Int32 = 0
        var usage = rusage()
        while true {
            let reaped = wait4(pid, &status, WNOHANG, &usage)
            if reaped == pid || (reaped < 0 && errno != EINTR) { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        // WIFEXITED / WEXITSTATUS, and 128 + the signal otherwise, as a shell reports it.
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Exit(status: code, peakRSSMegabytes: Double(usage.ru_maxrss) / 1024, seconds: (ContinuousClock.now - started).seconds)
    }

    /// Waits, and throws with the end of its stderr when it failed.
    func succeed() async throws -> Exit {
        let exit = await wait()
        guard exit.succeeded else { throw Failure(description: "\(name) exited with \(exit.status):\n\(stderrTail())") }
        return exit
    }

    func stdout() -> String {
        (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? ""
    }

    func stderrTail(lines: Int = 15) -> String {
        let text = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}
