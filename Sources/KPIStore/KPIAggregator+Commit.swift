import Foundation
import Contract
import KPIModel
import RedisWire

/// How a batch's effects are written: retirements and the change record appended to the
/// batch's commands, every write inside a fenced script call (`fencedCommit`).
extension KPIAggregator {
    /// Per origin (one of this partition's streams): the records moved from the state hash to
    /// the archive, their keys' hashes and index entries appended, and the new horizon and
    /// watermark, inside the batch's fenced commit. Dimensions of other partitions are never
    /// retired here.
    func appendRetirements(_ retirements: [KPIState.Retirement], to commands: inout RedisCommandBuffer) {
        for r in retirements {
            let stream = originKeys[Int(r.origin)]
            guard layout.parse(streamKey: stream)?.partition == partition else { continue }
            let stateKey = KPIKeys.stateKey(stream: stream), retiredKey = KPIKeys.retiredKey(stream: stream)
            var fields = r.lines.map { KPIRecord.lineField(orderID: $0.orderID, lineNumber: $0.lineNumber) }
            fields += (r.payments + r.movements).map(KPIRecord.keyField)
            commands.append("HDEL", stateKey, each: fields)
            appendHSET(KPIKeys.archiveKey(stream: stream), r.archive, to: &commands)
            if !r.keyHashes.isEmpty {
                commands.append(bytes: [Array("APPEND".utf8), Array(KPIKeys.archivedKeysKey(stream: stream).utf8), RetiredKeys.pack(r.keyHashes)])
            }
            for (customer, entries) in r.customerIndex {
                commands.append(bytes: [Array("APPEND".utf8), Array(KPIKeys.indexKey(stream: stream, customer: customer).utf8), entries])
            }
            for (product, entries) in r.productIndex {
                commands.append(bytes: [Array("APPEND".utf8), Array(KPIKeys.indexKey(stream: stream, product: product).utf8), entries])
            }
            commands.append(["HSET", retiredKey, "wm", String(r.watermark), "horizon", String(r.horizon), "format", KPIKeys.retiredFormat])
            retiredRecords += r.records
        }
    }

    /// HSET of raw fields and values, in commands of at most 1,000 pairs (a script unpacks each).
    func appendHSET(_ key: String, _ pairs: [(field: [UInt8], value: [UInt8])], to commands: inout RedisCommandBuffer) {
        var start = 0
        while start < pairs.count {
            let chunk = pairs[start..<min(start + 1000, pairs.count)]
            start += chunk.count
            commands.begin(arguments: 2 + chunk.count * 2)
            commands.add("HSET"); commands.add(key)
            for (field, value) in chunk { commands.add(field); commands.add(value) }
        }
    }

    /// The contribution's changed fields: HSET / HDEL of the `part` hash, and one `deltas` entry
    /// listing them (a removed field with an empty value) with the stream positions the commit
    /// covers (`~through`), for the merge stage.
    /// With `more`, the last entry says `~more` too: the commit continues in the next one.
    func appendDelta(_ delta: [String: [Int64]?], through: [String], events: Int, more: Bool = false, to commands: inout RedisCommandBuffer) {
        guard !delta.isEmpty || !through.isEmpty else { return }
        let part = keys.contribution(partition: partition)
        var sets: [(String, String)] = [], removed: [String] = []
        for (field, value) in delta {
            if let value { sets.append((field, KPIState.encode(value))) } else { removed.append(field) }
        }
        KPIView.appendHSET(part, sets, to: &commands)
        commands.append("HDEL", part, each: removed)
        // One commit's fields in entries of at most `deltaEntryFields` fields: a script cannot
        // unpack a command of more than about 8,000 arguments (Lua's C stack), and a batch can
        // change tens of thousands of fields. Every entry but the last says `~more`; the merge
        // stage applies a commit only once it has read its last entry, which the same script wrote.
        let fields = sets + removed.map { ($0, "") }
        var start = 0
        repeat {
            let end = min(start + Self.deltaEntryFields, fields.count)
            let head = ["XADD", keys.deltas(partition: partition), "MAXLEN", "~", String(deltasLimit), "*"]
            var entry = head + (end < fields.count || more ? ["~more", "1"] : ["~through", through.joined(separator: " "), "~events", String(events)])
            for (field, value) in fields[start..<end] { entry.append(field); entry.append(value) }
            commands.append(entry)
            start = end
        } while start < fields.count
    }

    /// Fields per delta entry (each two arguments of the XADD the commit script unpacks).
    static let deltaEntryFields = 1000

    /// One atomic step in one slot, fenced: refused (`FENCED …`, nothing written) when the slot's
    /// fence (KEYS[1]) is above the writer's epoch (ARGV[1]); otherwise the fence is raised to the
    /// epoch and the commands that follow run, each as its argument count and its arguments. Every
    /// key the commands name shares KEYS[1]'s hash slot, so the step runs on a Redis Cluster too.
    /// Writes only after the check, so a refused step writes nothing (and under `maxmemory` the
    /// first write is refused with OOM before any other, so an OOM step writes nothing either).
    static let fencedCommit = RedisScript("""
        local fence = tonumber(redis.call('GET', KEYS[1]) or '0')
        local epoch = tonumber(ARGV[1])
        if fence > epoch then
          return redis.error_reply('FENCED epoch ' .. ARGV[1] .. ' is behind the fence at ' .. fence .. ' in ' .. KEYS[1])
        end
        if fence < epoch then redis.call('SET', KEYS[1], ARGV[1]) end
        local i = 2
        local n = #ARGV
        while i <= n do
          local count = tonumber(ARGV[i])
          redis.call(unpack(ARGV, i + 1, i + count))
          i = i + count + 1
        end
        return 1
        """)

    /// Replies of the commit's script calls: an error anywhere throws (a `NOSCRIPT` loads the
    /// script first, so the retry finds it).
    static func check(_ replies: [RedisReply]) throws {
        for reply in replies {
            switch reply {
            case .error(let message): throw RedisError(.server, message)
            case .null: throw RedisError(.server, "a transaction was aborted")
            case .array(let elements):
                for element in elements { if case .error(let message) = element { throw RedisError(.server, message) } }
            default: continue
            }
        }
    }
}
