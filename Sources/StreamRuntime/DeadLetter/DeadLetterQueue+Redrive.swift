import Foundation
public import RedisClient
public import RedisWire
import Contract

extension DeadLetterQueue {
    /// What redriving one entry did.
    public enum RedriveOutcome: Sendable, Equatable {
        /// Published to `stream` as entry `id`, and removed from the dead-letter stream.
        case published(stream: String, id: StreamID)
        /// Still not usable (the reason); left in the dead-letter stream.
        case stillRejected(String)
    }

    /// Puts dead-lettered entries back on their stream, optionally corrected (`corrections` maps a
    /// column or field name to its new value), and removes each from the dead-letter stream once
    /// published. A replay reject is validated again against the contract first; a consumer's
    /// reject is republished as its event was.
    public func redrive(_ entries: [StreamEntry], corrections: [String: String] = [:], on redis: RedisConnection) async throws
        -> [(StreamID, RedriveOutcome)]
    {
        var outcomes: [(StreamID, RedriveOutcome)] = []
        let encoder = EventEncoder(layout: layout)
        for entry in entries {
            let outcome: RedriveOutcome
            if let stream = entry["stream"], !stream.isEmpty {
                guard let data = entry["raw"]?.data(using: .utf8),
                      var fields = (try? JSONSerialization.jsonObject(with: data)) as? [String: String]
                else {
                    outcomes.append((entry.id, .stillRejected("the entry's raw event is not readable JSON")))
                    continue
                }
                for (name, value) in corrections { fields[name] = value }
                let flat = fields.sorted { $0.key < $1.key }.flatMap { [$0.key, $0.value] }
                let id = try await redis.xadd(stream, fields: flat)
                outcome = .published(stream: stream, id: id)
            } else {
                guard let entity = entry["entity"].flatMap(Entity.init(rawValue:)), let raw = entry["raw"],
                      let headerText = entry["header"], !headerText.isEmpty
                else {
                    outcomes.append((entry.id, .stillRejected("the entry does not say which file and header it came from")))
                    continue
                }
                var headerReader = CSVReader(bytes: Array(headerText.utf8))
                var rowReader = CSVReader(bytes: Array(raw.utf8))
                guard let header = try headerReader.next()?.fields, var fields = try rowReader.next()?.fields else {
                    outcomes.append((entry.id, .stillRejected("the raw row cannot be read as CSV")))
                    continue
                }
                for (name, value) in corrections {
                    if let index = header.firstIndex(where: { $0.lowercased() == name.lowercased() }), index < fields.count {
                        fields[index] = value
                    }
                }
                // A value masked on the way in (--dead-letter-mask) is not the row's: it must be given again.
                if let masked = zip(header, fields).first(where: { $0.1 == DeadLetterPolicy.mask })?.0 {
                    outcomes.append((entry.id, .stillRejected("\(masked) is masked in the dead-letter copy: give its value with --set \(masked)=…")))
                    continue
                }
                let validator = try RowValidator(entity: entity, header: header)
                switch validator.validate(fields, line: Int(entry["line"] ?? "") ?? 0) {
                case .failure(let rejection):
                    outcome = .stillRejected(rejection.reason)
                case .success(let row):
                    let stream = encoder.streamKey(for: row)
                    let id = try await redis.xadd(stream, fields: encoder.fields(row, source: (entry["source"] ?? "") + " (redriven)"))
                    outcome = .published(stream: stream, id: id)
                }
            }
            if case .published = outcome {
                try await redis.xdel(layout.deadLetterKey, ids: [entry.id])
                // Forget it was seen, so the same row failing again is recorded again.
                if let fingerprint = entry["fingerprint"] { _ = try await redis.command("SREM", layout.deadLetterSeenKey, fingerprint) }
            }
            outcomes.append((entry.id, outcome))
        }
        return outcomes
    }
}
