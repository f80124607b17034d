import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

/// `converge instance copy|promote`: one instance's params and version onto another, planned before anything
/// applies; every refusal changes nothing.
@Suite(.serialized) struct PromoteTests {
    /// A provisioner that completes every deployment; a plan answers with a plan result after a while, so that a
    /// provision queued behind it would visibly have to wait.
    func provisioner() async throws -> LoopbackServer {
        try await LoopbackServer.start { _, request in
            let deployment = request.json?["deployment"] as? [String: Any]
            guard deployment?["action"] as? String == "plan" else {
                return ScriptedResponse(status: 200, body: completedAnswer, delay: .milliseconds(50))
            }
            return ScriptedResponse(
                status: 200, body: #"{"status": "completed", "outputs": {}, "planResult": {"would": "change"}}"#,
                delay: .milliseconds(300))
        }
    }

    /// Writes `text` to a file of the daemon's directory (outside its manifests) and returns its path.
    func file(_ daemon: DaemonProcess, _ name: String, _ text: String) throws -> String {
        let url = daemon.directory.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    @Test func promote_mergesParamsAndVersion_plansBeforeProvisioning_rerunChangesNothing_refusalsChangeNothing()
        async throws
    {
        let server = try await provisioner()
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(
            files: repository(
                url: server.url,
                instances: ["a": ["size": 1, "tier": ["name": "small", "replicas": 1]], "b": ["size": 2]],
                connections: ["b": "a"]))
        let dora = try await daemon.token("dora", role: "deployer")
        try await daemon.start()
        let store = try daemon.store()
        func state(_ id: String) async throws -> (StoredResource, [Deployment]) {
            (try await store.resource(ResourceKey(.instance, id)), try await store.history(id))
        }
        try await eventually("the parent is deployed") { try await store.completed(["p-dev-a", "p-dev-b"]) }
        let secret = try file(daemon, "token.txt", "s3cret")
        #expect(try await daemon.cli(dora, "secret", "set", "p-dev-a", "TOKEN", "--from-file", secret).status == 0)
        #expect(try await daemon.cli(dora, "env", "fork", "p-dev", "pr1").status == 0)
        try await eventually("the fork is deployed") { try await store.completed(["p-pr1-a", "p-pr1-b"]) }

        // Staging moves on: a new version and new params, deployed.
        try """
        apiVersion: converge/v1
        kind: Instance
        metadata: {name: a, project: p, environment: dev}
        spec:
          bundle: thing
          version: 2.0.0
          params: {size: 3, tier: {name: medium, replicas: 2}}
        """.write(to: daemon.manifests.appendingPathComponent("a.yaml"), atomically: true, encoding: .utf8)
        #expect(try await daemon.sync() == 202)
        try await eventually("staging's new version is deployed") {
            let newest = try await store.history("p-dev-a").first
            return newest?.snapshot.version == "2.0.0" && newest?.status == .completed
        }

        // Promote it into the fork's a, with overrides.
        let overrides = try file(daemon, "overrides.yaml", "tier:\n  replicas: 5\n")
        let merged: Value = ["size": 3, "tier": ["name": "medium", "replicas": 5]]
        let before = try await store.history("p-pr1-a")
        func writes() async throws -> Int {
            try await store.auditLog(
                AuditFilter(action: "resource.applied", targetID: "p-pr1-a"), after: nil, limit: 50
            ).items.count
        }
        let writesBefore = try await writes()
        let promoted = try await daemon.cli(
            dora, "instance", "promote", "p-dev-a", "--to", "p-pr1-a", "--overrides", overrides, "--copy-secrets",
            "-o", "json")
        #expect(promoted.status == 0, "\(promoted.stderr)")
        let result = try Value(json: promoted.stdout)
        #expect(result["destination"] == "p-pr1-a")
        #expect(result["changed"] == true)
        #expect(result["copiedSecrets"] == ["TOKEN"])
        #expect(result["plan"]?["created"] == true)
        #expect(
            result["changes"]
                == [
                    ["path": "params.size", "before": 1, "after": 3],
                    ["path": "params.tier.name", "before": "small", "after": "medium"],
                    ["path": "params.tier.replicas", "before": 1, "after": 5],
                    ["path": "version", "before": "1.0.0", "after": "2.0.0"],
                ])
        let planID = try #require(result["plan"]?["id"]?.stringValue)
        let document = try await store.resource(ResourceKey(.instance, "p-pr1-a")).resource.spec
        #expect(document["params"] == merged)
        #expect(document["version"] == "2.0.0")
        #expect(document["environment"] == "p-pr1" && document["name"] == "a", "the destination keeps its own name")
        #expect(try await daemon.cli(dora, "secret", "list", "p-pr1-a").stdout.contains("TOKEN"))
        #expect(try await writes() == writesBefore + 1, "one audited document write")

        // The plan ran first and showed the change; then the auto policy deployed it.
        try await eventually("the plan and the promoted configuration completed", timeout: .seconds(30)) {
            let all = try await store.history("p-pr1-a")
            return all.contains { $0.id == planID && $0.status == .completed }
                && all.contains { $0.action == .provision && $0.snapshot.params == merged && $0.status == .completed }
        }
        let after = try await store.history("p-pr1-a")
        let plan = try #require(after.first { $0.id == planID })
        let provision = try #require(after.first { $0.action == .provision && $0.snapshot.params == merged })
        #expect(plan.action == .plan && plan.status == .completed)
        #expect(plan.snapshot.params == merged && plan.snapshot.version == "2.0.0")
        #expect(plan.planResult == ["would": "change"])
        #expect(plan.snapshot.metadata["copyOf"] == "p-dev-a")
        #expect(plan.sequence < provision.sequence, "the plan was created before the provision")
        #expect(plan.finishedAt! <= provision.startedAt!, "and ran before it")
        #expect(provision.snapshot.version == "2.0.0")
        #expect(after.count == before.count + 2, "one plan, one provision")
        let calls = await server.requests.compactMap { $0.json?["deployment"] as? [String: Any] }
            .filter { $0["instance"] as? String == "p-pr1-a" }
            .map { $0["action"] as? String }
        #expect(calls.suffix(2) == ["plan", "provision"])

        // Again: nothing written, no deployment, the same plan.
        let (document1, history1) = try await state("p-pr1-a")
        let again = try await daemon.cli(
            dora, "instance", "copy", "p-dev-a", "--to", "p-pr1-a", "--overrides", overrides, "--copy-secrets")
        #expect(again.status == 0, "\(again.stderr)")
        #expect(
            again.stdout
                == "instance/p-pr1-a copied from p-dev-a: unchanged\nplan \(planID) COMPLETED (already staged)\n")
        let (document2, history2) = try await state("p-pr1-a")
        #expect(document2 == document1)
        #expect(history2 == history1)
        #expect(try await writes() == writesBefore + 1)

