import Foundation
import PostgresClient
import RedisClient
import Testing
import Contract
import KPIModel
import StreamRuntime
import WarehouseSink
import KPIStore
import DataGenerator
import RedisWire
import Dashboard

/// The real servers that scripts/test.sh starts for this run (REDIS_URL, DATABASE_URL).
/// Integration tests fail, rather than skip, when they are not set: run them through scripts/test.sh.
enum TestServers {
    static func redisURL() throws -> String {
        try #require(
            ProcessInfo.processInfo.environment["REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 },
            "REDIS_URL is not set: run the tests with scripts/test.sh, which starts throwaway servers")
    }

    static func databaseURL() throws -> String {
        try #require(
            ProcessInfo.processInfo.environment["DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 },
            "DATABASE_URL is not set: run the tests with scripts/test.sh, which starts throwaway servers")
    }

    static func redis() async throws -> RedisConnection {
        try await RedisConnection(url: try redisURL())
    }

    static func postgres() async throws -> PostgresConnection {
        try await PostgresConnection(try databaseURL())
    }

    /// A name no other test uses, for keys, groups, tables and schemas.
    static func unique(_ prefix: String) -> String {
        "\(prefix)_\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// A database URL whose sessions use `schema` first on their search path.
    static func databaseURL(searchPath schema: String) throws -> String {
        let base = try databaseURL()
        return base + (base.contains("?") ? "&" : "?") + "options=-csearch_path%3D\(schema)"
    }

    /// The `warehouse` executable built next to the tests.
    static func warehouseExecutable() throws -> URL {
        if let explicit = ProcessInfo.processInfo.environment["WAREHOUSE_BIN"], !explicit.isEmpty {
            return URL(fileURLWithPath: explicit)
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let candidate = root.appendingPathComponent(".build/debug/warehouse")
        try #require(FileManager.default.isExecutableFile(atPath: candidate.path), "build the warehouse executable first (\(candidate.path))")
        return candidate
    }

    /// Replays the CSV files of `folder` into `layout`'s streams; returns the events published.
    @discardableResult
    static func replay(_ folder: String, into layout: StreamLayout, redis: RedisConnection) async throws -> Int {
        var options = Replayer.Options(dataDirectory: folder)
        options.layout = layout
        return try await Replayer(options: options).run(redis: redis).events
    }

    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// Starts the warehouse executable with its output discarded; the caller waits for it or kills it.
    static func startWarehouse(_ arguments: [String], environment: [String: String] = [:], stderrPath: String? = nil) throws -> Process {
        let process = Process()
        process.executableURL = try warehouseExecutable()
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.currentDirectoryURL = packageRoot
        process.standardOutput = FileHandle.nullDevice
        if let stderrPath {
            _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: stderrPath)
        } else {
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
        return process
    }

    /// Starts the warehouse executable and kill -9s it after a random number of milliseconds in
    /// `after`, `times` times over, or until a run exits by itself; returns how many kills there were.
    static func killRepeatedly(
        _ arguments: [String], environment: [String: String] = [:], times: Int = 5, after: ClosedRange<Int>
    ) async throws -> Int {
        var kills = 0
        while kills < times {
            let process = try startWarehouse(arguments, environment: environment)
            try await Task.sleep(for: .milliseconds(Int.random(in: after)))
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                kills += 1
            }
            await waitForExit(process)
            if process.terminationReason == .exit { break }   // it finished before the kill
        }
        return kills
    }

    /// Waits for `process` to exit on a thread of its own (never on the cooperative pool).
    static func waitForExit(_ process: Process) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                process.waitUntilExit()
                continuation.resume()
            }
        }
    }

    /// Runs the warehouse executable; returns its exit status, stdout and stderr.
    ///
    /// The blocking wait happens on a thread of its own, never on Swift's cooperative pool (which a
    /// test holding a lock the child waits for would otherwise deadlock).
    static func runWarehouse(
        _ arguments: [String], environment: [String: String] = [:], stdin: String? = nil
    ) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await run(try warehouseExecutable(), arguments, environment: environment, stdin: stdin.map { Data($0.utf8) })
    }

    /// Runs the warehouse executable with `stdin` as raw bytes (which need not be UTF-8).
    static func runWarehouse(
        _ arguments: [String], environment: [String: String] = [:], stdinBytes: Data
    ) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await run(try warehouseExecutable(), arguments, environment: environment, stdin: stdinBytes)
    }

    /// Runs any program (found on PATH when `executable` has no slash), as `runWarehouse` does.
    static func run(
        _ program: String, _ arguments: [String], environment: [String: String] = [:]
    ) async throws -> (status: Int32, stdout: String, stderr: String) {
        let path = program.contains("/") ? program
            : (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
                .map { "\($0)/\(program)" }.first { FileManager.default.isExecutableFile(atPath: $0) } ?? program
        return try await run(URL(fileURLWithPath: path), arguments, environment: environment, stdin: nil)
    }

    static func run(
        _ executable: URL, _ arguments: [String], environment: [String: String], stdin: Data?, directory: URL? = nil
    ) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                do {
                    let process = Process()
                    process.executableURL = executable
                    process.arguments = arguments
                    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
                    process.currentDirectoryURL = directory ?? packageRoot
                    let out = Pipe()
                    let err = Pipe()
                    process.standardOutput = out
                    process.standardError = err
                    let input = Pipe()
                    process.standardInput = stdin == nil ? FileHandle.nullDevice : input
                    try process.run()
                    if let stdin {
                        // On a thread of its own: a large input must not wait on a child that waits on us.
                        let writer = input.fileHandleForWriting
                        Thread.detachNewThread {
                            writer.write(stdin)
                            try? writer.close()
                        }
                    }
                    // stderr drains on a second thread so neither pipe can fill up and stall the child.
                    let stderr = DataBox()
                    let done = DispatchSemaphore(value: 0)
                    Thread.detachNewThread {
                        stderr.data = err.fileHandleForReading.readDataToEndOfFile()
                        done.signal()
                    }
                    let stdout = out.fileHandleForReading.readDataToEndOfFile()
                    done.wait()
                    process.waitUntilExit()
                    continuation.resume(returning: (
                        process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr.data, as: UTF8.self)))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// Runs `command` with scripts/lib.sh loaded, waiting on a thread of its own (Foundation's
    /// Process cannot be waited for from the cooperative pool). Output goes to a file, not a pipe:
    /// a server the command starts keeps the descriptor open, so a pipe would never reach its end.
    @discardableResult
    static func shell(_ command: String) async throws -> String {
        let output = "/tmp/" + TestServers.unique("sw-shell") + ".out"
        defer { try? FileManager.default.removeItem(atPath: output) }
        // posix_spawn and waitpid on a thread of its own: Foundation's Process, waited for from a
        // test, left this child unreaped.
        let script = "cd \(TestServers.packageRoot.path) && . scripts/lib.sh && (\(command)) > \(output) 2>&1"
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                var pid: pid_t = 0
                let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/bash"), strdup("-c"), strdup(script), nil]
                defer { for pointer in argv { free(pointer) } }
                let spawned = posix_spawn(&pid, "/bin/bash", nil, nil, argv, environ)
                guard spawned == 0 else {
                    continuation.resume(throwing: PostgresError(.configuration, "posix_spawn failed: \(spawned)"))
                    return
                }
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                continuation.resume(returning: (status >> 8) & 0xFF)
            }
        }
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw PostgresError(.configuration, "`\(command)` failed with status \(status): \(text)")
        }
        return text
    }
}

