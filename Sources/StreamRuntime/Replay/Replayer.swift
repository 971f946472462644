import Foundation
public import RedisClient
import ServiceLifecycle
public import Contract
import RedisWire

/// `warehouse replay`: reads the six contract files, puts every good row on one timeline by event
/// time (spilling to disk past a memory budget), and publishes each to its entity stream in
/// pipelined batches, paced to `--speed`. Bad rows go to the dead-letter stream; exact duplicates
/// are skipped and counted; a checkpoint lets `--resume` continue an interrupted replay.
public struct Replayer: Sendable {
    public struct Options: Sendable {
        public var dataDirectory: String
        public var layout = StreamLayout()
        /// Event seconds per wall second; nil for as fast as possible.
        public var speed: Double?
        /// Only events at or after `from` and before `to`.
        public var from: Timestamp?
        public var to: Timestamp?
        /// Validate and count only: nothing is written to Redis.
        public var dryRun = false
        /// Continue from the checkpoint of an interrupted replay of the same input.
        public var resume = false
        /// XADDs per pipelined batch.
        public var batchSize = 1000
        /// Bytes of rows held in memory before the sort spills to disk.
        public var memoryBudget = 256 << 20
        /// Bytes the sort may spill to disk in all (it also always leaves 1 GiB free).
        public var maxSpillBytes = 20 << 30
        /// The longest CSV record; a longer one (or an unclosed quote) is rejected and reading
        /// goes on at the next line.
        public var maxRecordBytes = CSVReader.defaultMaxRecordBytes
        /// Chaos: publish this fraction of events a second time.
        public var duplicateRate = 0.0
        /// Chaos: shuffle events within windows of this many (0: keep event-time order).
        public var shuffleWindow = 0
        /// Seed for the chaos choices.
        public var seed: UInt64 = 1
        /// Back-pressure: pause while the slowest consumer group lags more than this many entries
        /// (nil: never).
        public var maxLag: Int?

        public init(dataDirectory: String) {
            self.dataDirectory = dataDirectory
        }
    }

    /// Per file: records read, events published, exact duplicates skipped, rows rejected.
    public struct FileStats: Sendable, Codable, Equatable {
        public var read = 0
        public var published = 0
        public var duplicates = 0
        public var rejected = 0
        public init() {}
    }

    /// What a replay did. Encodes as `{"files": {…}, "events": n, "seconds": s}`.
    public struct Report: Sendable, Codable {
        public var files: [String: FileStats] = [:]
        /// Events published by this run.
        public var events = 0
        /// Wall seconds, reading included.
        public var seconds = 0.0
        /// Unknown columns and other notes, one line each.
        public var warnings: [String] = []
        /// Events skipped because an earlier run had published them (`--resume`).
        public var resumedFrom = 0
        /// Rows outside `--from`/`--to`.
        public var outsideWindow = 0
        /// Sort runs spilled to disk.
        public var spilledRuns = 0
        /// Event times of the first and last event published, and the wall time between them.
        public var firstEventTime: Timestamp?
        public var lastEventTime: Timestamp?
        public var publishSeconds = 0.0
        /// Stopped by a graceful shutdown before the end: `--resume` continues from the checkpoint.
        public var interrupted = false

        enum CodingKeys: String, CodingKey { case files, events, seconds }

        public init() {}
    }

    /// What the caller is told while a replay runs.
    public enum Progress: Sendable {
        case reading(file: String, rows: Int)
        case publishing(done: Int, total: Int, eventsPerSecond: Double)
        /// Paused by back-pressure: `group` lags `lag` entries, over the limit.
        case throttled(group: String, lag: Int, limit: Int)
    }

    public let options: Options

    public init(options: Options) {
        self.options = options
    }

