import RedisClient
import Testing
@testable import Contract
@testable import KPIModel
@testable import StreamRuntime
@testable import WarehouseSink
@testable import KPIStore
@testable import DataGenerator
@testable import RedisWire
import PostgresClient

@Suite struct EventEncoderTests {
    /// Replay's packed form must write byte for byte what the plain form writes.
    @Test func packedXADDEqualsThePlainForm() throws {
        let header = ["order_id", "line_number", "customer_id", "product_id", "quantity", "unit_price", "discount",
                      "status", "order_ts", "updated_at"]
        let validator = try RowValidator(entity: .orders, header: header)
        let long = String(repeating: "é", count: 200)
        for (partitions, fields) in [
            (1, ["O-1", "1", "C-1", "P-1", "2", "19.99", "0.1", "placed", "2024-03-01T09:05:00-05:00", "2024-03-01T14:05:00.5Z"]),
            (4, ["O-\(long)", "12", "C,\"x\"\n", "P-1", "3", "0", "", "Shipped", "2024-03-01T14:05:00Z", "2024-03-02T14:05:00Z"]),
        ] {
            let row = try validator.validate(fields, line: 123_456).get()
            let encoder = EventEncoder(layout: StreamLayout(namespace: "sw", partitions: partitions))
            var plain = RedisCommandBuffer()
            encoder.appendXADD(row, source: "orders.csv:123456", to: &plain)
            var packed: [UInt8] = []
            EventEncoder.pack(row.values, into: &packed)
            var assembled = RedisCommandBuffer()
            packed.withUnsafeBytes {
                encoder.appendPackedXADD(entity: .orders, partition: encoder.partition(for: row), line: 123_456, id: row.eventID,
                                         packed: $0, to: &assembled)
            }
            #expect(assembled.count == 1)
            #expect(String(decoding: assembled.bytes, as: UTF8.self) == String(decoding: plain.bytes, as: UTF8.self))
            #expect(assembled.bytes == plain.bytes)
        }
    }
}
