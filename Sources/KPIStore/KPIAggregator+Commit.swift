import Foundation
import Contract
import KPIModel
import RedisWire

/// How a batch's effects are written: retirements and the change record appended to the
/// batch's commands, every write inside a fenced script call (`fencedCommit`).
extension KPIAggregator {
    /// Per origin, in one fenced script call in its slot: the HDEL of the retired records, the
    /// HINCRBY of the counters that replace them, the new horizon and watermark, and the HDEL of
    /// expired minutes.
    func appendRetirements(_ retirements: [KPIState.Retirement], to batch: inout RedisCommandBuffer) {
        for r in retirements {
            let stream = originKeys[Int(r.origin)]
            let stateKey = KPIKeys.stateKey(stream: stream), retiredKey = KPIKeys.retiredKey(stream: stream)
            var commands = RedisCommandBuffer.scriptArguments()
            var fields = r.lines.map { KPIRecord.lineField(orderID: $0.orderID, lineNumber: $0.lineNumber) }
            fields += (r.payments + r.movements).map(KPIRecord.keyField)
            commands.append("HDEL", stateKey, each: fields)
            for (field, amount) in r.counters.sorted(by: { $0.key < $1.key }) where amount != 0 {
                commands.append(["HINCRBY", retiredKey, field, String(amount)])
            }
            commands.append(["HSET", retiredKey, "wm", String(r.watermark), "horizon", String(r.horizon)])
            commands.append("HDEL", retiredKey, each: r.expiredFields)
            batch.evalsha(Self.fencedCommit, keys: [KPIKeys.fenceKey(stream: stream)], arguments: [String(epoch)], commands: commands)
            retiredRecords += r.records
        }
    }

    func appendChangeRecord(
        changed: [(String, String)], removed: [String], events: Int, through: [String], to batch: inout RedisCommandBuffer
    ) {
        var fields = [
            "at", Timestamp.now.description,
            "watermark", state.watermark?.description ?? "",
            "events", String(events),
            "through", through.joined(separator: " "),
        ]
        for (name, value) in changed.sorted(by: { $0.0 < $1.0 }) where !name.hasPrefix("watermark") && name != "latest_day" {
            fields.append("kpi:" + name)
            fields.append(value)
        }
        for name in removed.sorted() {
            fields.append("kpi:" + name)
            fields.append("")
        }
        batch.append(["XADD", keys.changes, "MAXLEN", "~", String(changesLimit), "*"] + fields)
    }

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
