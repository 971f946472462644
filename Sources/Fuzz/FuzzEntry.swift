import FuzzChecks
#if canImport(Glibc)
import Glibc
#endif

/// libFuzzer's entry point (built only by scripts/fuzz.sh, with `-sanitize=fuzzer,address`):
/// runs the target named by SW_FUZZ_TARGET over each input.
let target: @Sendable ([UInt8]) -> Void = {
    let name = getenv("SW_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = FuzzChecks.targets[name] else {
        let message = "SW_FUZZ_TARGET must name one of: \(FuzzChecks.targets.keys.sorted().joined(separator: ", "))\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        exit(2)
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    target(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

/// SwiftPM links an executable with `main` aliased to `<module>_main`, so libFuzzer's own `main`
/// is never linked in; this is that entry point, handing control to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("Fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runDriver(&count, &arguments) { data, size in fuzzOne(data, size) }
}
