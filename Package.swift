// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "converge",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "converge", targets: ["converge"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.5.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-openapi-generator", from: "1.14.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.7.0"),
        .package(url: "https://github.com/apple/swift-openapi-runtime", from: "1.13.0"),
        .package(url: "https://github.com/hummingbird-project/swift-openapi-hummingbird", from: "2.1.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        // Extended attributes (libc's sys/xattr.h, which Glibc does not export): who holds a database's lock.
        .systemLibrary(name: "CXattr"),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .target(
            name: "ConvergeCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(
            name: "ConvergeManifests",
            dependencies: ["CYAML", "ConvergeCore", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(
            name: "ConvergeStore",
            dependencies: [
                "CXattr",
                "ConvergeCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "ConvergeProvisioners",
            dependencies: [
                "CCurl",
                "ConvergeCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
            ]
        ),
        .target(
            name: "ConvergeEngine",
            dependencies: [
                "ConvergeCore",
                "ConvergeManifests",
                "ConvergeStore",
                "ConvergeProvisioners",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Subprocess", package: "swift-subprocess"),
            ]
        ),
        // The HTTP API's types, server protocol and client, generated from `openapi.yaml` in this target: the
        // document is the one source of the daemon's routes and of the CLI's requests.
        .target(
            name: "ConvergeAPI",
            dependencies: ["ConvergeCore", .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime")],
            plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]
        ),
        .target(
            name: "ConvergeServer",
            dependencies: [
                "ConvergeAPI",
                "ConvergeCore",
                "ConvergeEngine",
                "ConvergeStore",
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .target(
            name: "ConvergeClient",
            dependencies: [
                "ConvergeAPI",
                "ConvergeCore",
                "ConvergeManifests",
                "ConvergeProvisioners",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
            ]
        ),
        .executableTarget(
            name: "converge",
            dependencies: [
                "ConvergeClient",
                "ConvergeCore",
                "ConvergeManifests",
                "ConvergeStore",
                "ConvergeEngine",
                "ConvergeProvisioners",
                "ConvergeServer",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "converge-bench",
            dependencies: [
                "CCurl",
                "CYAML",
                "ConvergeAPI",
                "ConvergeClient",
                "ConvergeCore",
                "ConvergeEngine",
                "ConvergeManifests",
                "ConvergeProvisioners",
                "ConvergeStore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "Benchmarks/ConvergeBench"
        ),
        .testTarget(name: "ConvergeCoreTests", dependencies: ["ConvergeCore"]),
        .testTarget(
            name: "ConvergeManifestsTests", dependencies: ["ConvergeManifests", "ConvergeTestSupport"],
            exclude: ["Fixtures"]),
        .testTarget(
            name: "ConvergeStoreTests",
            dependencies: [
                "ConvergeStore", "ConvergeTestSupport", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        // What the test targets share: loopback servers, the manual clock, `eventually`, the base manifests.
        .target(
            name: "ConvergeTestSupport",
            dependencies: [
                "ConvergeCore",
                "ConvergeStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/ConvergeTestSupport"
        ),
        .testTarget(name: "ConvergeProvisionersTests", dependencies: ["ConvergeProvisioners", "ConvergeTestSupport"]),
        .testTarget(
            name: "ConvergeEngineTests", dependencies: ["ConvergeEngine", "ConvergeStore", "ConvergeTestSupport"]),
        .testTarget(
            name: "ConvergeServerTests",
            dependencies: [
                "ConvergeServer", "ConvergeEngine", "ConvergeManifests", "ConvergeStore",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ConvergeClientTests",
            dependencies: ["ConvergeClient", "ConvergeTestSupport"]
        ),
        .testTarget(
            name: "ConvergeCLITests",
            dependencies: [
                "converge", "ConvergeStore", "ConvergeProvisioners", "ConvergeTestSupport",
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
    ]
)
