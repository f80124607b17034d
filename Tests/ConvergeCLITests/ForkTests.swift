import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

/// `converge env fork`: a whole environment copied in one step, deployed by its own policy, reset by a re-run.
@Suite(.serialized) struct ForkTests {
    @Test func fork_copiesAndWiresEveryInstance_rerunChangesNothing_andResetsManualEdits() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200, body: completedAnswer) }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(
            files: repository(
                url: server.url, instances: ["a": ["size": 1], "b": ["size": 2]], connections: ["b": "a"]))
        let dora = try await daemon.token("dora", role: "deployer")
        try await daemon.start()
        let store = try daemon.store()
        try await eventually("the parent is deployed") { try await store.completed(["p-dev-a", "p-dev-b"]) }

        let forked = try await daemon.cli(dora, "env", "fork", "p-dev", "pr1")
        #expect(forked.status == 0, "\(forked.stderr)")
        #expect(forked.stdout == "environment/p-pr1 forked from p-dev: 2 instances\n")
        try await eventually("the fork is deployed") { try await store.completed(["p-pr1-a", "p-pr1-b"]) }
        let b = try #require(try await store.history("p-pr1-b").first)
        #expect(b.snapshot.params == ["size": 2])
        #expect(b.snapshot.connectionParams == ["upstream": ["id": "x"]], "wired to the fork's own a")
        #expect(try await store.history("p-pr1-b").count == 1)
        #expect(try await store.history("p-dev-a").count == 1, "the parent is not touched")
        let environment = try await store.resource(ResourceKey(.environment, "p-pr1"))
        #expect(environment.resource.spec["forkOf"] == "p-dev")

        // Again: the same state, no deployment.
        let again = try await daemon.cli(dora, "env", "fork", "p-dev", "pr1", "-o", "json")
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try Value(json: again.stdout)["instances"] == ["p-pr1-a", "p-pr1-b"])
        #expect(try await store.history("p-pr1-a").count == 1)
        #expect(try await store.history("p-pr1-b").count == 1)

        // A manual edit of the fork is reset by the next fork.
        let edit = daemon.directory.appendingPathComponent("edit.yaml")
        try """
        apiVersion: converge/v1
        kind: Instance
        metadata: {name: a, project: p, environment: pr1}
        spec: {bundle: thing, version: 1.0.0, params: {size: 9}}
        """.write(to: edit, atomically: true, encoding: .utf8)
        #expect(try await daemon.cli(dora, "apply", "-f", edit.path).status == 0)
        try await eventually("the edit is deployed") {
            let newest = try await store.history("p-pr1-a").first
            return newest?.snapshot.params == ["size": 9] && newest?.status == .completed
        }
        let compared = try await daemon.cli(dora, "compare", "env", "p-dev", "p-pr1", "-o", "json")
        #expect(compared.status == 0, "\(compared.stderr)")
        #expect(
            try Value(json: compared.stdout)["changes"] == [["path": "a.params.size", "before": 1, "after": 9]],
            "the edit is the one difference")
        #expect(try await daemon.cli(dora, "env", "fork", "p-dev", "pr1").status == 0)
        #expect(try await daemon.cli(dora, "compare", "env", "p-dev", "p-pr1").stdout == "no differences\n")
        try await eventually("the fork is reset to its parent") {
            let newest = try await store.history("p-pr1-a").first
            return newest?.snapshot.params == ["size": 1] && newest?.status == .completed
        }

        // An environment default on the fork: an imported resource applied through the API, then an instance of the
        // fork that leaves its slot unwired gets it.
        let shared = daemon.directory.appendingPathComponent("shared.yaml")
        try """
        apiVersion: converge/v1
        kind: Resource
        metadata: {name: shared, project: p}
        spec: {type: thing-out, data: {id: shared-1}}
        ---
        apiVersion: converge/v1
        kind: Resource
        metadata: {name: other, project: p}
        spec: {type: other-out, data: {id: other-1}}
        """.write(to: shared, atomically: true, encoding: .utf8)
        #expect(try await daemon.cli(dora, "apply", "-f", shared.path).status == 0)
        let defaulted = try await daemon.cli(dora, "env", "default", "p-pr1", "shared")
        #expect(defaulted.status == 0, "\(defaulted.stderr)")
        #expect(try await daemon.cli(dora, "env", "default", "p-pr1", "shared").status == 0, "again: no change")
        let child = daemon.directory.appendingPathComponent("child.yaml")
        try """
        apiVersion: converge/v1
        kind: Instance
        metadata: {name: c, project: p, environment: pr1}
        spec: {bundle: child, version: 1.0.0}
        """.write(to: child, atomically: true, encoding: .utf8)
        #expect(try await daemon.cli(dora, "apply", "-f", child.path).status == 0)
        try await eventually("c is deployed with the default") { try await store.completed(["p-pr1-c"]) }
        #expect(try await store.history("p-pr1-c").first?.snapshot.connectionParams == ["upstream": ["id": "shared-1"]])
        let manifestOwned = try await daemon.cli(dora, "env", "default", "p-dev", "shared")
        #expect(manifestOwned.stderr.contains("environment p-dev is declared in the manifests"))
        #expect(manifestOwned.stderr.contains("(failed_precondition)"))
        let wrongType = try await daemon.cli(dora, "env", "default", "p-pr1", "other", "--type", "thing-out")
        #expect(wrongType.stderr.contains("is of type other-out; it cannot be the default for thing-out"))

        // Bad input changes nothing.
        let badName = try await daemon.cli(dora, "env", "fork", "p-dev", "PR_1")
        #expect(badName.status == 1)
        #expect(badName.stderr.contains("fork name:") && badName.stderr.contains("(invalid_argument)"))
        let unknown = try await daemon.cli(dora, "env", "fork", "p-nope", "x")
        #expect(unknown.stderr.contains("environment p-nope not found (not_found)"))
        // A fork of the fork needs its defaults: c leaves its slot to the default.
        let withoutDefaults = try await daemon.cli(dora, "env", "fork", "p-pr1", "pr2")
        #expect(withoutDefaults.status == 1)
        #expect(withoutDefaults.stderr.contains("(invalid_argument)"))
        let withDefaults = try await daemon.cli(dora, "env", "fork", "p-pr1", "pr2", "--copy-environment-defaults")
        #expect(withDefaults.status == 0, "\(withDefaults.stderr)")
        let otherParent = try await daemon.cli(dora, "env", "fork", "p-dev", "pr2")
        #expect(otherParent.status == 1)
        #expect(otherParent.stderr.contains("is a fork of p-pr1, not a fork of p-dev (failed_precondition)"))

        // Deleting an environment needs every instance decommissioned or orphaned; orphaning decommissions nothing.
        let forkOfFork = ["p-pr2-a", "p-pr2-b", "p-pr2-c"]
        try await eventually("the fork of the fork is deployed") { try await store.completed(forkOfFork) }
        let live = try await daemon.cli(dora, "env", "delete", "p-pr2")
        #expect(live.status == 1)
        #expect(live.stderr.contains("is PROVISIONED; decommission or orphan it first (failed_precondition)"))
        for id in forkOfFork {
            let orphaned = try await daemon.cli(dora, "instance", "orphan", id)
            #expect(orphaned.stdout == "instance/\(id) orphaned: no longer managed; nothing was decommissioned\n")
        }
        let deleted = try await daemon.cli(dora, "env", "delete", "p-pr2")
        #expect(deleted.status == 0, "\(deleted.stderr)")
        await #expect(throws: ConvergeError.self) { try await store.resource(ResourceKey(.environment, "p-pr2")) }
        try await eventually("the orphans' conditions say so") {
            try await store.instance("p-pr2-a").conditions.contains { $0.type == .orphaned && $0.status }
        }
        for id in forkOfFork {
            #expect(try await store.history(id).count == 1, "\(id): no decommission")
            #expect(try await store.instance(id).orphanedBy == "dora")
        }
        let declared = try await daemon.cli(dora, "env", "delete", "p-dev")
        #expect(declared.stderr.contains("environment p-dev is declared in the manifests at"))
        try await daemon.stop()
    }
}
