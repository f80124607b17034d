import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

/// Resources applied through the API with `converge apply`: owned by the API, checked like files, surviving reloads
/// and restarts, and never a way to change what the manifests declare.
@Suite(.serialized) struct APIResourceTests {
    /// An instance of bundle `thing` in p-dev, as a YAML file to apply.
    func instance(_ name: String, bundle: String = "thing", size: Int, resourceVersion: Int64? = nil) -> String {
        let version = resourceVersion.map { ", resourceVersion: \"\($0)\"" } ?? ""
        return """
            apiVersion: converge/v1
            kind: Instance
            metadata: {name: \(name), project: p, environment: dev\(version)}
            spec:
              bundle: \(bundle)
              version: 1.0.0
              params: {size: \(size)}
            """
    }

    @Test func applyRightAfterItsDiff_isRecordedAndDeployed() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200, body: completedAnswer) }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(files: repository(url: server.url, instances: ["a": ["size": 1]]))
        let dora = try await daemon.token("dora", role: "deployer")
        try await daemon.start()
        let store = try daemon.store()
        let file = daemon.directory.appendingPathComponent("c.yaml")
        try instance("c", size: 3).write(to: file, atomically: true, encoding: .utf8)
        // The diff is a dry run of the apply: the apply after it must still record and deploy the change.
        #expect(try await daemon.cli(dora, "diff", "-f", file.path).status == 1)
        #expect(try await daemon.cli(dora, "apply", "-f", file.path).status == 0)
        try await eventually("c is deployed") {
            let newest = try await store.history("p-dev-c").first
            return newest?.snapshot.params == ["size": 3] && newest?.status == .completed
        }
    }

    @Test func appliedInstance_isDeployedOwnedByTheAPI_andSurvivesAReloadAndARestart() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200, body: completedAnswer) }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(files: repository(url: server.url, instances: ["a": ["size": 1]]))
        let dora = try await daemon.token("dora", role: "deployer")
        let vera = try await daemon.token("vera", role: "viewer")
        try await daemon.start()
        let store = try daemon.store()
        try await eventually("a is deployed") { try await store.history("p-dev-a").first?.status == .completed }
        let file = daemon.directory.appendingPathComponent("b.yaml")
        try instance("b", size: 2).write(to: file, atomically: true, encoding: .utf8)

        let viewerApplies = try await daemon.cli(vera, "apply", "-f", file.path)
        #expect(viewerApplies.status == 1)
        #expect(viewerApplies.stderr.contains("(permission_denied)"))
        let applied = try await daemon.cli(dora, "apply", "-f", file.path)
        #expect(applied.status == 0, "\(applied.stderr)")
        #expect(applied.stdout == "instance/p-dev-b created\n")
        try await eventually("b is deployed") { try await store.history("p-dev-b").first?.status == .completed }
        let recorded = try await store.resource(ResourceKey(.instance, "p-dev-b"))
        #expect(recorded.resource.source?.isAPI == true)
        #expect(try await daemon.cli(dora, "apply", "-f", file.path).stdout == "instance/p-dev-b unchanged\n")
        let audited = try await daemon.cli(vera, "audit", "--action", "resource.applied", "-o", "json")
        #expect(try Value(json: audited.stdout)["items"]?.arrayValue?.count == 1, "an unchanged apply writes nothing")
        #expect(try await daemon.cli(dora, "diff", "-f", file.path).status == 0, "no difference")
        let edited = daemon.directory.appendingPathComponent("b-edited.yaml")
        try instance("b", size: 7).write(to: edited, atomically: true, encoding: .utf8)
        let diff = try await daemon.cli(dora, "diff", "-f", edited.path)
        #expect(diff.status == 1, "\(diff.stderr)")
        #expect(diff.stdout == "instance/p-dev-b\n  params.size: 2 -> 7\n")
        #expect(try await store.resource(ResourceKey(.instance, "p-dev-b")).resourceVersion == recorded.resourceVersion)

        // What the manifests declare is theirs: the API refuses it, naming the file.
        let manifestOwned = daemon.directory.appendingPathComponent("a.yaml")
        try instance("a", size: 9).write(to: manifestOwned, atomically: true, encoding: .utf8)
        let refused = try await daemon.cli(dora, "apply", "-f", manifestOwned.path)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("Instance p-dev-a is declared in the manifests at a.yaml:1:1"))
        #expect(refused.stderr.contains("(failed_precondition)"))

        // A stale resource version, a dangling reference and a Provisioner without admin change nothing.
        try instance("b", size: 3, resourceVersion: recorded.resourceVersion - 1).write(
            to: file, atomically: true, encoding: .utf8)
        let stale = try await daemon.cli(dora, "apply", "-f", file.path)
        #expect(stale.status == 1)
        #expect(stale.stderr.contains("(aborted)"))
        let dangling = daemon.directory.appendingPathComponent("c.yaml")
        try instance("c", bundle: "nosuch", size: 1).write(to: dangling, atomically: true, encoding: .utf8)
        let invalid = try await daemon.cli(dora, "apply", "-f", dangling.path)
        #expect(invalid.status == 1)
        #expect(invalid.stderr.contains("api:Instance/p-dev-c"))
        #expect(invalid.stderr.contains("(invalid_argument)"))
        let provisioner = daemon.directory.appendingPathComponent("hook.yaml")
        try """
        apiVersion: converge/v1
        kind: Provisioner
        metadata: {name: other}
        spec:
          webhook: {url: "\(server.url)"}
        """.write(to: provisioner, atomically: true, encoding: .utf8)
        let notAdmin = try await daemon.cli(dora, "apply", "-f", provisioner.path)
        #expect(notAdmin.stderr.contains("declaring a Provisioner needs admin (permission_denied)"))
        #expect(try await store.resource(ResourceKey(.instance, "p-dev-b")).resourceVersion == recorded.resourceVersion)

        // A reload of the manifests and a restart keep it.
        try daemon.write(repository(url: server.url, instances: ["a": ["size": 5]]))
        #expect(try await daemon.sync() == 202)
        try await eventually("a is deployed again") {
            let newest = try await store.history("p-dev-a").first
            return newest?.snapshot.params == ["size": 5] && newest?.status == .completed
        }
        try await daemon.stop()
        try await daemon.start()
        try await eventually("the daemon is ready") { await daemon.isReady() }
        #expect(try await store.resource(ResourceKey(.instance, "p-dev-b")).resource.source?.isAPI == true)
        #expect(try await store.history("p-dev-b").count == 1)

        let deleted = try await daemon.cli(dora, "delete", "instances", "p-dev-b")
        #expect(deleted.status == 0, "\(deleted.stderr)")
        await #expect(throws: ConvergeError.self) { try await store.resource(ResourceKey(.instance, "p-dev-b")) }
        let audit = try await daemon.cli(vera, "audit", "--actor", "dora", "-o", "json").stdout
        #expect(audit.contains("resource.applied") && audit.contains("resource.deleted"))
        try await daemon.stop()
    }
}
