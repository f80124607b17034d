import ConvergeCore
import ConvergeTestSupport
import Foundation
import Testing

@testable import ConvergeManifests

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

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
            [
                #"case.yaml:5:23: spec.defaults.aws-vpc: unknown resource "vcp" in environment shop-qa or project shop; did you mean "vpc"?"#
            ]
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
                .project: 1, .environment: 2, .resource: 1, .bundle: 7, .provisioner: 3, .instance: 7, .preview: 0,
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

/// Issue 6: reloads cost in proportion to what changed (CONVENTIONS 20).
@Suite struct ManifestLoaderReloadTests {
    let environment = """
        apiVersion: converge/v1
        kind: Environment
        metadata: {name: qa, project: shop}
        spec: {policy: auto, description: aaaa}

        """

    /// A directory holding the base fixture, split into one file per document, and `env.yaml`.
    func repository() throws -> TemporaryDirectory {
        let root = try TemporaryDirectory()
        let documents = try Paths.files("base")[0].text.components(separatedBy: "\n---\n")
        for (index, document) in documents.enumerated() { try root.write("base/\(index).yaml", document) }
        try root.write("env.yaml", environment)
        return root
    }

    /// Sets the modification time of every file below `root` to `date`, as if they had been written then.
    func setModified(_ root: TemporaryDirectory, to date: Date) throws {
        let enumerator = FileManager.default.enumerator(atPath: root.url.path)!
        for case let path as String in enumerator where path.hasSuffix(".yaml") {
            try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: root.path(path))
        }
    }

    /// Overwrites a file in place (same inode) and gives it back the modification time it had, to the nanosecond.
    func overwriteInPlace(_ path: String, with text: String) throws {
        var before = stat()
        #expect(lstat(path, &before) == 0)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.write(contentsOf: Data(text.utf8))
        try handle.truncate(atOffset: UInt64(text.utf8.count))
        try handle.close()
        #if canImport(Darwin)
            let times = [before.st_atimespec, before.st_mtimespec]
        #else
            let times = [before.st_atim, before.st_mtim]
        #endif
        #expect(utimensat(AT_FDCWD, path, times, 0) == 0)
    }

    func identity(_ path: String) -> FileIdentity {
        var info = stat()
        _ = lstat(path, &info)
        return FileIdentity(info)
    }

    @Test func unchangedReload_neitherReadsNorParses() throws {
        let root = try repository()
        defer { root.remove() }
        try setModified(root, to: Date(timeIntervalSinceNow: -3600))
        let loader = ManifestLoader()
        let first = try loader.reload(directory: root.url)
        let files = loader.lastStatistics.files
        #expect(files == 10)
        #expect(first.changed)
        #expect(loader.lastStatistics == .init(files: files, read: files, parsed: files))
        let second = try loader.reload(directory: root.url)
        #expect(!second.changed)
        #expect(second.state == first.state)
        #expect(loader.lastStatistics == .init(files: files, read: 0, parsed: 0))
    }

    @Test func rememberedParamsChecks_followTheBundleSchemaAndTheInstance() throws {
        let root = try TemporaryDirectory()
        defer { root.remove() }
        func bundle(default size: Int, maximum: Int = 9) -> String {
            baseManifests(spec: #"{webhook: {url: "http://127.0.0.1:1/x"}}"#)
                + """
                apiVersion: converge/v1
                kind: Bundle
                metadata: {name: b}
                spec:
                  provisioner: hook
                  paramsSchema: {type: object, properties: {size: {type: integer, maximum: \(maximum), default: \(size)}}}
                """
        }
        func instance(_ name: String, params: String) -> String {
            """
            apiVersion: converge/v1
            kind: Instance
            metadata: {name: \(name), project: p, environment: dev}
            spec: {bundle: b, params: \(params)}
            """
        }
        try root.write("bundle.yaml", bundle(default: 2))
        try root.write("a.yaml", instance("a", params: "{}"))
        try root.write("b.yaml", instance("b", params: "{size: 5}"))
        let loader = ManifestLoader()
        var state = try loader.reload(directory: root.url).state
        #expect(state.instances["p-dev-a"]?.params == ["size": 2])
        // A new schema re-checks the instances of other, unchanged files.
        try root.write("bundle.yaml", bundle(default: 3))
        state = try loader.reload(directory: root.url).state
        #expect(state.instances["p-dev-a"]?.params == ["size": 3])
        #expect(state.instances["p-dev-b"]?.params == ["size": 5])
        // An edited instance is checked again.
        try root.write("b.yaml", instance("b", params: "{size: 12}"))
        #expect(throws: ManifestErrors.self) { try loader.reload(directory: root.url) }
        try root.write("b.yaml", instance("b", params: "{size: 6}"))
        state = try loader.reload(directory: root.url).state
        #expect(state.instances["p-dev-b"]?.params == ["size": 6])
        // A schema that unchanged params no longer satisfy: a located error with the exact field path, although
        // the params' own YAML is no longer kept.
        try root.write("bundle.yaml", bundle(default: 3, maximum: 5))
        do {
            _ = try loader.reload(directory: root.url)
            Issue.record("params above the new maximum were accepted")
        } catch {
            let messages = error.diagnostics.map(\.description)
            #expect(messages.count == 1)
            #expect(messages.first?.hasPrefix("b.yaml:4:") == true)
            #expect(messages.first?.contains("spec.params.size") == true)
        }
    }

    @Test func recentlyWrittenFiles_areHashedAgainButNotParsed() throws {
        let root = try repository()
        defer { root.remove() }
        let loader = ManifestLoader()
        _ = try loader.reload(directory: root.url)
        let again = try loader.reload(directory: root.url)
        #expect(!again.changed)
        #expect(loader.lastStatistics.read == 10)
        #expect(loader.lastStatistics.parsed == 0)
    }

    @Test func editsOfTheSameSizeWithinOneSecond_arePickedUp() throws {
        let root = try repository()
        defer { root.remove() }
        let path = root.path("env.yaml")
        let loader = ManifestLoader()
        #expect(try loader.reload(directory: root.url).state.environments["shop-qa"]?.description == "aaaa")
        let before = identity(path)
        for text in ["bbbb", "cccc"] {
            try overwriteInPlace(path, with: environment.replacingOccurrences(of: "aaaa", with: text))
            // Same inode, size and modification time: only the content tells the edit apart.
            #expect(identity(path) == before)
            let reloaded = try loader.reload(directory: root.url)
            #expect(reloaded.changed)
            #expect(reloaded.state.environments["shop-qa"]?.description == text)
            #expect(loader.lastStatistics.parsed == 1)
        }
    }

    @Test func settledFileWithANewModificationTime_isReadAgain() throws {
        let root = try repository()
        defer { root.remove() }
        try setModified(root, to: Date(timeIntervalSinceNow: -3600))
        let loader = ManifestLoader()
        _ = try loader.reload(directory: root.url)
        try root.write("env.yaml", environment.replacingOccurrences(of: "aaaa", with: "bbbb"))
        try FileManager.default.setAttributes(
            [.modificationDate: Date(timeIntervalSinceNow: -1800)], ofItemAtPath: root.path("env.yaml"))
        let reloaded = try loader.reload(directory: root.url)
        #expect(reloaded.changed)
        #expect(reloaded.state.environments["shop-qa"]?.description == "bbbb")
        #expect(loader.lastStatistics == .init(files: 10, read: 1, parsed: 1))
    }

    @Test func editThatDeclaresTheSame_isParsedButNotAChange() throws {
        let root = try repository()
        defer { root.remove() }
        let loader = ManifestLoader()
        let first = try loader.reload(directory: root.url)
        try root.write("env.yaml", environment + "# a comment at the end\n")
        let reloaded = try loader.reload(directory: root.url)
        #expect(loader.lastStatistics.parsed == 1)
        #expect(!reloaded.changed)
        #expect(reloaded.state == first.state)
    }

    @Test func addedAndRemovedFiles_areChanges() throws {
        let root = try repository()
        defer { root.remove() }
        let loader = ManifestLoader()
        _ = try loader.reload(directory: root.url)
        try root.write("more.yaml", environment.replacingOccurrences(of: "qa", with: "uat"))
        let added = try loader.reload(directory: root.url)
        #expect(added.changed)
        #expect(added.state.environments["shop-uat"] != nil)
        try FileManager.default.removeItem(atPath: root.path("more.yaml"))
        let removed = try loader.reload(directory: root.url)
        #expect(removed.changed)
        #expect(removed.state.environments["shop-uat"] == nil)
        #expect(loader.lastStatistics.parsed == 0)
    }

    @Test func brokenRepository_reportsTheSameErrorsWithoutParsingAgain() throws {
        let root = try repository()
        defer { root.remove() }
        try root.write("env.yaml", environment.replacingOccurrences(of: "policy: auto", with: "policy: fast"))
        try setModified(root, to: Date(timeIntervalSinceNow: -3600))
        let loader = ManifestLoader()
        func errors() -> [String] {
            do {
                _ = try loader.reload(directory: root.url)
                return []
            } catch {
                return error.diagnostics.map(\.description)
            }
        }
        let expected = [#"env.yaml:4:16: spec.policy: expected one of "auto", "review", "two-phase", got "fast""#]
        #expect(errors() == expected)
        #expect(loader.lastStatistics == .init(files: 10, read: 10, parsed: 10))
        #expect(errors() == expected)
        #expect(loader.lastStatistics == .init(files: 10, read: 0, parsed: 0))
        try root.write("env.yaml", environment)
        #expect(try loader.reload(directory: root.url).changed)
    }
}

/// The base fixture with an environment `prod` whose spec has `key` set to `value` (YAML lines indented under it).
func loadEnvironment(spec key: String, _ value: String) throws(ManifestErrors) -> DesiredState {
    let environment = """
        apiVersion: converge/v1
        kind: Environment
        metadata:
          name: prod
          project: shop
        spec:
          policy: auto
          \(key):
        \(value)
        """
    return try ManifestLoader().load(files: try! Paths.files("base") + [("envs/prod.yaml", environment)])
}

/// The errors of `loadEnvironment(spec:_:)`, as printed; none when it loads.
func environmentErrors(spec key: String, _ value: String) -> [String] {
    do {
        _ = try loadEnvironment(spec: key, value)
        return []
    } catch {
        return error.diagnostics.map(\.description)
    }
}

/// Issue 6: environments may retry failed deployments automatically (`spec.retry`).
@Suite struct EnvironmentRetryTests {
    func load(retry: String) throws(ManifestErrors) -> DesiredState {
        try loadEnvironment(spec: "retry", retry)
    }

    func errors(retry: String) -> [String] {
        environmentErrors(spec: "retry", retry)
    }

    @Test(arguments: [
        ("3", "30s", RetryPolicy(limit: 3, backoff: 30)),
        ("1", "500ms", RetryPolicy(limit: 1, backoff: 0.5)),
        ("10", "5m", RetryPolicy(limit: 10, backoff: 300)),
        ("2", "24h", RetryPolicy(limit: 2, backoff: 86_400)),
    ])
    func retry_isDecoded(limit: String, backoff: String, expected: RetryPolicy) throws {
        let state = try load(retry: "    limit: \(limit)\n    backoff: \(backoff)\n")
        #expect(state.environments["shop-prod"]?.retry == expected)
    }

    @Test func absentRetry_meansNoAutomaticRetry() throws {
        let state = try ManifestLoader().load(files: Paths.files("base"))
        #expect(state.environments["shop-dev"]?.retry == nil)
    }

    @Test func badRetry_isRefusedWithLocatedErrors() {
        #expect(
            errors(retry: "    backoff: soon\n    limit: 3\n") == [
                #"envs/prod.yaml:9:14: spec.retry.backoff: expected a duration like 30s, 5m or 1h, got "soon""#
            ])
        #expect(
            errors(retry: "    limit: 0\n    backoff: 25h\n") == [
                "envs/prod.yaml:9:12: spec.retry.limit: must be at least 1, got 0",
                #"envs/prod.yaml:10:14: spec.retry.backoff: must be at most 24h, got "25h""#,
            ])
        #expect(
            errors(retry: "    limit: 11\n    backoff: 1.5h\n") == [
                "envs/prod.yaml:9:12: spec.retry.limit: must be at most 10, got 11",
                #"envs/prod.yaml:10:14: spec.retry.backoff: expected a duration like 30s, 5m or 1h, got "1.5h""#,
            ])
        #expect(
            errors(retry: "    limit: \"3\"\n    backof: 30s\n") == [
                #"envs/prod.yaml:9:5: spec.retry.backoff: missing required field "backoff""#,
                #"envs/prod.yaml:9:12: spec.retry.limit: expected integer, got string "3""#,
                #"envs/prod.yaml:10:5: spec.retry.backof: unknown field "backof"; did you mean "backoff"?"#,
            ])
    }

    @Test func duration_acceptsDigitsAndAUnitOnly() {
        let cases: [(String, Double?)] = [
            ("500ms", 0.5), ("0s", 0), ("30s", 30), ("5m", 300), ("1h", 3600), ("24h", 86_400), ("soon", nil),
            ("30", nil), ("s", nil), ("1.5h", nil), ("-1s", nil), ("30S", nil), ("1d", nil), (" 30s", nil),
            ("30s ", nil), ("99999999999999999999h", nil), ("١s", nil),
        ]
        for (text, seconds) in cases {
            #expect(ManifestDuration.seconds(text) == seconds, "\(text)")
        }
    }
}

