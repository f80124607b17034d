import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

/// The approval rules through the real CLI against the real daemon: a proposal that a newer deployment overtook is
/// stale and cannot be approved, and approving a step the proposal does not await is a failed precondition.
@Suite(.serialized) struct ApprovalRuleTests {
    /// The deployment of instance a whose params are `size`, once it is `status`.
    func deployment(
        _ daemon: DaemonProcess, size: Int, _ status: Deployment.Status, action: Deployment.Action = .provision
    ) async throws -> Deployment {
        let store = try daemon.store()
        let find = {
            try await store.history("p-dev-a").first {
                $0.action == action && $0.snapshot.params == ["size": .int(size)] && $0.status == status
            }
        }
        try await eventually("a \(status.rawValue) \(action.rawValue) of size \(size)", timeout: .seconds(30)) {
            try await find() != nil
        }
        return try #require(try await find())
    }

    /// Regression (issue 13): approving an old proposal after a newer deployment of the instance was created left the
    /// instance's recorded params at the old snapshot while the provisioner last applied the newest.
    @Test func approve_ofAProposalANewerDeploymentOvertook_isRefusedAsStale() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200, body: completedAnswer) }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(files: repository(url: server.url, instances: ["a": ["size": 2]]))
        let alice = try await daemon.token("alice", role: "approver")
        let bob = try await daemon.token("bob", role: "approver")
        try await daemon.start()
        _ = try await deployment(daemon, size: 2, .completed)

        // alice proposes the declared change again; then the manifests move on and size 3 deploys directly.
        let proposed = try await daemon.cli(alice, "propose", "p-dev-a", "-o", "json")
        #expect(proposed.status == 0, "\(proposed.stderr)")
        let proposalID = try #require(try Value(json: proposed.stdout)["id"]?.stringValue)
        try daemon.write(repository(url: server.url, instances: ["a": ["size": 3]]))
        let newer = try await deployment(daemon, size: 3, .completed)

        let stale = try await daemon.cli(bob, "approve", proposalID)
        #expect(stale.status == 1)
        #expect(
            stale.stderr.contains(
                "deployment \(proposalID) is superseded by deployment \(newer.id); propose again (failed_precondition)"),
            "\(stale.stderr)")
        let store = try daemon.store()
        #expect(try await store.deployment(proposalID).status == .proposed)
        #expect(try await store.instance("p-dev-a").params == ["size": 3], "the record stays what was applied last")

        // Rejecting a stale proposal clears it.
        let rejected = try await daemon.cli(bob, "reject", proposalID, "-o", "json")
        #expect(rejected.status == 0, "\(rejected.stderr)")
        try await daemon.stop()
    }

    /// Regression (issue 13): `approve --step apply` on a proposal awaiting its plan approval answered `aborted`
    /// (409); it is a failed precondition.
    @Test func approveApplyStep_ofAProposalAwaitingItsPlanApproval_isAFailedPrecondition() async throws {
        let server = try await LoopbackServer.start { _, request in
            let deployment = request.json?["deployment"] as? [String: Any]
            return ScriptedResponse(
                status: 200,
                body: deployment?["action"] as? String == "plan"
                    ? #"{"status": "completed", "outputs": {}, "planResult": {"would": "provision"}}"# : completedAnswer
            )
        }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(
            files: repository(url: server.url, instances: ["a": ["size": 2]], policy: "two-phase"))
        let bob = try await daemon.token("bob", role: "approver")
        try await daemon.start()
        _ = try await deployment(daemon, size: 2, .completed, action: .plan)
        let proposal = try await deployment(daemon, size: 2, .proposed)

        let early = try await daemon.cli(bob, "approve", proposal.id, "--step", "apply")
        #expect(early.status == 1)
        #expect(
            early.stderr.contains(
                "deployment \(proposal.id) awaits its plan approval, not the apply one (failed_precondition)"),
            "\(early.stderr)")
        let answer = try await daemon.post(
            "/v1/deployments/\(proposal.id)/approve", body: Data(#"{"step": "apply"}"#.utf8),
            headers: ["Authorization": "Bearer \(bob)", "Content-Type": "application/json"])
        #expect(answer.status == 412, "failed_precondition, not 409 aborted")
        #expect(answer.body["code"] as? String == "failed_precondition", "\(answer.body)")
        try await daemon.stop()
    }
}
