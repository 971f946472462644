import Foundation
import Testing
@testable import warehouse

/// `warehouse tail`'s text form: a line per changed KPI, never one line for a whole record.
@Suite struct TailFormatTests {
    @Test func aRecordPrintsALinePerChangedKPIWithItsChange() {
        let lines = Warehouse.Tail.lines(
            at: "2026-12-01T10:00:00Z", watermark: "2024-12-07T15:45:00Z",
            changes: [("revenue:total", "1010.50"), ("count:orders", "44"), ("mix:state:XX", "")],
            previous: ["revenue:total": "1000.00", "count:orders": "44", "mix:state:XX": "5.00"])
        #expect(lines == [
            "2026-12-01T10:00:00Z  watermark 2024-12-07T15:45:00Z  revenue:total 1010.50 (+10.50)",
            "2026-12-01T10:00:00Z  watermark 2024-12-07T15:45:00Z  count:orders 44",
            "2026-12-01T10:00:00Z  watermark 2024-12-07T15:45:00Z  mix:state:XX (gone)",
        ])
    }

    @Test func theFirstRecordOfTheStreamIsALinePerKPI() {
        let changes = (0..<120).map { ("kpi:\($0)", String($0)) }
        let lines = Warehouse.Tail.lines(at: "t", watermark: nil, changes: changes, previous: [:])
        #expect(lines.count == 120)
        #expect(lines.allSatisfy { $0.hasPrefix("t  watermark -  kpi:") && !$0.contains("(+") })
    }
}
