import ConvergeCore
import Foundation
import Testing

@testable import ConvergeStore

/// Stale proposals in the store (DESIGN §3): a proposal that a newer deployment of its instance overtook cannot be
/// approved, and the check and the approval are one transaction.
@Suite struct ApprovalStalenessTests {
    @Test(arguments: StoreEngine.allCases) func approve_afterNewerDeploymentsOfTheInstance_isRefusedNamingTheNewest(
        _ engine: StoreEngine
    ) async throws {
        let fixture = try await StoreFixture(engine)
        let proposal = try await fixture.create(["v": 1], mode: .proposal).deployment
        _ = try await fixture.create(["v": 2]).deployment
        let newest = try await fixture.create(["v": 3]).deployment
        _ = try await fixture.create(["v": 9], on: "shop-dev-app").deployment

        let refused = await convergeError { try await fixture.store.approve(proposal.id, approver: "bob") }
        #expect(refused?.code == .failedPrecondition)
        #expect(refused?.message == "deployment \(proposal.id) is superseded by deployment \(newest.id); propose again")
        #expect(try await fixture.store.deployment(proposal.id).status == .proposed)
        #expect(try await fixture.store.instance("shop-dev-db").params == ["v": 3])
        #expect(try await fixture.store.deployment(proposal.id).approvals.isEmpty)
    }

    @Test(arguments: StoreEngine.allCases) func approve_whenEveryNewerDeploymentWasRejectedAbortedOrAPlan_succeeds(
        _ engine: StoreEngine
    ) async throws {
        let fixture = try await StoreFixture(engine)
        let proposal = try await fixture.create(["v": 1], mode: .proposal).deployment
        let rejected = try await fixture.create(["v": 2], mode: .proposal).deployment
        _ = try await fixture.store.reject(rejected.id, actor: "carol", reason: "no")
        let aborted = try await fixture.create(["v": 3]).deployment
        _ = try await fixture.store.abort(aborted.id, actor: "carol", reason: nil)
        _ = try await fixture.create(["v": 4], action: .plan)

        let approved = try await fixture.store.approve(proposal.id, approver: "bob")
        #expect(approved.status == .approved)
        #expect(try await fixture.store.instance("shop-dev-db").params == ["v": 1])
    }

    /// An approval racing a new deployment of the same instance, from two connection pools as two processes would:
    /// either the approval committed first, or it is refused as stale; never approved after the newer one exists.
    @Test(arguments: StoreEngine.allCases) func approve_racingANewDeployment_isNeverApprovedAfterIt(
        _ engine: StoreEngine
    ) async throws {
        let fixture = try await StoreFixture(engine)
        let other = try fixture.openStore()
        for round in 0..<20 {
            let proposal = try await fixture.create(["round": .int(round)], mode: .proposal).deployment
            async let approval = convergeError { try await fixture.store.approve(proposal.id, approver: "bob") }
            async let newer = other.createDeployment(
                DeploymentRequest(
                    instanceID: "shop-dev-db", snapshot: StoreFixture.snapshot(["round": .int(round), "newer": true]),
                    mode: .direct, actor: "alice"))
            let (refusal, created) = (await approval, try await newer)
            let audit = try await fixture.store.auditLog(AuditFilter(), after: nil, limit: 1000).items
            let approvedAt = audit.first { $0.targetID == proposal.id && $0.action == "deployment.approved" }?.sequence
            let createdAt = try #require(
                audit.first { $0.targetID == created.deployment.id && $0.action == "deployment.create" }?.sequence)
            if let refusal {
                #expect(refusal.code == .failedPrecondition, "\(refusal)")
                #expect(approvedAt == nil)
            } else {
                #expect(try #require(approvedAt) < createdAt, "round \(round): approved after a newer deployment")
            }
            _ = try await fixture.store.abort(created.deployment.id, actor: "test", reason: nil)
            if refusal == nil { _ = try await fixture.store.abort(proposal.id, actor: "test", reason: nil) }
        }
    }
}