    public func run(
        redis: RedisConnection?,
        progress: @escaping @Sendable (Progress) -> Void = { _ in }
    ) async throws -> Report {
        let clock = ContinuousClock()
        let started = clock.now
        var report = Report()
        let layout = options.layout
        let deadLetters = DeadLetterQueue(layout: layout)
        guard options.dryRun || redis != nil else { throw ContractError("replay needs a Redis connection unless --dry-run") }

        // 1. Read and validate every file onto sorters, orders.csv (the big one) on one core and the
        //    other five on the other; rejects go to the dead-letter stream.
        let paths = try Self.contractFiles(in: options.dataDirectory)
        let encoder = EventEncoder(layout: layout)
        let groups: [[Entity]] = [[.orders], [.customers, .suppliers, .products, .payments, .inventory]]
        let budgets = [options.memoryBudget * 2 / 3, options.memoryBudget / 3]
        let options = self.options
        let disk = SpillAllowance(limit: options.maxSpillBytes)
        // Rejects go to the dead-letter stream as they are found, a chunk at a time (never all
        // held to the end); a dry run only counts them.
        let sink: RejectSink? = options.dryRun ? nil : redis.map { redis in
            { @Sendable rejects in _ = try await deadLetters.append(rejects, on: redis) }
        }
        let results = try await withThrowingTaskGroup(of: (Int, [FileRead], ExternalSorter).self) { group in
            for (index, entities) in groups.enumerated() {
                group.addTask {
                    let sorter = try ExternalSorter(memoryBudget: max(1 << 20, budgets[index]), disk: disk)
                    let reads = try await Self.read(
                        entities, paths: paths, options: options, encoder: encoder, sorter: sorter, rejects: sink, progress: progress)
                    return (index, reads, sorter)
                }
            }
            var collected: [(Int, [FileRead], ExternalSorter)] = []
            for try await result in group { collected.append(result) }
            return collected.sorted { $0.0 < $1.0 }
        }
        let sorters = results.map(\.2)
        defer { for sorter in sorters { sorter.cleanUp() } }
        for read in results.flatMap(\.1) {
            report.files[read.entity.fileName] = read.stats
            report.warnings += read.warnings
        }
        report.spilledRuns = sorters.reduce(0) { $0 + $1.spilledRuns }

        // 2. Merge into one timeline; skip exact duplicates, the window's outside and what a
        //    previous run already published; publish the rest in paced, pipelined batches.
        let fingerprint = try fingerprint(paths)
        // One checkpoint per partition, in the partition's slot: a partition resumes after its own.
        var resumeFrom = [Int](repeating: 0, count: layout.partitions)
        if options.resume, let redis, !options.dryRun {
            var reads = RedisCommandBuffer()
            for partition in 0..<layout.partitions { reads.append("HGETALL", layout.replayCheckpointKey(partition: partition)) }
            let maps = try await redis.send(reads).map { reply in
                let fields = (try reply.throwingServerError().array ?? []).compactMap(\.string)
                return Dictionary(stride(from: 0, to: fields.count - 1, by: 2).map { (fields[$0], fields[$0 + 1]) }) { $1 }
            }
            if maps.contains(where: { !$0.isEmpty && $0["fingerprint"] != fingerprint }) {
                report.warnings.append("the checkpoint belongs to another input or options: replaying from the start")
            } else {
                resumeFrom = maps.map { $0["position"].flatMap(Int.init) ?? 0 }
            }
        }
        report.resumedFrom = resumeFrom.min() ?? 0

        let rows = try MergedRows(try sorters.map { try $0.finish() })
        let total = sorters.reduce(0) { $0 + $1.count }
        var pacer = Pacer(speed: options.dryRun ? nil : options.speed)
        var random = SplitMix64(seed: options.seed)
        var batch = RedisCommandBuffer(reservingCapacity: options.batchSize * 300)
        var batchEvents = 0
        var batchFiles: [String: Int] = [:]
        var inFlight: Task<Void, any Error>?
        var position = 0
        /// The timeline position up to which every record is in a batch already sent or being
        /// built: what the checkpoint may say (a record waiting on the pacer, or held in the
        /// shuffle window, is not).
        var covered = resumeFrom.min() ?? 0
        /// Each partition's checkpoint: the position up to which its records are published (never
        /// behind where it resumed), written after the partition's entries in the same slot.
        func appendCheckpoints(finished: Bool?, to batch: inout RedisCommandBuffer) {
            let now = Timestamp.now.description
            for partition in 0..<layout.partitions {
                var fields = ["HSET", layout.replayCheckpointKey(partition: partition), "fingerprint", fingerprint,
                              "position", String(max(covered, resumeFrom[partition])), "updated_at", now]
                if let finished { fields += ["finished", finished ? "1" : "0"] }
                batch.append(fields)
            }
        }
        var previous: (Timestamp, EventID)?
        var window: [(SortedRecord, [UInt8])] = []
        var publishStart: ContinuousClock.Instant?
        var lastReport = clock.now
        var consumed = 0
        let backPressure = options.maxLag.map { BackPressure(limit: $0, streams: layout.allStreams) }
        var lastLagCheck = clock.now
        /// Waits while the slowest group is past the lag limit.
        func throttle() async throws {
            guard let backPressure, let redis, !options.dryRun, clock.now - lastLagCheck >= backPressure.checkEvery else { return }
            lastLagCheck = clock.now
            if let inFlight { try await inFlight.value }
            inFlight = nil
            // A graceful shutdown ends the pause (and the replay, between batches): a replay
            // paused for consumers that are gone must still stop on SIGTERM.
            let paused = try await backPressure.wait(on: redis, cancelled: { Task.isShuttingDownGracefully }) { group, lag in
                progress(.throttled(group: group, lag: lag, limit: backPressure.limit))
            }
            if paused > 0 { pacer.reset() }
        }

        func flush() async throws {
            if let inFlight { try await inFlight.value }
            inFlight = nil
            guard batchEvents > 0 else { return }
            if !options.dryRun, let redis {
                appendCheckpoints(finished: nil, to: &batch)
                let sending = batch
                inFlight = Task {
                    if let error = try await redis.sendReturningErrors(sending).first {
                        throw RedisError(.server, "publishing failed: \(error.message)")
                    }
                }
            }
            for (file, count) in batchFiles { report.files[file]?.published += count }
            report.events += batchEvents
            PipelineMetrics.published(batchEvents, source: "replay")
            batch = RedisCommandBuffer(reservingCapacity: options.batchSize * 300)
            batchEvents = 0
            batchFiles.removeAll(keepingCapacity: true)
            if clock.now - lastReport > .milliseconds(200) {
                lastReport = clock.now
                let elapsed = publishStart.map { (clock.now - $0).seconds } ?? 0
                progress(.publishing(done: consumed, total: total, eventsPerSecond: elapsed > 0 ? Double(report.events) / elapsed : 0))
            }
        }

        /// Publishes the record `header` whose encoded XADD `payload` gives (or, nil, the current one of `rows`).
        func publish(_ header: SortedRecord, _ payload: [UInt8]?) async throws {
            let wait = pacer.delay(for: header.time, now: clock.now)
            if wait > .zero {
                try await flush()
                if let inFlight { try await inFlight.value }
                inFlight = nil
                // A graceful shutdown wakes the wait (CancellationError: the run stops at this record).
                let deadline = clock.now + wait
                try await cancelWhenGracefulShutdown { try await Task.sleep(until: deadline, clock: clock) }
            }
            if publishStart == nil { publishStart = clock.now }
            if report.firstEventTime == nil { report.firstEventTime = header.time }
            report.lastEventTime = header.time
            let copies = options.duplicateRate > 0 && random.chance(options.duplicateRate) ? 2 : 1
            for _ in 0..<copies {
                if options.dryRun {
                    batchEvents += 1
                } else if let payload {
                    payload.withUnsafeBytes {
                        encoder.appendPackedXADD(entity: header.entity, partition: header.partition, line: header.line, id: header.id,
                                                 packed: $0, to: &batch)
                    }
                    batchEvents += 1
                } else {
                    rows.withPayload {
                        encoder.appendPackedXADD(entity: header.entity, partition: header.partition, line: header.line, id: header.id,
                                                 packed: $0, to: &batch)
                    }
                    batchEvents += 1
                }
                batchFiles[header.entity.fileName, default: 0] += 1
            }
            if options.shuffleWindow <= 1 { covered = position }
            if batchEvents >= options.batchSize {
                try await flush()
                try await throttle()
            }
        }

        reading: while let header = try rows.advance() {
            // A graceful shutdown (SIGINT/SIGTERM) stops between batches: what is in hand is
            // published and the checkpoint written, so `--resume` continues exactly there.
            if batchEvents == 0, Task.isShuttingDownGracefully {
                report.interrupted = true
                break reading
            }
            consumed += 1
            if let (time, id) = previous, time == header.time, id == header.id {
                report.files[header.entity.fileName]?.duplicates += 1
                continue
            }
            previous = (header.time, header.id)
            if let from = options.from, header.time < from { report.outsideWindow += 1; continue }
            if let to = options.to, header.time >= to { report.outsideWindow += 1; continue }
            position += 1
            if position <= resumeFrom[header.partition] { continue }
            do {
                if options.shuffleWindow > 1 {
                    window.append((header, rows.withPayload { Array($0) }))
                    if window.count >= options.shuffleWindow {
                        window.shuffle(using: &random)
                        for (held, payload) in window { try await publish(held, payload) }
                        window.removeAll(keepingCapacity: true)
                        covered = position
                    }
                } else {
                    try await publish(header, nil)
                }
            } catch is CancellationError {
                // The pacer's wait, woken by a graceful shutdown; this record is not published.
                report.interrupted = true
                break reading
            }
        }
        if !window.isEmpty {
            window.shuffle(using: &random)
            for (held, payload) in window { try await publish(held, payload) }
            window.removeAll()
            covered = position
        }
        try await flush()
        if let inFlight { try await inFlight.value }
        if !options.dryRun, let redis {
            var last = RedisCommandBuffer()
            appendCheckpoints(finished: !report.interrupted, to: &last)
            for reply in try await redis.send(last) { _ = try reply.throwingServerError() }
        }
        if let publishStart { report.publishSeconds = (clock.now - publishStart).seconds }
        report.seconds = (clock.now - started).seconds
        progress(.publishing(done: total, total: total, eventsPerSecond: report.publishSeconds > 0 ? Double(report.events) / report.publishSeconds : 0))
        return report
    }

