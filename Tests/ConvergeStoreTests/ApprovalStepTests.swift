import ConvergeCore
import Foundation
import GRDB
import Testing

@testable import ConvergeStore

/// Two-phase approval in the store: the plan step, then the apply step, each approval recorded, and every way
/// around the steps refused by the store's code and by the schema.
@Suite struct ApprovalStepTests {
    /// A PLAN of the fixture's db instance, claimed and, unless `completed` is false, completed with a result.
    func plan(_ fixture: StoreFixture, params: Value = ["size": 50], completed: Bool = true) async throws
        -> Deployment
    {
        let plan = try await fixture.create(params, action: .plan).deployment
        let claimed = try await fixture.store.claimNextDeployments(owner: "w", leaseDuration: 60, limit: 10)
        #expect(claimed.map(\.id) == [plan.id])
        guard completed else { return try await fixture.store.deployment(plan.id) }
        return try await fixture.store.complete(
            plan.id, owner: "w", epoch: 1, outputs: [:], planResult: ["changes": 1])
    }

    /// A two-phase proposal by alice of the change `plan` planned.
    func propose(_ fixture: StoreFixture, after plan: Deployment, params: Value = ["size": 50]) async throws
        -> Deployment
    {
        try await fixture.store.createDeployment(
            DeploymentRequest(
                instanceID: "shop-dev-db", snapshot: StoreFixture.snapshot(params), mode: .proposal, actor: "alice",
                planID: plan.id)
        ).deployment
    }

    @Test(arguments: StoreEngine.allCases) func twoPhase_planApprovalThenApplyApproval_byTwoOthers_entersTheQueue(
        _ engine: StoreEngine
    ) async throws {
        let fixture = try await StoreFixture(engine)
        let store = fixture.store
        let plan = try await plan(fixture)
        let proposal = try await propose(fixture, after: plan)
        #expect(proposal.status == .proposed)
        #expect(proposal.approvalStep == .plan && proposal.awaitedApproval == .plan)
        #expect(proposal.planDeploymentID == plan.id)
        #expect(proposal.planOutcome == Deployment.PlanOutcome(status: .completed, result: ["changes": 1]))

        fixture.clock.advance(by: 5)
        let planApproved = try await store.approve(proposal.id, approver: "bob")
        #expect(planApproved.status == .proposed)
        #expect(planApproved.approvalStep == .apply && planApproved.awaitedApproval == .apply)
        #expect(planApproved.approvals == [Deployment.Approval(step: .plan, by: "bob", at: fixture.clock.now)])
        #expect(try await store.instance("shop-dev-db").params == nil, "a plan approval advances nothing")

        let sameApprover = await convergeError { try await store.approve(proposal.id, approver: "bob") }
        #expect(
            sameApprover
                == ConvergeError(
                    .permissionDenied,
                    "bob gave the plan approval of deployment \(proposal.id); its apply approval needs another approver"
                ))
        let selfApproval = await convergeError { try await store.approve(proposal.id, approver: "alice") }
        #expect(selfApproval?.code == .permissionDenied)

