import Foundation
public import RedisClient
public import Contract
import RedisWire

/// Publishes new events through the same validation as replay: each record is checked against the
/// entity's contract, the good ones are XADDed (pipelined) to their stream partition, the bad ones
/// come back as rejections naming the input, line, field and reason.
public struct Producer: Sendable {
    public struct Published: Sendable, Codable, Equatable {
        public var line: Int
        public var stream: String
        public var id: String
        public var eventID: String
        enum CodingKeys: String, CodingKey {
            case line, stream, id
            case eventID = "event_id"
        }
    }

    public struct Outcome: Sendable {
        public var published: [Published] = []
        public var rejected: [Rejection] = []
        public init() {}
    }

    public let layout: StreamLayout
    let encoder: EventEncoder

    public init(layout: StreamLayout) {
        self.layout = layout
        self.encoder = EventEncoder(layout: layout)
    }

    /// Validates `records` of `entity` (fields under `header`) and publishes the good ones.
    /// `input` names where they came from (`stdin`, `produce order`, …) in sources and rejections.
    public func publish(
        _ records: [(line: Int, fields: [String])], entity: Entity, header: [String], input: String, on redis: RedisConnection
    ) async throws -> Outcome {
        let validator = try RowValidator(entity: entity, header: header, file: input)
        var outcome = Outcome()
        var rows: [ValidatedRow] = []
        for record in records {
            switch validator.validate(record.fields, line: record.line) {
            case .success(let row): rows.append(row)
            case .failure(let rejection): outcome.rejected.append(rejection)
            }
        }
        var start = 0
        while start < rows.count {
            let chunk = rows[start..<min(start + 1000, rows.count)]
            start += chunk.count
            var batch = RedisCommandBuffer()
            for row in chunk { encoder.appendXADD(row, source: "\(input):\(row.line)", to: &batch) }
            let replies = try await redis.send(batch)
            for (row, reply) in zip(chunk, replies) {
                guard let id = reply.string, case .bulk = reply else {
                    throw RedisError(.server, "XADD of \(input):\(row.line) failed: \(reply)")
                }
                outcome.published.append(Published(line: row.line, stream: encoder.streamKey(for: row), id: id, eventID: row.eventID.description))
            }
            PipelineMetrics.published(chunk.count, source: "produce")
        }
        return outcome
    }

    /// Records given as column → value (a JSON line, or flags); absent columns are empty. A name
    /// that is not a column of the contract rejects the record.
    public func publish(
        objects: [(line: Int, values: [String: String])], entity: Entity, input: String, on redis: RedisConnection
    ) async throws -> Outcome {
        let header = entity.schema.columns.map(\.name)
        let known = Set(header)
        var records: [(line: Int, fields: [String])] = []
        var unknown: [Rejection] = []
        for object in objects {
            if let stray = object.values.keys.sorted().first(where: { !known.contains($0) }) {
                unknown.append(Rejection(
                    file: input, line: object.line, column: stray, reason: "'\(stray)' is not a column of \(entity.rawValue)",
                    code: "unknown_column", raw: object.values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")))
                continue
            }
            records.append((object.line, header.map { object.values[$0] ?? "" }))
        }
        var outcome = try await publish(records, entity: entity, header: header, input: input, on: redis)
        outcome.rejected = (outcome.rejected + unknown).sorted { $0.line < $1.line }
        return outcome
    }

    /// A JSON line as column → value: strings as they are, numbers in their shortest decimal form,
    /// null as empty (the contract has no boolean column). Money is best sent as a string. nil when the line is not a JSON object.
    public static func object(jsonLine: String) -> [String: String]? {
        guard let data = jsonLine.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) as? [String: Any]
        else { return nil }
        var out: [String: String] = [:]
        for (key, value) in object {
            switch value {
            case let text as String: out[key] = text
            case is NSNull: out[key] = ""
            case let number as NSNumber:
                out[key] = number.stringValue
            default:
                return nil
            }
        }
        return out
    }
}
