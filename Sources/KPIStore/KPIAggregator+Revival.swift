import Contract
import KPIModel
import RedisWire
import RedisClient

/// Reviving retired records a batch may change (`KPIState+Revival.swift`): read from the archive
/// in the partition's slot, held again, and written back in the batch's fenced commit.
extension KPIAggregator {
    /// Reads what `recall` names from the archive and the indexes and revives it, appending to
    /// `commands` (the batch's fenced commit) the archive's HDEL and the records' HSET. The commit in flight is waited for
    /// first, so the reads see every earlier commit; the fence makes them safe (a successor that
    /// wrote since has raised it, and this batch's commit is refused).
    func revive(_ recall: KPIState.Recall, into commands: inout RedisCommandBuffer) async throws {
        try await flush()
        var orders = recall.orders
        if !recall.customers.isEmpty || !recall.products.isEmpty {
            // Lines come from this partition's orders stream only.
            let stream = layout.streamKey(.orders, partition: partition)
            let origin = origin(stream)
            let lookups = recall.customers.map { (KPIKeys.indexKey(stream: stream, customer: $0.key), $0.value) }
                + recall.products.map { (KPIKeys.indexKey(stream: stream, product: $0.key), $0.value) }
            var batch = RedisCommandBuffer()
            for (key, _) in lookups { batch.append("GET", key) }
            let replies = try await redis.send(batch)
            for ((key, from), reply) in zip(lookups, replies) {
                guard let bytes = try reply.throwingServerError().bytes else { continue }  // nothing indexed
                guard let ids = KPIRecord.indexedOrders(bytes, from: from) else {
                    throw RedisError(.unexpectedReply, "\(key) is not an index of retired orders (KPIRecord.indexEntry)")
                }
                orders[origin, default: []].formUnion(ids)
            }
        }
        var reads: [(kind: KPIState.ArchivedKind, origin: Int32, ids: [String])] = []
        // (An index may name no order from the version's time on: no read then, as HMGET needs a field.)
        for (origin, ids) in orders where !ids.isEmpty { reads.append((.order, origin, ids.sorted())) }
        for (origin, ids) in recall.payments where !ids.isEmpty { reads.append((.payment, origin, ids.sorted())) }
        for (origin, ids) in recall.movements where !ids.isEmpty { reads.append((.movement, origin, ids.sorted())) }
        guard !reads.isEmpty else { return }
        var batch = RedisCommandBuffer()
        for read in reads {
            var arguments = [Array("HMGET".utf8), Array(KPIKeys.archiveKey(stream: originKeys[Int(read.origin)]).utf8)]
            arguments += read.ids.map(KPIRecord.keyField)
            batch.append(bytes: arguments)
        }
        let replies = try await redis.send(batch)
        for (read, reply) in zip(reads, replies) {
            let stream = originKeys[Int(read.origin)]
            let archiveKey = KPIKeys.archiveKey(stream: stream)
            guard let values = try reply.throwingServerError().array, values.count == read.ids.count else {
                throw RedisError(.unexpectedReply, "HMGET \(archiveKey)")
            }
            let revived: KPIState.Revived
            do {
                revived = try state.revive(read.kind, ids: read.ids, values: values.map(\.bytes), origin: read.origin)
            } catch {
                throw RedisError(.unexpectedReply, "\(archiveKey): \(error.description)")
            }
            guard !revived.archiveFields.isEmpty else { continue }
            commands.append("HDEL", archiveKey, each: revived.archiveFields)
            appendHSET(KPIKeys.stateKey(stream: stream), revived.records, to: &commands)
            revivedRecords += revived.archiveFields.count
        }
    }
}