        fixture.clock.advance(by: 5)
        let approved = try await store.approve(proposal.id, approver: "carol")
        #expect(approved.status == .approved && approved.approvedBy == "carol")
        #expect(approved.awaitedApproval == nil && approved.approvalStep == .apply)
        #expect(approved.approvals.map(\.step) == [.plan, .apply])
        #expect(approved.approvals.map(\.by) == ["bob", "carol"])
        #expect(try await store.instance("shop-dev-db").params == ["size": 50])
        let audit = try await store.auditLog(AuditFilter(targetID: proposal.id), after: nil, limit: 10).items
        #expect(audit.map(\.action) == ["deployment.approved", "deployment.planApproved", "deployment.create"])
    }

    /// Two approvers who both mean the plan step: the second is refused, not counted as the apply approval.
    @Test(arguments: StoreEngine.allCases) func approvalOfANamedStep_isRefusedWhenTheProposalAwaitsAnother(
        _ engine: StoreEngine
    ) async throws {
        let fixture = try await StoreFixture(engine)
        let proposal = try await propose(fixture, after: try await plan(fixture))
        let early = await convergeError { try await fixture.store.approve(proposal.id, approver: "bob", step: .apply) }
        #expect(early?.code == .failedPrecondition)
        #expect(early?.message == "deployment \(proposal.id) awaits its plan approval, not the apply one")
        #expect(try await fixture.store.approve(proposal.id, approver: "bob", step: .plan).awaitedApproval == .apply)
        let late = await convergeError { try await fixture.store.approve(proposal.id, approver: "carol", step: .plan) }
        #expect(late?.code == .failedPrecondition)
        #expect(try await fixture.store.deployment(proposal.id).approvals.map(\.by) == ["bob"])
    }

    @Test(arguments: StoreEngine.allCases) func planApproval_beforeThePlanCompleted_isRefused(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await StoreFixture(engine)
        let running = try await plan(fixture, completed: false)
        let proposal = try await propose(fixture, after: running)
        #expect(proposal.planOutcome?.status == .running)
        let early = await convergeError { try await fixture.store.approve(proposal.id, approver: "bob") }
        #expect(
            early
                == ConvergeError(
                    .failedPrecondition,
                    "the plan \(running.id) of deployment \(proposal.id) has not completed (it is RUNNING); approve "
                        + "the plan once it has"))
        #expect(try await fixture.store.deployment(proposal.id).approvals.isEmpty)

        _ = try await fixture.store.fail(running.id, owner: "w", epoch: 1, error: "boom")
        let failed = await convergeError { try await fixture.store.approve(proposal.id, approver: "bob") }
        #expect(failed?.code == .failedPrecondition)
        #expect(failed?.message.contains("is FAILED; there is no plan to approve") == true)
    }

    @Test(arguments: StoreEngine.allCases, ["plan", "apply"])
    func rejectAndAbort_endTheProposal_atEitherStep(_ engine: StoreEngine, step: String) async throws {
        for ending in [Deployment.Status.rejected, .aborted] {
            let fixture = try await StoreFixture(engine)
            let proposal = try await propose(fixture, after: try await plan(fixture))
            if step == "apply" { _ = try await fixture.store.approve(proposal.id, approver: "bob") }
            let ended =
                ending == .rejected
                ? try await fixture.store.reject(proposal.id, actor: "carol", reason: "no")
                : try await fixture.store.abort(proposal.id, actor: "alice", reason: nil)
            #expect(ended.status == ending)
            #expect(ended.approvalStep?.rawValue == step, "the step it stopped at stays")
            #expect(ended.awaitedApproval == nil)
            #expect(try await fixture.store.instance("shop-dev-db").params == nil)
            let after = await convergeError { try await fixture.store.approve(proposal.id, approver: "dave") }
            #expect(after?.code == .failedPrecondition)
        }
    }

    @Test(arguments: StoreEngine.allCases) func review_approvalIsRecordedAsTheReviewStep(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await StoreFixture(engine)
        let proposal = try await fixture.create(["size": 9], mode: .proposal).deployment
        #expect(proposal.approvalStep == nil && proposal.awaitedApproval == .review)
        let approved = try await fixture.store.approve(proposal.id, approver: "bob")
        #expect(approved.approvals == [Deployment.Approval(step: .review, by: "bob", at: fixture.clock.now)])
    }

    @Test(arguments: StoreEngine.allCases) func aProposalFollowsOnlyAPlanOfItsOwnInstance(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await StoreFixture(engine)
        let direct = try await fixture.create(["size": 1]).deployment
        let notAPlan = await convergeError {
            try await fixture.store.createDeployment(
                DeploymentRequest(
                    instanceID: "shop-dev-db", snapshot: StoreFixture.snapshot(["size": 2]), mode: .proposal,
                    actor: "alice", planID: direct.id))
        }
        #expect(notAPlan?.code == .failedPrecondition)
        let planOfApp = try await fixture.create(["size": 2], on: "shop-dev-app", action: .plan).deployment
        let otherInstance = await convergeError {
            try await fixture.store.createDeployment(
                DeploymentRequest(
                    instanceID: "shop-dev-db", snapshot: StoreFixture.snapshot(["size": 2]), mode: .proposal,
                    actor: "alice", planID: planOfApp.id))
        }
        #expect(otherInstance?.code == .failedPrecondition)
        let directAfterPlan = await convergeError {
            try await fixture.store.createDeployment(
                DeploymentRequest(
                    instanceID: "shop-dev-app", snapshot: StoreFixture.snapshot(["size": 2]), mode: .direct,
                    actor: "alice", planID: planOfApp.id))
        }
        #expect(directAfterPlan?.code == .invalidArgument)
    }

    @Test(arguments: StoreEngine.allCases) func theSchemaHoldsTheStepMachine_againstRawSQL(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await StoreFixture(engine)
        let store = fixture.store
        let plan = try await plan(fixture)
        let proposal = try await propose(fixture, after: plan)
        let approve = "INSERT INTO deployment_approvals (deployment_id, step, principal, at) VALUES (?, ?, ?, 0)"
        let stepMessage = "an approval is of the step a PROPOSED deployment awaits, by another than its proposer"

        // The apply step cannot come first: not as an approval, not as a step, not as a status.
        #expect(await fixture.refusal(approve, [proposal.id, "apply", "bob"]) == stepMessage)
        #expect(
            await fixture.refusal("UPDATE deployments SET approval_step = 'apply' WHERE id = ?", [proposal.id])
                == "an approval step moves only from plan to apply, after the plan approval")
        #expect(
            await fixture.refusal("UPDATE deployments SET status = 'APPROVED' WHERE id = ?", [proposal.id])
                == "a two-phase proposal is approved only at its apply step, with its apply approval")
        // Never by the proposer.
        #expect(await fixture.refusal(approve, [proposal.id, "plan", "alice"]) == stepMessage)

        _ = try await store.approve(proposal.id, approver: "bob")
        // One principal approves one step; a step is approved once; approvals are never rewritten.
        #expect(await fixture.refusal(approve, [proposal.id, "apply", "bob"]).map(isUniqueViolation) == true)
        #expect(
            await fixture.refusal("UPDATE deployment_approvals SET principal = 'mallory'")
                == "deployment approvals are append-only")
        #expect(await fixture.refusal("DELETE FROM deployment_approvals") == "deployment approvals are append-only")
        // The step never goes back, and the plan a proposal shows never changes.
        #expect(
            await fixture.refusal("UPDATE deployments SET approval_step = 'plan' WHERE id = ?", [proposal.id])
                == "an approval step moves only from plan to apply, after the plan approval")
        #expect(
            await fixture.refusal("UPDATE deployments SET plan_id = NULL WHERE id = ?", [proposal.id])
                == "deployment snapshot is immutable")
        // A two-phase proposal enters at its plan step, with a plan.
        #expect(
            await fixture.refusal(
                """
                INSERT INTO deployments (id, instance_id, action, params, connection_params, version, md_metadata,
                    desired_hash, status, created_by, created_at, updated_at, environment, approval_step, plan_id)
                VALUES ('dx', 'shop-dev-db', 'provision', '{}', '{}', '1', '{}', 'h', 'PROPOSED', 't', 0, 0,
                    'shop-dev', 'apply', ?)
                """, [plan.id])
                == "a two-phase proposal enters PROPOSED at its plan step, with a plan of its instance")
    }

    @Test func theMigrationRecordsEarlierApprovals_atTheTimeTheAuditLogSays() throws {
        let queue = try DatabaseQueue()
        let migrator = SQLiteStore.migrator
        try migrator.migrate(queue, upTo: "2026-11-26-api")
        try queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO instances (id, environment, bundle, status, created_at, updated_at)
                        VALUES ('i', 'e', 'b', 'INITIALIZED', 0, 0);
                    INSERT INTO deployments (id, instance_id, action, params, connection_params, version, md_metadata,
                        desired_hash, status, created_by, proposed_by, approved_by, created_at, updated_at, environment)
                    VALUES ('d1', 'i', 'provision', '{}', '{}', '1', '{}', 'h', 'PROPOSED', 'alice', 'alice', NULL, 0,
                        0, 'e');
                    UPDATE deployments SET status = 'APPROVED', approved_by = 'bob', updated_at = 9000 WHERE id = 'd1';
                    INSERT INTO audit_log (at, actor, action, target_kind, target_id)
                        VALUES (7000, 'bob', 'deployment.approved', 'Deployment', 'd1');
                    """)
        }
        try migrator.migrate(queue)
        let rows = try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT deployment_id, step, principal, at FROM deployment_approvals")
        }
        #expect(rows == [["deployment_id": "d1", "step": "review", "principal": "bob", "at": 7000]])
    }
}
