// swift-tools-version: 6.2
import PackageDescription

/// One settings list for every target of ours: Swift 6 language mode, the upcoming features we
/// want, and every warning an error (the project's own code builds with none, debug or release;
/// dependencies keep their own settings).
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .treatAllWarnings(as: .error),
    // The code is split into modules by what it is, not by how it runs: let the optimiser inline
    // and specialise across them (the decoder's and the KPI rules' generics are on the hot path;
    // without this the KPI aggregator lost about a third of its rate when Pipeline was split).
    .unsafeFlags(["-cross-module-optimization"], .when(configuration: .release)),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "StreamWarehouse",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "warehouse", targets: ["warehouse"]),
        .library(name: "RedisClient", targets: ["RedisClient"]),
        .library(name: "PostgresClient", targets: ["PostgresClient"]),
        .library(name: "Contract", targets: ["Contract"]),
        .library(name: "KPIModel", targets: ["KPIModel"]),
        .library(name: "StreamRuntime", targets: ["StreamRuntime"]),
        .library(name: "WarehouseSink", targets: ["WarehouseSink"]),
        .library(name: "KPIStore", targets: ["KPIStore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        // C modules: a module map over a one-line shim header each.
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        // The Redis wire model, pure: stream ids and entries, RESP command encoding, script digests.
        .target(
            name: "RedisWire",
            swiftSettings: swiftSettings
        ),
        // Client libraries over the C modules, each connection on a thread of its own.
        .target(
            name: "ConnectionExecutor",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RedisClient",
            dependencies: ["CHiredis", "ConnectionExecutor", "RedisWire"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PostgresClient",
            dependencies: ["CLibPQ", "ConnectionExecutor"],
            swiftSettings: swiftSettings
        ),

        // ── Pure: no I/O, no client. ──
        // The data contract and the event model: CSV, validation, decimals, timestamps, entities,
        // event ids, the event encoding and the one typed event decoder every consumer uses.
        .target(
            name: "Contract",
            dependencies: ["RedisWire"],
            swiftSettings: swiftSettings
        ),
        // The KPI model: state, rules (deltas, retractions, retention), persisted records, the summary shape.
        .target(
            name: "KPIModel",
            dependencies: ["Contract", "RedisWire"],
            swiftSettings: swiftSettings
        ),

        // ── Source side: streams. ──
        // The stream runtime: consumer groups, error classes, dead letters, replay, produce, lag,
        // trimming, back-pressure, metrics, server configuration.
        .target(
            name: "StreamRuntime",
            dependencies: [
                "Contract", "RedisWire", "RedisClient", "PostgresClient", "ConnectionExecutor",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // ── Sinks. ──
        // The warehouse: the star-schema loader, migrations, reports, quality checks.
        .target(
            name: "WarehouseSink",
            dependencies: [
                "Contract", "KPIModel", "StreamRuntime", "RedisWire", "RedisClient", "PostgresClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The migrations and the analytics queries, compiled into the binary (`PackageResources`).
            resources: [.embedInCode("SQL")],
            swiftSettings: swiftSettings
        ),
        // The KPI store in Redis: aggregator, lease, view, snapshot, reconciliation against the warehouse.
        .target(
            name: "KPIStore",
            dependencies: [
                "Contract", "KPIModel", "StreamRuntime", "WarehouseSink", "RedisWire", "RedisClient", "PostgresClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The dashboard and the HTTP API (Hummingbird 2), and the Prometheus exporter.
        .target(
            name: "Dashboard",
            dependencies: [
                "Contract", "KPIModel", "StreamRuntime", "WarehouseSink", "KPIStore", "RedisWire", "RedisClient", "PostgresClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // ── Tools: only the executable depends on these. ──
        // Seeded data: the sample-shaped history (`warehouse generate`) and the live load (`produce synthetic`).
        .target(
            name: "DataGenerator",
            dependencies: [
                "Contract", "StreamRuntime", "RedisWire", "RedisClient",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // `warehouse bench`: they drop and create schemas and namespaces of their own.
        .target(
            name: "Benchmarks",
            dependencies: [
                "Contract", "KPIModel", "StreamRuntime", "WarehouseSink", "KPIStore", "Dashboard", "DataGenerator",
                "RedisWire", "RedisClient", "PostgresClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The thin command-line front end: one file per subcommand.
        .executableTarget(
            name: "warehouse",
            dependencies: [
                "Contract", "KPIModel", "StreamRuntime", "WarehouseSink", "KPIStore", "Dashboard", "DataGenerator", "Benchmarks",
                "RedisWire", "RedisClient", "PostgresClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // What each fuzz target checks of one input (run by the fuzzer, and over the corpus by the unit tests).
        .target(
            name: "FuzzChecks",
            dependencies: ["Contract", "KPIModel", "StreamRuntime", "WarehouseSink", "RedisWire"],
            swiftSettings: swiftSettings
        ),
        // What both test targets share: the rule table of Tests/Fixtures/rules.json.
        .target(
            name: "TestSupport",
            path: "Tests/Support",
            swiftSettings: swiftSettings
        ),
        // Pure logic, no server needed.
        .testTarget(
            name: "UnitTests",
            dependencies: ["RedisClient", "PostgresClient", "Contract", "KPIModel", "StreamRuntime", "WarehouseSink", "KPIStore", "DataGenerator", "RedisWire", "ConnectionExecutor", "warehouse", "FuzzChecks", "TestSupport",
                           .product(name: "Yams", package: "Yams"), .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
        // Against the real Redis and PostgreSQL that scripts/test.sh starts.
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "RedisClient", "PostgresClient", "Contract", "KPIModel", "StreamRuntime", "WarehouseSink", "KPIStore", "DataGenerator", "RedisWire", "Dashboard",
                "TestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)

// libFuzzer's executable, only when scripts/fuzz.sh builds it (SW_FUZZ=1, with
// `-sanitize=fuzzer,address`): libFuzzer supplies its `main`, so an ordinary build leaves it out.
if Context.environment["SW_FUZZ"] == "1" {
    package.targets.append(.executableTarget(
        name: "Fuzz",
        dependencies: ["FuzzChecks"],
        swiftSettings: swiftSettings + [.unsafeFlags(["-parse-as-library"])]
    ))
    package.products.append(.executable(name: "warehouse-fuzz", targets: ["Fuzz"]))
}
