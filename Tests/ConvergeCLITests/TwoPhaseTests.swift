import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

/// Approval policies through the real CLI against the real daemon: the two-phase flow (a PLAN, its plan approval,
/// then a separate apply approval), every refusal on the way, a two-phase decommission, approver restrictions and
/// the review selector of an auto environment.
@Suite(.serialized) struct TwoPhaseTests {
    /// The JSON a command printed.
    func json(_ result: ConvergeBinary.Result) throws -> Value {
        try Value(json: result.stdout)
    }

    /// A provisioner that completes every deployment (a plan with a plan result); a plan of params with
    /// `size: 1` is held for `hold` first.
    func provisioner(hold: Duration = .zero) async throws -> LoopbackServer {
        try await LoopbackServer.start { _, request in
            let deployment = request.json?["deployment"] as? [String: Any]
            guard deployment?["action"] as? String == "plan" else {
                return ScriptedResponse(status: 200, body: completedAnswer, delay: .milliseconds(100))
            }
            let params = deployment?["params"] as? [String: Any]
            let metadata = deployment?["metadata"] as? [String: Any]
            let planned = metadata?["plannedAction"] as? String ?? "provision"
            return ScriptedResponse(
                status: 200, body: #"{"status": "completed", "outputs": {}, "planResult": {"would": "\#(planned)"}}"#,
                delay: params?["size"] as? Int == 1 ? hold : .milliseconds(100))
        }
    }

    /// A two-phase repository (pruning when asked) with instance a at `size`, or without it.
    func files(url: String, size: Int?, prune: Bool = false) -> [String: String] {
        var files = repository(url: url, instances: size.map { ["a": ["size": .int($0)]] } ?? [:], policy: "two-phase")
        if prune {
            files["base.yaml"] = files["base.yaml"]!.replacingOccurrences(
                of: "spec: {policy: two-phase}", with: "spec: {policy: two-phase, prune: true}")
        }
        return files
    }

