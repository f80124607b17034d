// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "converge",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "converge", targets: ["converge"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        .target(
            name: "ConvergeCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(
            name: "ConvergeManifests",
            dependencies: ["CYAML", "ConvergeCore"]
        ),
        .target(
            name: "ConvergeStore",
            dependencies: [
                "ConvergeCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "converge",
            dependencies: [
                "ConvergeCore",
                "ConvergeManifests",
                "ConvergeStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "ConvergeCoreTests", dependencies: ["ConvergeCore"]),
        .testTarget(name: "ConvergeManifestsTests", dependencies: ["ConvergeManifests"], exclude: ["Fixtures"]),
        .testTarget(
            name: "ConvergeStoreTests",
            dependencies: ["ConvergeStore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(name: "ConvergeCLITests", dependencies: ["converge"]),
    ]
)
