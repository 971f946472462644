import Foundation
import FuzzChecks
import Testing
import Contract
import KPIModel
import StreamRuntime
import WarehouseSink
import KPIStore
import DataGenerator
import RedisWire

/// The fuzz targets' checks over their seed corpus and over every input a fuzzer ever crashed on
/// (`Fuzz/regressions/TARGET/`, kept for good once fixed): the same functions libFuzzer runs, in
/// the ordinary test build.
@Suite struct FuzzCorpusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    static func inputs(_ folder: String, _ target: String) -> [URL] {
        let directory = root.appendingPathComponent(folder).appendingPathComponent(target)
        return ((try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? [])
            .sorted { $0.path < $1.path }
    }

    @Test(arguments: FuzzChecks.targets.keys.sorted())
    func seedsAndRegressionsPass(target: String) throws {
        let check = try #require(FuzzChecks.targets[target])
        let seeds = Self.inputs("corpus", target)
        #expect(!seeds.isEmpty, "Fuzz/corpus/\(target) has seeds")
        for input in seeds + Self.inputs("regressions", target) {
            check(Array(try Data(contentsOf: input)))
        }
    }
}
