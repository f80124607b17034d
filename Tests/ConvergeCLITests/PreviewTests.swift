import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

/// `converge preview` end to end: the example repository and the example preview file, the example provisioner on
/// loopback, the real daemon and CLI, as a pull-request pipeline runs them.
@Suite(.serialized) struct PreviewTests {
    static let file = ConvergeBinary.repository.appendingPathComponent("examples/preview.yaml").path
    static let variables = ["PR_NUMBER": "7", "GIT_SHA": "abc123"]
    static let names = ["db", "queue", "app"]

    /// The example preview file with `replacing` replaced by `with`, written next to the daemon's files.
    static func variant(of daemon: DaemonProcess, _ name: String, replacing: String, with: String) throws -> String {
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(text.contains(replacing), "the example preview file changed: \(replacing) is gone")
        let url = daemon.directory.appendingPathComponent(name)
        try text.replacingOccurrences(of: replacing, with: with).write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    @Test func preview_standsUpConvergesAndIsDestroyed_andATTLDestroysItByItself() async throws {
        let provisioner = try ExampleProvisioner(delay: 0.1)
        defer { withExtendedLifetime(provisioner) {} }
        let daemon = try await provisioner.startDaemon()
        let dora = try await daemon.token("dora", role: "deployer")
        let store = try daemon.store()
        func preview(_ arguments: String..., file: String = PreviewTests.file) async throws -> ConvergeBinary.Result {
            try await daemon.cli(
                dora, environment: Self.variables, ["preview"] + arguments + ["-f", file, "--follow", "-o", "json"])
        }
        try await eventually("staging is deployed", timeout: .seconds(60)) {
            try await store.completed(Self.names.map { "ecomm-staging-\($0)" })
        }
        let password = daemon.directory.appendingPathComponent("password")
        try "s3cret".write(to: password, atomically: true, encoding: .utf8)
        let secret = try await daemon.cli(
            dora, "secret", "set", "ecomm-staging-db", "password", "--from-file", password.path)
        #expect(secret.status == 0, "\(secret.stderr)")

        // Up: every instance deployed with its connections resolved inside the preview, the outputs printed for CI.
        let up = try await preview("pr7")
        #expect(up.status == 0, "\(up.stderr)")
        let shown = try Value(json: up.stdout)
        #expect(shown["environment"] == "ecomm-pr7")
        let instances = shown["instances"]?.arrayValue ?? []
        #expect(instances.compactMap { $0["status"]?.stringValue } == ["PROVISIONED", "PROVISIONED", "PROVISIONED"])
        let app = try #require(instances.first { $0["id"] == "ecomm-pr7-app" })
        #expect(app["outputs"]?["url"]?["endpoint"] == "url.ecomm-pr7-app.example.internal")
        let deployed = try #require(try await store.history("ecomm-pr7-app").first)
        #expect(deployed.snapshot.params["image"] == "registry.example.com/shop:abc123", "the variable expanded")
        #expect(deployed.snapshot.connectionParams["database"]?["endpoint"] == "endpoint.ecomm-pr7-db.example.internal")
        #expect(deployed.snapshot.connectionParams["network"]?["vpc_id"] == "vpc-0a1b2c3d4e5f", "the pinned default")
        #expect(
            try await store.history("ecomm-pr7-db").first?.snapshot.params["storage_gb"] == 20, "the override merged")
        #expect(try await daemon.cli(dora, "secret", "list", "ecomm-pr7-db").stdout.contains("password") == false)
        let counts = try await Self.names.asyncMap { try await store.history("ecomm-pr7-\($0)").count }

        // Again: it converges, and nothing is deployed again.
        let again = try await preview("pr7")
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try await Self.names.asyncMap { try await store.history("ecomm-pr7-\($0)").count } == counts)

        // A manual edit is reset by the next run; asking for the secrets now backfills them.
        let edit = daemon.directory.appendingPathComponent("edit.yaml")
        try """
        apiVersion: converge/v1
        kind: Instance
        metadata: {name: app, project: ecomm, environment: pr7}
        spec:
          bundle: app-service
          version: 2.3.0
          params: {image: "registry.example.com/shop:hotfix", replicas: 5}
          connections: {database: db, queue: queue}
        """.write(to: edit, atomically: true, encoding: .utf8)
        #expect(try await daemon.cli(dora, "apply", "-f", edit.path).status == 0)
        try await eventually("the edit is deployed") {
            let newest = try await store.history("ecomm-pr7-app").first
            return newest?.snapshot.params["replicas"] == 5 && newest?.status == .completed
        }
        let withSecrets = try Self.variant(
            of: daemon, "secrets.yaml", replacing: "copySecrets: false", with: "copySecrets: true")
        let reset = try await preview("pr7", file: withSecrets)
        #expect(reset.status == 0, "\(reset.stderr)")
        let newest = try #require(try await store.history("ecomm-pr7-app").first)
        #expect(newest.snapshot.params["replicas"] == 1 && newest.status == .completed, "the edit is reset")
        #expect(try await daemon.cli(dora, "secret", "list", "ecomm-pr7-db").stdout.contains("password"))