/// A throwaway Redis server for one test (its memory limits and policies are the test's to change),
/// started with the project's own scripts/lib.sh.
struct PrivateRedis {
    let directory: String
    let port: Int
    /// With the append-only file on (`appendfsync everysec`), as a user runs it.
    var durable = false
    var url: String { "redis://127.0.0.1:\(port)/0" }

    /// Tried again on a fresh port when another test's server took the one picked first.
    static func start(durable: Bool = false) async throws -> PrivateRedis {
        var lastError: (any Error)?
        for _ in 0..<3 {
            let directory = "/tmp/" + TestServers.unique("sw-redis")
            let port = Int(try await TestServers.shell("sw_free_port").trimmingCharacters(in: .whitespacesAndNewlines))!
            do {
                _ = try await TestServers.shell("sw_start_redis \(directory) \(port) \(durable ? "durable" : "")")
                return PrivateRedis(directory: directory, port: port, durable: durable)
            } catch {
                lastError = error
                await PrivateRedis(directory: directory, port: port, durable: durable).destroy()
            }
        }
        throw lastError!
    }

    /// kill -9 of the server; returns once it is gone.
    func killNine() async throws {
        _ = try await TestServers.shell("sw_kill_redis \(directory)")
    }

    /// Starts the server again on the same port and files (loading its append-only file).
    func startAgain() async throws {
        _ = try await TestServers.shell("sw_start_redis \(directory) \(port) \(durable ? "durable" : "")")
    }

    /// Cuts a random number of bytes, up to `limit`, off the end of the newest append-only file
    /// (what a machine crash loses of writes not yet fsynced); returns how many. Run while the
    /// server is down.
    func cutAppendOnlyFileTail(upTo limit: Int) throws -> Int {
        let folder = directory + "/appendonlydir"
        let manifest = try String(contentsOfFile: folder + "/appendonly.aof.manifest", encoding: .utf8)
        // Lines like `file appendonly.aof.3.incr.aof seq 3 type i`: the last incremental file is the tail.
        guard let line = manifest.split(separator: "\n").last(where: { $0.hasSuffix("type i") }) else { return 0 }
        let path = folder + "/" + line.split(separator: " ")[1]
        let size = Int((try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0)
        guard size > 0 else { return 0 }
        let cut = Int.random(in: 1...min(size, limit))
        guard truncate(path, off_t(size - cut)) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        return cut
    }

    func connect() async throws -> RedisConnection { try await RedisConnection(url: url) }

    func destroy() async {
        _ = try? await TestServers.shell("sw_stop_redis \(directory) \(port)")
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Holds what one thread read, for another to pick up after a semaphore.
private final class DataBox: @unchecked Sendable {
    var data = Data()
}

extension TestServers {
    /// Copies an executable so that it can be run at once. `FileManager.copyItem` writes through a
    /// descriptor without close-on-exec: a process another test spawns meanwhile inherits it and
    /// holds the file open for writing as long as it lives, and running the copy then fails with
    /// ETXTBSY ("Text file busy"; `migrateFromAnEmptyFolder` failed so twice in a day, in a
    /// clean-clone run and in a full run). Written here through an O_CLOEXEC descriptor, which
    /// no child keeps.
    static func copyExecutable(from source: URL, to destination: URL) throws {
        let data = try Data(contentsOf: source, options: .alwaysMapped)
        let fd = open(destination.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o755)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < bytes.count {
                let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0, errno == EINTR { continue }
                guard written > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
                offset += written
            }
        }
    }
}
