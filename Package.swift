// swift-tools-version: 6.1
import PackageDescription

/// One settings list for every target: Swift 6 language mode plus the upcoming features we want.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
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
        .library(name: "Pipeline", targets: ["Pipeline"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
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
        // Client libraries over them.
        .target(
            name: "ConnectionExecutor",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RedisClient",
            dependencies: ["CHiredis", "ConnectionExecutor"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PostgresClient",
            dependencies: ["CLibPQ", "ConnectionExecutor"],
            swiftSettings: swiftSettings
        ),
        // The pipeline: configuration, migrations, benchmarks (contract, events, sinks, KPIs later).
        .target(
            name: "Pipeline",
            dependencies: [
                "RedisClient",
                "PostgresClient",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The thin command-line front end.
        .executableTarget(
            name: "warehouse",
            dependencies: [
                "Pipeline",
                "RedisClient",
                "PostgresClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Pure logic, no server needed.
        .testTarget(
            name: "UnitTests",
            dependencies: ["RedisClient", "PostgresClient", "Pipeline", "ConnectionExecutor"],
            swiftSettings: swiftSettings
        ),
        // Against the real Redis and PostgreSQL that scripts/test.sh starts.
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["RedisClient", "PostgresClient", "Pipeline"],
            swiftSettings: swiftSettings
        ),
    ]
)