        // A change of the database and the app together: the app waits for its database, as the rollout orders them,
        // though the reconciler alone would deploy both at once (the app's connection does not change).
        let text = try String(contentsOfFile: withSecrets, encoding: .utf8)
        #expect(text.contains("storage_gb: 20") && text.contains("replicas: 1"))
        try text.replacingOccurrences(of: "storage_gb: 20", with: "storage_gb: 30")
            .replacingOccurrences(of: "replicas: 1", with: "replicas: 2")
            .write(toFile: withSecrets, atomically: true, encoding: .utf8)
        let both = try await preview("pr7", file: withSecrets)
        #expect(both.status == 0, "\(both.stderr)")
        let db1 = try #require(try await store.history("ecomm-pr7-db").first)
        let app1 = try #require(try await store.history("ecomm-pr7-app").first)
        #expect(db1.snapshot.params["storage_gb"] == 30 && app1.snapshot.params["replicas"] == 2)
        #expect(app1.createdAt >= db1.finishedAt!, "the app's deployment came after its database's")

        // Destroy: downstream first, every instance decommissioned, the environment and the preview gone.
        let destroyed = try await daemon.cli(dora, "preview", "destroy", "pr7", "--follow")
        #expect(destroyed.status == 0, "\(destroyed.stderr)")
        for name in Self.names {
            #expect(try await store.instance("ecomm-pr7-\(name)").status == .decommissioned)
            #expect(
                !FileManager.default.fileExists(
                    atPath: provisioner.state.appendingPathComponent("ecomm-pr7-\(name).json").path))
        }
        let app0 = try #require(try await store.history("ecomm-pr7-app").first)
        let db0 = try #require(try await store.history("ecomm-pr7-db").first)
        #expect(app0.finishedAt! <= db0.startedAt!, "the app went down before its database")
        let gone = try await daemon.cli(dora, "get", "environments", "ecomm-pr7")
        #expect(gone.status == 1 && gone.stderr.contains("not_found"), "\(gone.stderr)")
        #expect(try await daemon.cli(dora, "preview", "show", "pr7").status == 1)

        // A time to live destroys a preview by itself.
        // Not followed: the answer comes at once, well before the time to live runs out.
        let short = try Self.variant(of: daemon, "ttl.yaml", replacing: #"ttl: "${PREVIEW_TTL:-72h}""#, with: "ttl: 5s")
        let ttl = try await daemon.cli(
            dora, environment: Self.variables, ["preview", "pr8", "-f", short, "-o", "json"])
        #expect(ttl.status == 0, "\(ttl.stderr)")
        #expect(try Value(json: ttl.stdout)["expiresAt"] != nil)
        try await eventually("the expired preview is destroyed", timeout: .seconds(60)) {
            (try? await store.resource(ResourceKey(.environment, "ecomm-pr8"))) == nil
        }
        for name in Self.names { #expect(try await store.instance("ecomm-pr8-\(name)").status == .decommissioned) }
    }

    @Test func badInput_isAClearErrorAndChangesNothing() async throws {
        let provisioner = try ExampleProvisioner(delay: 0)
        defer { withExtendedLifetime(provisioner) {} }
        let daemon = try await provisioner.startDaemon()
        let dora = try await daemon.token("dora", role: "deployer")
        let store = try daemon.store()
        func up(_ name: String, _ file: String, _ variables: [String: String] = PreviewTests.variables) async throws
            -> ConvergeBinary.Result
        {
            try await daemon.cli(dora, environment: variables, ["preview", name, "-f", file])
        }
        let before = try await store.desiredState().version

        let base = try Self.variant(
            of: daemon, "base.yaml", replacing: "baseEnvironment: staging", with: "baseEnvironment: nope")
        let unknownBase = try await up("pr1", base)
        #expect(unknownBase.status == 1)
        #expect(
            unknownBase.stderr.contains("base environment ecomm-nope not found (not_found)"), "\(unknownBase.stderr)")

        let malformed = try Self.variant(of: daemon, "bad.yaml", replacing: "replicas: 1", with: "replicas: [1")
        let parse = try await up("pr1", malformed)
        #expect(parse.status == 2)
        #expect(parse.stderr.contains("bad.yaml:"), "\(parse.stderr)")

        let undefined = try await up("pr1", Self.file, [:])
        #expect(undefined.status == 2)
        #expect(undefined.stderr.contains("PR_NUMBER"), "\(undefined.stderr)")

        let badName = try await up("PR 1", Self.file)
        #expect(badName.status == 2, "\(badName.stderr)")

        let wrongInstance = try Self.variant(of: daemon, "instance.yaml", replacing: "  db:\n", with: "  dbx:\n")
        let located = try await up("pr1", wrongInstance)
        #expect(located.status == 1)
        #expect(located.stderr.contains("api:Preview/ecomm-pr1"), "\(located.stderr)")

        #expect(try await store.desiredState().version == before, "nothing was applied")
        #expect((try? await store.resource(ResourceKey(.environment, "ecomm-pr1"))) == nil)
    }
}

extension Array {
    /// The results of `transform` on each element, in order.
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