/// Issue 6: validation stays linear, and long keys and values are quoted cut short, once.
@Suite struct ManifestLoaderScaleTests {
    func errors(_ files: [(path: String, text: String)], limits: YAMLLimits = YAMLLimits()) -> [String] {
        do {
            _ = try ManifestLoader(limits: limits).load(files: files)
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    @Test func generatedRepository_loadsAndWiresEveryConnection() throws {
        let state = try ManifestLoader().load(files: GeneratedRepository.files(instances: 4_000))
        #expect(state.instances.count == 4_000)
        #expect(state.environments.count == 10)
        let app = try #require(state.instances["shop-env7-app997"])
        #expect(app.connections["database"] == ConnectionTarget(instance: "shop-env7-db997", artifact: "endpoint"))
        #expect(app.connections["queue"] == ConnectionTarget(instance: "shop-env7-queue997", artifact: "queue"))
        #expect(state.instances["shop-env7-db997"]?.params["size"] == 20)
    }

    @Test func danglingConnection_inALargeRepository_stillSuggestsTheTarget() {
        var files = GeneratedRepository.files(instances: 2_000)
        files.append(
            (
                "typo.yaml",
                """
                apiVersion: converge/v1
                kind: Instance
                metadata: {name: late, project: shop, environment: env3}
                spec:
                  bundle: app
                  connections: {database: dbb403, queue: queue403}
                """
            ))
        #expect(
            errors(files) == [
                #"typo.yaml:6:27: spec.connections.database: unknown instance "shop-env3-dbb403"; did you mean "shop-env3-db403"?"#
            ])
    }

    @Test func longConnectionChain_isCheckedWithoutRecursionAndItsCycleReported() {
        let count = 20_000
        var text = """
            apiVersion: converge/v1
            kind: Bundle
            metadata: {name: link}
            spec:
              provisioner: hook
              connections: {next: {type: link, optional: true}}
              artifacts: {out: {type: link}}

            """
        for index in 0..<count {
            let next = index + 1 < count ? "link\(index + 1)" : "link0"
            text += """
                ---
                apiVersion: converge/v1
                kind: Instance
                metadata: {name: link\(index), project: shop, environment: dev}
                spec: {bundle: link, connections: {next: \(next)}}

                """
        }
        let found = errors((try! Paths.files("base")) + [("chain.yaml", text)])
        #expect(found.count == 1)
        #expect(
            found.first?.hasPrefix("chain.yaml:12:42: spec.connections.next: connection cycle: shop-dev-link0 -> ")
                == true)
        #expect(found.first?.hasSuffix("-> shop-dev-link19999 -> shop-dev-link0") == true)
    }

