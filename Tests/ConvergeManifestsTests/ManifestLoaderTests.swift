import ConvergeCore
import Foundation
import Testing

@testable import ConvergeManifests

/// The fixtures directory and the repository root, found from this file.
enum Paths {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The files of a fixture directory as (name, text).
    static func files(_ fixture: String) throws -> [(path: String, text: String)] {
        let directory = fixtures.appendingPathComponent(fixture)
        return try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted().map { name in
            (name, try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8))
        }
    }
}

@Suite struct ManifestLoaderTests {
    /// Every error class: a fixture added to the valid base repository, and the exact errors it must produce.
    static let cases: [(fixture: String, errors: [String])] = [
        (
            "syntax",
            [
                "case.yaml:4:5: yaml syntax error: while parsing a flow mapping (line 3, column 11), did not find expected ',' or '}'"
            ]
        ),
        ("wrong-type", [#"case.yaml:6:10: spec.prune: expected boolean, got string "yes""#]),
        ("missing-field", [#"case.yaml:5:3: spec.bundle: missing required field "bundle""#]),
        ("unknown-field", [#"case.yaml:5:3: spec.polcy: unknown field "polcy"; did you mean "policy"?"#]),
        (
            "unknown-kind",
            [
                #"case.yaml:2:7: kind: unknown kind "Instanse", expected one of Project, Environment, Resource, Bundle, Provisioner, Instance, Preview; did you mean "Instance"?"#
            ]
        ),
        ("duplicate-key", [#"case.yaml:8:5: spec.params.tier: duplicate key "tier" (first at line 7, column 5)"#]),
        (
            "duplicate-resource",
            ["case.yaml:3:18: metadata.name: duplicate Instance shop-dev-db, first declared at base.yaml:61:1"]
        ),
        (
            "invalid-identifier",
            [
                #"case.yaml:3:18: metadata.name: invalid character "W": only lower-case letters, digits and dashes between segments in "Web_1""#
            ]
        ),
        ("dangling-environment", [#"case.yaml:3:51: metadata.environment: unknown environment "shop-prod""#]),
        ("dangling-bundle", [#"case.yaml:5:11: spec.bundle: unknown bundle "ap"; did you mean "app"?"#]),
        (
            "dangling-provisioner",
            [#"case.yaml:5:16: spec.provisioner: unknown provisioner "hoook"; did you mean "hook"?"#]
        ),
        (
            "dangling-connection",
            [
                #"case.yaml:6:27: spec.connections.database: unknown instance "shop-dev-dbb"; did you mean "shop-dev-db"?"#
            ]
        ),
        (
            "dangling-default",
            [#"case.yaml:5:23: spec.defaults.aws-vpc: unknown resource "vcp" in environment shop-qa or project shop"#]
        ),
        (
            "wrong-artifact-type",
            [
                "case.yaml:11:27: spec.connections.database: artifact net.vpc is of type aws-vpc, but the connection expects postgres-endpoint"
            ]
        ),
        (
            "unwired-connection",
            [
                #"case.yaml:5:3: spec.connections.network: required connection "network" (type aws-vpc) is not wired and environment shop-bare has no default for aws-vpc"#
            ]
        ),
        (
            "cycle",
            [
                "case.yaml:12:47: spec.connections.upstream: connection cycle: shop-dev-a -> shop-dev-b -> shop-dev-c -> shop-dev-a"
            ]
        ),
        (
            "params-schema",
            [
                #"case.yaml:7:11: spec.params.tier: expected one of "small", "large", got "huge""#,
                #"case.yaml:8:11: spec.params.size: expected integer, got string "large""#,
                #"case.yaml:9:11: spec.params.name: "ABCDEFGHIJ" does not match pattern ^[a-z]+$"#,
                "case.yaml:9:11: spec.params.name: must be at most 8 characters long, got 10",
                #"case.yaml:10:5: spec.params.extra: unknown property "extra""#,
                #"case.yaml:17:11: spec.params.tier: missing required property "tier""#,
                "case.yaml:17:18: spec.params.size: must be at least 20, got 10",
            ]
        ),
        (
            "bad-params-schema",
            [
                #"case.yaml:9:20: spec.paramsSchema.properties.fifo.type: unknown type "bool"; did you mean "boolean"?"#,
                #"case.yaml:10:5: spec.paramsSchema.requird: unsupported schema keyword "requird"; did you mean "required"?"#,
            ]
        ),
        ("billion-laughs", ["case.yaml:4:36: aliases expand to more than 10000 nodes (limit on alias expansion)"]),
        (
            "several-files",
            [
                #"case.yaml:7:3: spec.replicas: unknown field "replicas""#,
                #"second.yml:1:13: apiVersion: expected one of "converge/v1", got "converge/v2"; did you mean "converge/v1"?"#,
            ]
        ),
    ]

    @Test(arguments: cases.map(\.fixture))
    func brokenFixture_reportsExactLocatedErrors(fixture: String) throws {
        let expected = Self.cases.first { $0.fixture == fixture }!.errors
        let files = try Paths.files("base") + Paths.files(fixture)
        #expect(throws: ManifestErrors.self) { try ManifestLoader().load(files: files) }
        do {
            _ = try ManifestLoader().load(files: files)
        } catch {
            #expect(error.diagnostics.map(\.description) == expected)
        }
    }

    @Test func everyFixtureHasACase() throws {
        let fixtures = try FileManager.default.contentsOfDirectory(atPath: Paths.fixtures.path).filter { $0 != "base" }
        #expect(Set(fixtures) == Set(Self.cases.map(\.fixture)))
    }

    @Test func base_decodesTypedResources() throws {
        let state = try ManifestLoader().load(files: Paths.files("base"))
        #expect(state.counts[.bundle] == 3)
        let dev = try #require(state.environments["shop-dev"])
        #expect(dev.policy == .auto)
        #expect(dev.prune == false)
        #expect(dev.defaults == ["aws-vpc": "shop-vpc"])
        #expect(state.environments["shop-bare"]?.policy == .review)
        let db = try #require(state.instances["shop-dev-db"])
        #expect(db.environment == "shop-dev")
        #expect(db.params == ["tier": "small", "size": 20])
        #expect(db.connections.isEmpty)
        #expect(
            state.sources[ResourceKey(.instance, "shop-dev-db")]
                == SourceLocation(file: "base.yaml", line: 61, column: 1))
        #expect(state.provisioners["hook"]?.webhook?.url == "http://127.0.0.1:9/deploy")
        #expect(state.bundles["app"]?.connections["cache"] == ConnectionSlot(type: "redis-endpoint", optional: true))
    }

    @Test func fileOrder_neverMatters() throws {
        let files = try Paths.files("base") + Paths.files("wrong-artifact-type").map { ("a-first.yaml", $0.text) }
        let forward = try? ManifestLoader().load(files: files)
        let backward = try? ManifestLoader().load(files: files.reversed())
        #expect(forward == nil && backward == nil)
        let valid = try Paths.files("base")
        let split = valid[0].text.components(separatedBy: "\n---\n")
        let shuffled = split.enumerated().map { ("part\(split.count - $0.offset).yaml", $0.element) }
        var fromParts = try ManifestLoader().load(files: shuffled)
        var whole = try ManifestLoader().load(files: valid)
        #expect(fromParts.sources.count == whole.sources.count)
        (fromParts.sources, whole.sources) = ([:], [:])
        #expect(fromParts == whole)
    }

    @Test func exampleRepository_isValidAndResolvesConnections() throws {
        let state = try ManifestLoader().load(directory: Paths.repository.appendingPathComponent("examples/gitops"))
        #expect(
            state.counts == [
                .project: 1, .environment: 2, .resource: 1, .bundle: 4, .provisioner: 2, .instance: 7, .preview: 0,
            ])
        #expect(state.environments["ecomm-staging"]?.policy == .auto)
        #expect(state.environments["ecomm-staging"]?.prune == true)
        #expect(state.environments["ecomm-production"]?.policy == .review)
        let app = try #require(state.instances["ecomm-production-app"])
        #expect(app.connections["database"] == ConnectionTarget(instance: "ecomm-production-db", artifact: "endpoint"))
        #expect(app.connections["network"] == ConnectionTarget(instance: "ecomm-production-network", artifact: "vpc"))
        #expect(app.params["env"] == ["LOG_LEVEL": "info", "REGION": "eu-west-1", "FEATURE_FLAGS": "checkout-v2"])
        #expect(state.instances["ecomm-staging-db"]?.params["storage_gb"] == 20)
        #expect(state.sources[ResourceKey(.project, "ecomm")]?.file == "project.yaml")
        #expect(state.sources[ResourceKey(.instance, "ecomm-staging-app")]?.file == "instances/staging.yaml")
    }

    @Test func hostileInput_isRefusedWithALocatedError() throws {
        let deep = String(repeating: "[", count: 20_000) + String(repeating: "]", count: 20_000)
        #expect(throws: ManifestErrors.self) { try ManifestLoader().load(files: [("deep.yaml", deep)]) }
        do {
            _ = try ManifestLoader().load(files: [("deep.yaml", deep)])
        } catch {
            #expect(error.description == "deep.yaml:1:65: nesting is deeper than the limit of 64 levels")
        }
        let limits = YAMLLimits(maxFileBytes: 100)
        do {
            _ = try ManifestLoader(limits: limits).load(files: [
                ("big.yaml", String(repeating: "# padding\n", count: 20))
            ])
            Issue.record("a file over the byte limit loaded")
        } catch {
            #expect(error.description == "big.yaml:1:1: file is 200 bytes, more than the limit of 100")
        }
    }

    @Test func directoryLoad_isRecursiveSkipsHiddenAndRefusesLargeFiles() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("converge-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(
            at: root.appendingPathComponent("nested/deeper"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(
            at: root.appendingPathComponent(".git"), withIntermediateDirectories: true)
        let base = try Paths.files("base")[0].text
        try base.write(to: root.appendingPathComponent("nested/deeper/base.yml"), atomically: true, encoding: .utf8)
        try "not: [yaml".write(to: root.appendingPathComponent(".git/ignored.yaml"), atomically: true, encoding: .utf8)
        try "not yaml at all".write(to: root.appendingPathComponent("README.md"), atomically: true, encoding: .utf8)
        let state = try ManifestLoader().load(directory: root)
        #expect(state.sources[ResourceKey(.project, "shop")]?.file == "nested/deeper/base.yml")
        do {
            _ = try ManifestLoader(limits: YAMLLimits(maxFileBytes: 10)).load(directory: root)
            Issue.record("a file over the byte limit loaded")
        } catch {
            #expect(error.diagnostics.map(\.message) == ["file is \(base.utf8.count) bytes, more than the limit of 10"])
        }
    }
}
