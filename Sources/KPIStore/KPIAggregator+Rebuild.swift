import Foundation
import Contract
import KPIModel
import RedisClient
import RedisWire

/// Taking over: the fences raised to this aggregator's epoch, then the state rebuilt from the
/// persisted records and every KPI key rewritten from it.
extension KPIAggregator {
    /// Raises the fence of every slot this aggregator writes to (`streams`' slots and `{kpi}`) to
    /// its epoch. Run once the lease is taken and before the state is read: from then on no
    /// earlier aggregator can commit anything the rebuild would not see.
    public func raiseFences(streams: [String]) async throws {
        try await redis.load(Self.fencedCommit)
        var batch = RedisCommandBuffer()
        for key in [keys.fence] + streams.map(KPIKeys.fenceKey(stream:)) {
            batch.evalsha(Self.fencedCommit, keys: [key], arguments: [String(epoch)])
        }
        do {
            try Self.check(try await redis.send(batch))
        } catch {
            throw Self.fenced(error)
        }
    }

    /// Rebuilds the state from every persisted record and rewrites every KPI key from it.
    @discardableResult
    public func rebuild() async throws -> Int {
        try await redis.load(Self.fencedCommit)
        var fresh = KPIState()
        var records = 0
        for key in try await redis.scanKeys(match: "\(layout.namespace):{p*}:*:kpi") {
            let origin = origin(String(key.dropLast(":kpi".count)))
            var cursor = "0"
            repeat {
                let reply = try await redis.command("HSCAN", key, cursor, "COUNT", "10000").throwingServerError()
                guard let parts = reply.array, parts.count == 2, let next = parts[0].string, let items = parts[1].array else {
                    throw RedisError(.unexpectedReply, "HSCAN \(key)")
                }
                cursor = next
                var index = 1
                while index < items.count {
                    if let field = items[index - 1].bytes, let value = items[index].bytes,
                       let event = KPIRecord.decode(field: field, value: value) {
                        _ = fresh.apply(event, origin: origin)
                        records += 1
                    }
                    index += 2
                }
            } while cursor != "0"
        }
        for key in try await redis.scanKeys(match: "\(layout.namespace):{p*}:*:kpi:retired") {
            let stream = String(key.dropLast(":kpi:retired".count))
            let reply = try await redis.command("HGETALL", key).throwingServerError()
            let items = reply.array ?? []
            var fields: [(String, String)] = []
            var index = 1
            while index < items.count {
                if let field = items[index - 1].string, let value = items[index].string { fields.append((field, value)) }
                index += 2
            }
            fresh.absorb(origin: origin(stream), fields: fields)
        }
        _ = fresh.takeDirty()
        let stale = try await redis.scanKeys(match: "\(keys.dayProductsPrefix)*")
        var commands = RedisCommandBuffer.scriptArguments()
        commands.append("DEL", nil, each: [keys.totals, keys.minutes, keys.hours, keys.days, keys.products, keys.onHand] + stale)
        let totals = KPIView.totals(fresh)
        KPIView.appendWrites(fresh, dirty: nil, totals: totals, removedTotals: [], keys: keys, to: &commands)
        var batch = RedisCommandBuffer()
        batch.evalsha(Self.fencedCommit, keys: [keys.fence], arguments: [String(epoch)], commands: commands)
        try Self.check(try await redis.send(batch))
        state = fresh
        writtenTotals = totals
        needsRebuild = false
        return records
    }
}