    @Test func longKeysAndValues_areQuotedCutShortOnce() {
        let key = String(repeating: "k", count: 1 << 20)
        let value = String(repeating: "v", count: 1 << 20)
        let excerpt = { (text: String) in "\"" + text.prefix(60) + "…(1048576 bytes)\"" }
        // A plain key is at most 1024 characters in YAML: a longer one must be an explicit key (`? key`).
        let document = """
            apiVersion: converge/v1
            kind: Environment
            metadata: {name: qa, project: shop}
            spec:
              policy: \(value)
              ? \(key)
              : 1
            ---
            apiVersion: converge/v1
            kind: Instance
            metadata: {name: web, project: shop, environment: dev}
            spec:
              bundle: network
              params:
                ? \(key)
                : 1
                ? \(key)
                : 2

            """
        let found = errors(
            (try! Paths.files("base")) + [("case.yaml", document)], limits: YAMLLimits(maxFileBytes: 8 << 20))
        #expect(
            found == [
                #"case.yaml:5:11: spec.policy: expected one of "auto", "review", "two-phase", got "#
                    + excerpt(value),
                "case.yaml:6:5: spec: unknown field \(excerpt(key))",
                "case.yaml:17:7: spec.params: duplicate key \(excerpt(key)) (first at line 15, column 7)",
            ])
    }
}
