import Foundation
import Testing

/// `warehouse bench scale` at a size small enough for every run of the tests: each stage runs,
/// and the JSON has the shape the README's figures are read from.
@Suite struct BenchScaleTests {
    @Test(.timeLimit(.minutes(3)))
    func everyStageRunsAndReports() async throws {
        let run = try await TestServers.runWarehouse(["bench", "scale", "--order-lines", "400", "--no-live", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run.stdout)")
        let sizes = try #require(result["sizes"] as? [[String: Any]])
        #expect(sizes.count == 1)
        let size = try #require(sizes.first)
        #expect(size["order_lines"] as? Int == 400)
        let events = try #require(size["events"] as? Int)
        #expect(events > 1_000, "\(events) events for 400 order lines")
        for stage in ["replay", "loader", "aggregator"] {
            let figures = try #require(size[stage] as? [String: Any], "\(stage) in \(size.keys.sorted())")
            #expect(figures["events"] as? Int == events, "\(stage)")
            #expect((figures["events_per_s"] as? Double ?? 0) > 0, "\(stage)")
            #expect((figures["peak_rss_mb"] as? Double ?? 0) > 1, "\(stage)")
        }
        let restart = try #require(size["aggregator_restart"] as? [String: Any])
        #expect((restart["seconds"] as? Double ?? 0) > 0)
        #expect((restart["peak_rss_mb"] as? Double ?? 0) > 1)
        #expect(size["end_to_end"] == nil, "--no-live leaves the end-to-end stage out")
        #expect((size["redis_used_memory_mb"] as? Double ?? 0) > 0 && (size["postgres_mb"] as? Double ?? 0) > 0)
    }
}