    /// What reading one file gave.
    struct FileRead: Sendable {
        var entity: Entity
        var stats: FileStats
        var warnings: [String]
    }

    /// Where rejected rows go while the files are read.
    typealias RejectSink = @Sendable ([(Rejection, Entity?)]) async throws -> Void
    /// Rejects held before they are handed to the sink.
    static let rejectChunk = 500

    /// Reads, validates and packs `entities`' files onto `sorter` (one core's work), handing the
    /// rejects to `rejects` a chunk at a time.
    static func read(
        _ entities: [Entity], paths: [Entity: String], options: Options, encoder: EventEncoder, sorter: ExternalSorter,
        rejects sink: RejectSink?, progress: @Sendable (Progress) -> Void
    ) async throws -> [FileRead] {
        var reads: [FileRead] = []
        // Each row's canonical values are packed once, here (straight from the CSV bytes: no string
        // per field); publishing assembles its XADD from them.
        var scratch: [UInt8] = []
        scratch.reserveCapacity(1024)
        for entity in entities {
            var read = FileRead(entity: entity, stats: FileStats(), warnings: [])
            var rejects: [(Rejection, Entity?)] = []
            var reader = try CSVReader(path: paths[entity]!, file: entity.fileName, maxRecordBytes: options.maxRecordBytes)
            defer { reader.close() }
            guard let header = try reader.next() else {
                throw ContractError("\(entity.fileName) is empty: it needs at least a header row")
            }
            let validator = try RowValidator(entity: entity, header: header.fields)
            if !validator.unknownColumns.isEmpty {
                // Named, a few at most (a header of 10,000 columns must not make a 10,000-name warning).
                let unknown = validator.unknownColumns
                let named = unknown.prefix(10).map { String($0.prefix(64)) }.joined(separator: ", ")
                read.warnings.append("\(entity.fileName): ignoring \(unknown.count) unknown column(s): \(named)\(unknown.count > 10 ? ", …" : "")")
            }
            while true {
                var more: Bool?
                do {
                    more = try reader.nextRaw { line, fields -> Bool in
                        read.stats.read += 1
                        switch validator.validateRaw(fields, line: line, packInto: &scratch) {
                        case .valid(let eventTime, let eventID, let partitionHash):
                            if options.dryRun { scratch.removeAll(keepingCapacity: true) }
                            try scratch.withUnsafeBytes {
                                try sorter.add(time: eventTime, id: eventID, entity: entity, line: line,
                                               partition: encoder.layout.partition(forHash: partitionHash), payload: $0)
                            }
                        case .rejected(let rejection):
                            read.stats.rejected += 1
                            if sink != nil { rejects.append((rejection, entity)) }
                        }
                        return true
                    }
                } catch let error as CSVError {
                    read.stats.read += 1
                    read.stats.rejected += 1
                    if sink != nil {
                        rejects.append((Rejection(file: entity.fileName, line: error.line, column: nil, reason: error.message,
                                                  code: error.code,
                                                  raw: "", header: validator.headerLine), entity))
                    }
                    more = true
                }
                if let sink, rejects.count >= rejectChunk {
                    try await sink(rejects)
                    rejects.removeAll(keepingCapacity: true)
                }
                guard more != nil else { break }
                if read.stats.read % 200_000 == 0 { progress(.reading(file: entity.fileName, rows: read.stats.read)) }
            }
            if let sink, !rejects.isEmpty { try await sink(rejects) }
            reads.append(read)
        }
        return reads
    }