        // Refusals change nothing.
        let (bDocument, bHistory) = try await state("p-pr1-b")
        let acrossBundles = try await daemon.cli(dora, "instance", "copy", "p-dev-a", "--to", "p-pr1-b")
        #expect(acrossBundles.status == 1)
        #expect(
            acrossBundles.stderr
                == "converge: instance p-dev-a is of bundle thing and p-pr1-b of bundle child; an instance is copied "
                + "only onto one of the same bundle (failed_precondition)\n")
        let manifestOwned = try await daemon.cli(dora, "instance", "copy", "p-pr1-a", "--to", "p-dev-a")
        #expect(manifestOwned.status == 1)
        #expect(manifestOwned.stderr.contains("instance p-dev-a is declared in the manifests at "))
        #expect(manifestOwned.stderr.contains("a.yaml:"))
        #expect(manifestOwned.stderr.contains("(failed_precondition)"))
        let onItself = try await daemon.cli(dora, "instance", "copy", "p-pr1-a", "--to", "p-pr1-a")
        #expect(onItself.stderr == "converge: an instance cannot be copied onto itself (invalid_argument)\n")
        let violating = try file(daemon, "violating.json", #"{"size": "large"}"#)
        let schema = try await daemon.cli(
            dora, "instance", "copy", "p-dev-a", "--to", "p-pr1-a", "--overrides", violating)
        #expect(schema.status == 1)
        #expect(schema.stderr.contains("spec.params.size"), "\(schema.stderr)")
        #expect(schema.stderr.contains("(invalid_argument)"))
        let broken = try file(daemon, "broken.yaml", "tier:\n  replicas: [5\n")
        let syntax = try await daemon.cli(dora, "instance", "copy", "p-dev-a", "--to", "p-pr1-a", "--overrides", broken)
        #expect(syntax.status == 2)
        #expect(syntax.stderr.hasPrefix("converge: \(broken):"), "\(syntax.stderr)")
        let duplicate = try file(daemon, "duplicate.yaml", "size: 4\nsize: 5\n")
        let twice = try await daemon.cli(
            dora, "instance", "copy", "p-dev-a", "--to", "p-pr1-a", "--overrides", duplicate)
        #expect(twice.status == 2)
        #expect(twice.stderr == "converge: \(duplicate):2:1: size: duplicate key\n")
        let (document3, history3) = try await state("p-pr1-a")
        #expect(document3 == document1)
        #expect(history3 == history1)
        let (bDocument1, bHistory1) = try await state("p-pr1-b")
        #expect(bDocument1 == bDocument)
        #expect(bHistory1 == bHistory)
        try await daemon.stop()
    }

    @Test func promote_intoAReviewEnvironment_plansThenProposes_andABlockedDestinationIsAppliedWithoutAPlan()
        async throws
    {
        let server = try await provisioner()
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(
            files: repository(
                url: server.url, instances: ["a": ["size": 1], "b": ["size": 2]], connections: ["b": "a"],
                policy: "review"))
        let dora = try await daemon.token("dora", role: "deployer")
        try await daemon.start()
        let store = try daemon.store()
        try await eventually("the parent is proposed") { try await store.history("p-dev-a").first?.status == .proposed }
        #expect(try await daemon.cli(dora, "env", "fork", "p-dev", "pr1").status == 0)
        try await eventually("the fork is proposed") { try await store.history("p-pr1-a").first?.status == .proposed }

        // Review: the plan runs at once, and the change waits for approval as a proposal created after it.
        let overrides = try file(daemon, "overrides.yaml", "size: 7\n")
        let promoted = try await daemon.cli(
            dora, "instance", "promote", "p-dev-a", "--to", "p-pr1-a", "--overrides", overrides, "-o", "json")
        #expect(promoted.status == 0, "\(promoted.stderr)")
        let result = try Value(json: promoted.stdout)
        #expect(result["changes"] == [["path": "params.size", "before": 1, "after": 7]])
        let planID = try #require(result["plan"]?["id"]?.stringValue)
        try await eventually("the plan completed and the change is proposed", timeout: .seconds(30)) {
            let all = try await store.history("p-pr1-a")
            return all.contains { $0.id == planID && $0.status == .completed }
                && all.contains { $0.action == .provision && $0.snapshot.params == ["size": 7] }
        }
        let all = try await store.history("p-pr1-a")
        let proposal = try #require(all.first { $0.action == .provision && $0.snapshot.params == ["size": 7] })
        let plan = try #require(all.first { $0.id == planID })
        #expect(proposal.status == .proposed)
        #expect(plan.sequence < proposal.sequence)
        #expect(try await store.instance("p-pr1-a").status == .initialized, "nothing applied")

        // b's upstream (the fork's a) has no outputs yet: b is copied all the same, and no plan is staged.
        let bOverrides = try file(daemon, "b.yaml", "size: 9\n")
        let blocked = try await daemon.cli(
            dora, "instance", "copy", "p-dev-b", "--to", "p-pr1-b", "--overrides", bOverrides, "-o", "json")
        #expect(blocked.status == 0, "\(blocked.stderr)")
        let blockedResult = try Value(json: blocked.stdout)
        #expect(blockedResult["changed"] == true)
        #expect(blockedResult["plan"] == nil)
        #expect(blockedResult["noPlanReason"] == "waiting for p-pr1-a to produce out")
        let document = try await store.resource(ResourceKey(.instance, "p-pr1-b")).resource.spec
        #expect(document["params"] == ["size": 9])
        #expect(document["connections"]?["upstream"]?["instance"] == "p-pr1-a", "b keeps its own connection")
        let again = try await daemon.cli(
            dora, "instance", "copy", "p-dev-b", "--to", "p-pr1-b", "--overrides", bOverrides)
        #expect(
            again.stdout
                == "instance/p-pr1-b copied from p-dev-b: unchanged\nno plan staged: waiting for p-pr1-a to produce out\n"
        )
        #expect(try await store.history("p-pr1-b").allSatisfy { $0.action != .plan })
        try await daemon.stop()
    }
}
