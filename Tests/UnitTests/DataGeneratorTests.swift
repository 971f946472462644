import Foundation
import Testing
@testable import Pipeline

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
