import ConvergeCore
import Foundation
import Testing

/// The approval rules of DESIGN §3, one row per case: who may approve or reject which step of a proposal, and when
/// a proposal is stale.
@Suite struct ApprovalDecisionTests {
    /// One row: a proposal of `bob`'s in environment `shop-dev`, what is asked, by whom, and the expected answer.
    struct Case: Sendable, CustomTestStringConvertible {
        enum Expected: Sendable {
            case decision(ApprovalDecision)
            case refused(ConvergeError.Code, String)
        }

        var name: String
        var status: Deployment.Status = .proposed
        /// The two-phase step it awaits; nil for a review proposal.
        var step: Deployment.ApprovalStep? = nil
        var approvals: [String] = []
        var planStatus: Deployment.Status? = nil
        var request: ApprovalDecision.Request = .approve(step: nil)
        var actor = "carol"
        var roles: Set<String> = ["viewer", "deployer", "approver"]
        var rule: ApproverRule? = nil
        var supersededBy: String? = nil
        var expected: Expected

        var testDescription: String { name }

        var proposal: Deployment {
            Deployment(
                id: "p1", sequence: 7, instanceID: "shop-dev-db",
                snapshot: DeploymentSnapshot(
                    action: .provision, params: [:], connectionParams: [:], version: "1", metadata: [:]),
                desiredHash: "h", status: status, proposedBy: "bob", createdBy: "bob", createdAt: Date(),
                updatedAt: Date(), attempt: 0, approvalStep: step, planDeploymentID: step == nil ? nil : "plan1",
                planOutcome: planStatus.map { Deployment.PlanOutcome(status: $0, result: nil) },
                approvals: approvals.map { Deployment.Approval(step: .plan, by: $0, at: Date()) })
        }
    }

    static let cases: [Case] = [
        Case(name: "review proposal, approved", expected: .decision(.approve(step: .review, next: .approved))),
        Case(
            name: "review proposal, approved naming its step", request: .approve(step: .review),
            expected: .decision(.approve(step: .review, next: .approved))),
        Case(
            name: "review proposal, a named step it does not await", request: .approve(step: .apply),
            expected: .refused(.failedPrecondition, "deployment p1 awaits its review approval, not the apply one")),
        Case(
            name: "plan step with its plan completed", step: .plan, planStatus: .completed,
            expected: .decision(.approve(step: .plan, next: .awaiting(.apply)))),
        Case(
            name: "plan step, apply named", step: .plan, planStatus: .completed, request: .approve(step: .apply),
            expected: .refused(.failedPrecondition, "deployment p1 awaits its plan approval, not the apply one")),
        Case(
            name: "plan step, plan still running", step: .plan, planStatus: .running,
            expected: .refused(
                .failedPrecondition,
                "the plan plan1 of deployment p1 has not completed (it is RUNNING); approve the plan once it has")),
        Case(
            name: "plan step, plan failed", step: .plan, planStatus: .failed,
            expected: .refused(
                .failedPrecondition,
                "the plan plan1 of deployment p1 is FAILED; there is no plan to approve: reject or abort the proposal")),
        Case(
            name: "apply step by another approver", step: .apply, approvals: ["dave"], planStatus: .completed,
            expected: .decision(.approve(step: .apply, next: .approved))),
        Case(
            name: "apply step by the plan's approver", step: .apply, approvals: ["carol"], planStatus: .completed,
            expected: .refused(
                .permissionDenied,
                "carol gave the plan approval of deployment p1; its apply approval needs another approver")),
        Case(
            name: "apply step, plan named", step: .apply, approvals: ["dave"], request: .approve(step: .plan),
            expected: .refused(.failedPrecondition, "deployment p1 awaits its apply approval, not the plan one")),
        Case(
            name: "the proposer approving", actor: "bob",
            expected: .refused(.permissionDenied, "bob proposed deployment p1 and cannot approve it")),
        Case(
            name: "the proposer rejecting", request: .reject, actor: "bob",
            expected: .decision(.reject(step: .review))),
        Case(
            name: "without the approver role", roles: ["viewer", "deployer"],
            expected: .refused(.permissionDenied, "carol needs the approver role to approve deployment p1")),
        Case(
            name: "rejecting without the approver role", request: .reject, roles: ["viewer"],
            expected: .refused(.permissionDenied, "carol needs the approver role to reject deployment p1")),
        Case(
            name: "outside the environment's rule", rule: ApproverRule(principals: ["erin"], roles: ["admin"]),
            expected: .refused(
                .permissionDenied,
                "environment shop-dev allows only principals erin or roles admin to approve its proposals; carol is "
                    + "not among them")),
        Case(
            name: "rejecting outside the environment's rule", request: .reject,
            rule: ApproverRule(principals: ["erin"]),
            expected: .refused(
                .permissionDenied,
                "environment shop-dev allows only principals erin to reject its proposals; carol is not among them")),
        Case(
            name: "named by the environment's rule", rule: ApproverRule(principals: ["carol"]),
            expected: .decision(.approve(step: .review, next: .approved))),
        Case(
            name: "holding a role of the environment's rule", roles: ["viewer", "deployer", "approver", "admin"],
            rule: ApproverRule(roles: ["admin"]), expected: .decision(.approve(step: .review, next: .approved))),
        Case(
            name: "overtaken by a newer deployment", supersededBy: "d9",
            expected: .refused(.failedPrecondition, "deployment p1 is superseded by deployment d9; propose again")),
        Case(
            name: "plan step overtaken by a newer deployment", step: .plan, planStatus: .completed,
            supersededBy: "d9",
            expected: .refused(.failedPrecondition, "deployment p1 is superseded by deployment d9; propose again")),
        Case(
            name: "overtaken, rejected", request: .reject, supersededBy: "d9",
            expected: .decision(.reject(step: .review))),
        Case(
            name: "plan step, rejected", step: .plan, planStatus: .running, request: .reject,
            expected: .decision(.reject(step: .plan))),
        Case(
            name: "already approved", status: .approved,
            expected: .refused(.failedPrecondition, "deployment cannot move from APPROVED to APPROVED")),
        Case(
            name: "already rejected, rejected again", status: .rejected, request: .reject,
            expected: .refused(.failedPrecondition, "deployment cannot move from REJECTED to REJECTED")),
        Case(
            name: "a direct deployment", status: .pending,
            expected: .refused(.failedPrecondition, "deployment cannot move from PENDING to APPROVED")),
    ]

    @Test(arguments: cases)
    func decide_followsTheApprovalRules(_ row: Case) {
        let decision = ApprovalDecision.decide(
            row.request, of: row.proposal, by: Approver(name: row.actor, roles: row.roles), in: "shop-dev",
            rule: row.rule, supersededBy: row.supersededBy)
        switch (row.expected, decision) {
        case (.decision(let expected), _):
            #expect(decision == expected)
        case (.refused(let code, let message), .refuse(let error)):
            #expect(error.code == code)
            #expect(error.message == message)
        case (.refused, _):
            Issue.record("expected a refusal, got \(decision)")
        }
    }
}