    /// The six files of the contract in `directory`; an error that says what is missing otherwise.
    public static func contractFiles(in directory: String) throws -> [Entity: String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ContractError("\(directory) is not a folder: pass --data with the folder that holds the six CSV files")
        }
        guard FileManager.default.isReadableFile(atPath: directory) else {
            throw ContractError("\(directory) cannot be read: check its permissions")
        }
        var paths: [Entity: String] = [:]
        var missing: [String] = []
        for entity in Entity.allCases {
            let path = (directory as NSString).appendingPathComponent(entity.fileName)
            if FileManager.default.isReadableFile(atPath: path) { paths[entity] = path } else { missing.append(entity.fileName) }
        }
        guard missing.isEmpty else {
            throw ContractError("\(directory) is missing \(missing.joined(separator: ", ")) (the contract needs all six files; an entity with no rows still needs its header)")
        }
        return paths
    }

    /// Identifies the input and the options that shape the timeline, for `--resume`.
    func fingerprint(_ paths: [Entity: String]) throws -> String {
        var hasher = EventIDHasher()
        for entity in Entity.allCases {
            let path = paths[entity]!
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            hasher.combine(path)
            hasher.combine(String((attributes[.size] as? NSNumber)?.int64Value ?? -1))
            hasher.combine(String(((attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0).description))
        }
        hasher.combine(options.from?.description ?? "")
        hasher.combine(options.to?.description ?? "")
        hasher.combine(String(options.layout.partitions))
        hasher.combine(String(options.shuffleWindow))
        hasher.combine(String(options.duplicateRate))
        hasher.combine(String(options.seed))
        return hasher.finalize().description
    }
}
