import Foundation
import Testing
@testable import Contract
@testable import KPIModel
@testable import StreamRuntime
@testable import WarehouseSink
@testable import KPIStore
@testable import DataGenerator
@testable import RedisWire
import RedisClient
import PostgresClient

@Suite struct DataGeneratorTests {
    private func folder() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("sw-gen-\(UUID().uuidString)").path
    }

    @Test func sameSeedSameBytesOtherSeedOtherBytes() throws {
        let a = folder(), b = folder(), c = folder()
        defer { for path in [a, b, c] { try? FileManager.default.removeItem(atPath: path) } }
        let options = DataGenerator.Options(orders: 2000, seed: 11)
        let summary = try DataGenerator(options: options).write(to: a)
        try DataGenerator(options: options).write(to: b)
        try DataGenerator(options: DataGenerator.Options(orders: 2000, seed: 12)).write(to: c)
        #expect(summary.orderLines == 2000)
        for entity in Entity.allCases {
            let first = try Data(contentsOf: URL(fileURLWithPath: a).appendingPathComponent(entity.fileName))
            let second = try Data(contentsOf: URL(fileURLWithPath: b).appendingPathComponent(entity.fileName))
            #expect(first == second, "\(entity.fileName) differs between two runs with the same seed")
        }
        let orders = try Data(contentsOf: URL(fileURLWithPath: a).appendingPathComponent("orders.csv"))
        let other = try Data(contentsOf: URL(fileURLWithPath: c).appendingPathComponent("orders.csv"))
        #expect(orders != other)
    }

    /// The generated files follow the contract and carry its traps: duplicates, rejects, offsets,
    /// progressions and out-of-order rows.
    @Test func generatedDataHasTheTraps() throws {
        let path = folder()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try DataGenerator(options: DataGenerator.Options(orders: 20_000, seed: 3)).write(to: path)
        var reader = try CSVReader(path: path + "/orders.csv")
        let validator = try RowValidator(entity: .orders, header: try #require(try reader.next()).fields)
        var good = 0, rejected = 0, offsets = 0, outOfOrder = 0
        var statuses: [String: Int] = [:]
        var ids = Set<EventID>()
        var duplicates = 0
        var previous: Timestamp?
        while let record = try reader.next() {
            if record.fields[9].hasSuffix("-05:00") { offsets += 1 }
            switch validator.validate(record.fields, line: record.line) {
            case .success(let row):
                good += 1
                statuses[row.value("status")!, default: 0] += 1
                if !ids.insert(row.eventID).inserted { duplicates += 1 }
                if let previous, row.eventTime < previous { outOfOrder += 1 }
                previous = row.eventTime
            case .failure:
                rejected += 1
            }
        }
        #expect(good > 20_000)
        #expect(rejected > 0)
        #expect(duplicates > 0)
        #expect(offsets > 0)
        #expect(outOfOrder > 0)
        for status in OrderStatus.allCases { #expect(statuses[status.rawValue, default: 0] > 0, "\(status)") }
    }
}

/// The synthetic live load: every event it makes passes the contract, its choices follow the seed,
/// and its follow-ups (shipping, delivery, cancels, returns, payment retries) come due.
@Suite struct SyntheticLoadTests {
    func run(seed: UInt64) -> [SyntheticLoad.Event] {
        var load = SyntheticLoad(catalog: SyntheticLoad.Catalog(), seed: seed, prefix: "T")
        let start = Timestamp(iso8601: "2026-01-01T00:00:00Z")!
        var events = load.bootstrap(at: start, customers: 50, products: 20)
        var clock = start.microseconds
        for _ in 0..<1500 {
            clock += Int64(load.interarrival(ordersPerSecond: 20) * 1_000_000)
            events += load.due(at: Timestamp(microseconds: clock))
            events += load.arrival(at: Timestamp(microseconds: clock))
        }
        events += load.due(at: Timestamp(microseconds: clock + 600_000_000))
        return events
    }

    @Test func everyEventPassesTheContract() throws {
        let events = run(seed: 7)
        var statuses: [String: Int] = [:]
        for event in events {
            let header = event.entity.schema.columns.map(\.name)
            let validator = try RowValidator(entity: event.entity, header: header)
            let fields = header.map { event.values[$0] ?? "" }
            if case .failure(let rejection) = validator.validate(fields, line: 1) {
                Issue.record("\(event.entity): \(rejection.description) \(event.values)")
            }
            if event.entity == .orders { statuses[event.values["status"]!, default: 0] += 1 }
        }
        #expect(statuses["placed", default: 0] > 2000 && statuses["shipped", default: 0] > 0 && statuses["delivered", default: 0] > 0)
        #expect(statuses["cancelled", default: 0] > 0, "\(statuses)")
        #expect(events.contains { $0.entity == .payments && $0.values["status"] == "failed" })
        #expect(events.contains { $0.entity == .inventory && $0.values["movement_type"] == "receipt" && $0.values["reference"] == "restock" })
        let perOrder = Double(events.count - 20 * 3 - 50 - 10) / 1500
        #expect(perOrder > 8 && perOrder < 14, "about \(SyntheticLoad.eventsPerOrder) events per order (\(perOrder))")
    }

    @Test func theSeedDecides() {
        #expect(run(seed: 3).map(\.values) == run(seed: 3).map(\.values))
        #expect(run(seed: 3).map(\.values) != run(seed: 4).map(\.values))
    }
}