    /// The newest deployment of instance a of `action` once it is `status`.
    func newest(
        _ daemon: DaemonProcess, _ action: Deployment.Action, _ status: Deployment.Status, instance: String = "p-dev-a"
    ) async throws -> Deployment {
        let store = try daemon.store()
        try await eventually("a \(status.rawValue) \(action.rawValue) of \(instance)", timeout: .seconds(30)) {
            try await store.history(instance).first { $0.action == action }?.status
                == status
        }
        return try #require(
            try await store.history(instance).first { $0.action == action })
    }

    @Test func twoPhase_planThenPlanApprovalThenApplyApproval_completes() async throws {
        let server = try await provisioner()
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(files: files(url: server.url, size: 2))
        let vera = try await daemon.token("vera", role: "viewer")
        let alice = try await daemon.token("alice", role: "approver")
        let bob = try await daemon.token("bob", role: "approver")
        try await daemon.start()

        let plan = try await newest(daemon, .plan, .completed)
        let proposalID = try await newest(daemon, .provision, .proposed).id
        let shown = try json(await daemon.cli(vera, "get", "deployment", proposalID, "-o", "json"))
        #expect(shown["status"] == "PROPOSED")
        #expect(shown["awaiting"] == "planApproval")
        #expect(shown["approvalStep"] == "plan")
        #expect(shown["planDeployment"]?["id"] == .string(plan.id))
        #expect(shown["planDeployment"]?["status"] == "COMPLETED")
        #expect(shown["planDeployment"]?["result"] == ["would": "provision"])
        let table = try await daemon.cli(vera, "get", "deployments", "--status", "PROPOSED")
        #expect(table.stdout.contains("AWAITING") && table.stdout.contains("planApproval"), "\(table.stdout)")

        let planApproved = try await daemon.cli(alice, "approve", proposalID, "-o", "json")
        #expect(planApproved.status == 0, "\(planApproved.stderr)")
        #expect(try json(planApproved)["status"] == "PROPOSED")
        #expect(try json(planApproved)["awaiting"] == "applyApproval")
        #expect(try json(planApproved)["approvals"]?.arrayValue?.map { $0["step"] } == ["plan"])
        #expect(try await daemon.store().instance("p-dev-a").params == nil, "a plan approval advances nothing")

        // Nobody approves both steps.
        let bothSteps = try await daemon.cli(alice, "approve", proposalID)
        #expect(bothSteps.status == 1)
        #expect(
            bothSteps.stderr.contains(
                "alice gave the plan approval of deployment \(proposalID); its apply approval needs another approver "
                    + "(permission_denied)"), "\(bothSteps.stderr)")

        let applied = try await daemon.cli(bob, "approve", proposalID, "--wait", "-o", "json")
        #expect(applied.status == 0, "\(applied.stderr)")
        let done = try json(applied)
        #expect(done["status"] == "COMPLETED")
        #expect(done["approvedBy"] == "bob")
        #expect(done["awaiting"] == nil)
        #expect(done["approvals"]?.arrayValue?.map { $0["by"] } == ["alice", "bob"])
        #expect(done["approvals"]?.arrayValue?.map { $0["step"] } == ["plan", "apply"])
        let audit = try json(await daemon.cli(vera, "audit", "--target", proposalID, "-o", "json"))
        let actions = audit["items"]?.arrayValue?.compactMap { $0["action"]?.stringValue } ?? []
        #expect(actions.contains("deployment.planApproved") && actions.contains("deployment.approved"), "\(actions)")
        try await daemon.stop()
    }

    @Test func twoPhase_approvalBeforeThePlanCompleted_selfApproval_andRejectionAndAbortAtEitherStep() async throws {
        let server = try await provisioner(hold: .seconds(4))
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(files: files(url: server.url, size: 1))
        let dora = try await daemon.token("dora", role: "deployer")
        let alice = try await daemon.token("alice", role: "approver")
        let bob = try await daemon.token("bob", role: "approver")
        let carol = try await daemon.token("carol", role: "approver")
        try await daemon.start()

        // A person's proposal follows the plan of the change, which is held: its plan approval waits for it.
        _ = try await newest(daemon, .plan, .running)
        let proposed = try await daemon.cli(alice, "propose", "p-dev-a", "-o", "json")
        #expect(proposed.status == 0, "\(proposed.stderr)")
        let proposal = try json(proposed)
        let proposalID = try #require(proposal["id"]?.stringValue)
        #expect(proposal["awaiting"] == "planApproval")
        #expect(proposal["planDeployment"]?["status"] == "RUNNING")
        let early = try await daemon.cli(bob, "approve", proposalID)
        #expect(early.status == 1)
        #expect(early.stderr.contains("has not completed (it is RUNNING)"), "\(early.stderr)")
        #expect(early.stderr.contains("(failed_precondition)"))
        let notAnApprover = try await daemon.cli(dora, "approve", proposalID)
        #expect(notAnApprover.stderr.contains("dora has the role deployer; approveDeployment needs approver"))

        _ = try await newest(daemon, .plan, .completed)
        let own = try await daemon.cli(alice, "approve", proposalID)
        #expect(own.status == 1)
        #expect(
            own.stderr.contains("alice proposed deployment \(proposalID) and cannot approve it (permission_denied)"))
        #expect(try json(await daemon.cli(bob, "approve", proposalID, "-o", "json"))["awaiting"] == "applyApproval")
        // Rejected at the apply step.
        let rejected = try json(await daemon.cli(carol, "reject", proposalID, "--reason", "not today", "-o", "json"))
        #expect(rejected["status"] == "REJECTED")
        #expect(rejected["approvalStep"] == "apply")
        #expect(rejected["error"] == "not today")
        #expect(try await daemon.cli(carol, "approve", proposalID).stderr.contains("(failed_precondition)"))

        // The reconciler's proposals of later changes: rejected at the plan step, aborted at either step.
        func proposalOf(size: Int) async throws -> String {
            try daemon.write(files(url: server.url, size: size))
            #expect(try await daemon.sync() == 202)
            let store = try daemon.store()
            try await eventually("a proposal of size \(size)", timeout: .seconds(30)) {
                let newest = try await store.history("p-dev-a").first {
                    $0.action == .provision
                }
                return newest?.snapshot.params == ["size": .int(size)] && newest?.status == .proposed
            }
            return try #require(
                try await store.history("p-dev-a").first { $0.action == .provision }?.id
            )
        }
        let second = try await proposalOf(size: 2)
        let rejectedAtPlan = try json(await daemon.cli(bob, "reject", second, "-o", "json"))
        #expect(rejectedAtPlan["status"] == "REJECTED")
        #expect(rejectedAtPlan["approvalStep"] == "plan")
        #expect(rejectedAtPlan["approvals"] == nil)

        let third = try await proposalOf(size: 3)
        let abortedAtPlan = try json(await daemon.cli(dora, "abort", third, "-o", "json"))
        #expect(abortedAtPlan["status"] == "ABORTED" && abortedAtPlan["approvalStep"] == "plan")

        let fourth = try await proposalOf(size: 4)
        #expect(try json(await daemon.cli(bob, "approve", fourth, "-o", "json"))["awaiting"] == "applyApproval")
        let abortedAtApply = try json(await daemon.cli(dora, "abort", fourth, "-o", "json"))
        #expect(abortedAtApply["status"] == "ABORTED" && abortedAtApply["approvalStep"] == "apply")
        #expect(try await daemon.store().instance("p-dev-a").params == nil, "nothing was applied")
        try await daemon.stop()
    }

    @Test func twoPhase_decommission_plansWhatWillBeRemoved_thenNeedsBothApprovals() async throws {
        let server = try await provisioner()
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(files: files(url: server.url, size: 2, prune: true))
        let alice = try await daemon.token("alice", role: "approver")
        let bob = try await daemon.token("bob", role: "approver")
        try await daemon.start()
        let provision = try await newest(daemon, .provision, .proposed)
        #expect(try await daemon.cli(alice, "approve", provision.id).status == 0)
        #expect(try await daemon.cli(bob, "approve", provision.id, "--wait").status == 0)

        try daemon.write(files(url: server.url, size: nil, prune: true))
        #expect(try await daemon.sync() == 202)
        let decommission = try await newest(daemon, .decommission, .proposed)
        let shown = try json(await daemon.cli(alice, "get", "deployment", decommission.id, "-o", "json"))
        #expect(shown["awaiting"] == "planApproval")
        #expect(shown["planDeployment"]?["result"] == ["would": "decommission"], "the plan shows what goes")
        let plans = await server.requests.compactMap { $0.json?["deployment"] as? [String: Any] }.filter {
            $0["action"] as? String == "plan"
        }
        let plan = try #require(plans.last)
        #expect((plan["metadata"] as? [String: Any])?["plannedAction"] as? String == "decommission")
        #expect(try await daemon.store().instance("p-dev-a").status == .provisioned)

        #expect(
            try json(await daemon.cli(bob, "approve", decommission.id, "-o", "json"))["awaiting"] == "applyApproval")
        let removed = try await daemon.cli(alice, "approve", decommission.id, "--wait", "-o", "json")
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(try json(removed)["status"] == "COMPLETED")
        try await eventually("a is decommissioned") {
            try await daemon.store().instance("p-dev-a").status == .decommissioned
        }
        try await daemon.stop()
    }

    @Test func approverRestrictions_andTheReviewSelectorOfAnAutoEnvironment() async throws {
        let server = try await provisioner()
        defer { Task { await server.stop() } }
        var files = repository(url: server.url, instances: ["web": ["size": 1], "db": ["size": 1]])
        files["base.yaml"] = files["base.yaml"]!.replacingOccurrences(
            of: "spec: {policy: auto}",
            with: """
                spec:
                  policy: auto
                  approvers: {principals: [alice], roles: [admin]}
                  reviewSelector: {matchLabels: {tier: data}}
                """)
        files["db.yaml"] = files["db.yaml"]!.replacingOccurrences(
            of: "environment: dev}", with: "environment: dev, labels: {tier: data}}")
        let daemon = try DaemonProcess(files: files)
        let dora = try await daemon.token("dora", role: "deployer")
        let alice = try await daemon.token("alice", role: "approver")
        let bob = try await daemon.token("bob", role: "approver")
        let root = try await daemon.token("root", role: "admin")
        try await daemon.start()

        // Unlabelled instances deploy directly; the selected one is proposed, and a direct deployment of it refused.
        _ = try await newest(daemon, .provision, .completed, instance: "p-dev-web")
        let proposal = try await newest(daemon, .provision, .proposed, instance: "p-dev-db")
        let direct = try await daemon.cli(dora, "deploy", "p-dev-db")
        #expect(direct.status == 1)
        #expect(
            direct.stderr.contains(
                "instance p-dev-db is selected by the reviewSelector of environment p-dev (tier=data): a change must "
                    + "be proposed and approved (failed_precondition)"), "\(direct.stderr)")

        // Only the named principal or a role reaching admin decides.
        let notNamed = try await daemon.cli(bob, "approve", proposal.id)
        #expect(notNamed.status == 1)
        #expect(
            notNamed.stderr.contains(
                "environment p-dev allows only principals alice or roles admin to approve its proposals; bob is not "
                    + "among them (permission_denied)"), "\(notNamed.stderr)")
        #expect(try await daemon.cli(bob, "reject", proposal.id).stderr.contains("(permission_denied)"))
        #expect(try await daemon.store().deployment(proposal.id).status == .proposed)
        let approved = try await daemon.cli(alice, "approve", proposal.id, "--wait", "-o", "json")
        #expect(approved.status == 0, "\(approved.stderr)")
        #expect(try json(approved)["status"] == "COMPLETED")

        // An admin may decide too.
        try daemon.write(
            files.merging(["db.yaml": files["db.yaml"]!.replacingOccurrences(of: "{\"size\":1}", with: "{\"size\":2}")])
            { $1 })
        #expect(try await daemon.sync() == 202)
        let next = try await newest(daemon, .provision, .proposed, instance: "p-dev-db")
        #expect(next.snapshot.params == ["size": 2])
        #expect(try json(await daemon.cli(root, "reject", next.id, "-o", "json"))["status"] == "REJECTED")
        try await daemon.stop()
    }
}
