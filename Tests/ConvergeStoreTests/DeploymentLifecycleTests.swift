import ConvergeCore
import Foundation
import Testing

@testable import ConvergeStore

@Suite struct DeploymentLifecycleTests {
    @Test(arguments: StoreEngine.allCases) func direct_entersPendingAndAdvancesInstanceParams(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await StoreFixture(engine)
        let creation = try await fixture.create(["size": 30])
        #expect(creation.created)
        let deployment = creation.deployment
        #expect(deployment.status == .pending)
        #expect(deployment.createdBy == "alice")
        #expect(deployment.snapshot.metadata == ["actor": "test", "deploymentId": .string(deployment.id)])
        #expect(deployment.desiredHash == StoreFixture.snapshot(["size": 30]).desiredHash)
        let instance = try await fixture.store.instance("shop-dev-db")
        #expect(instance.params == ["size": 30])
        #expect(instance.version == "1.0.0")
        #expect(instance.connectionParams == ["network": ["vpc": "vpc-1"]])
        #expect(instance.status == .initialized)
    }

    @Test(arguments: StoreEngine.allCases) func enqueue_isIdempotentPerDesiredStateHash(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await StoreFixture(engine)
        let first = try await fixture.create(["size": 30])
        let again = try await fixture.create(["size": 30], actor: "bob")
        #expect(!again.created)
        #expect(again.deployment == first.deployment)
        #expect(try await fixture.create(["size": 31]).created)
        #expect(try await fixture.store.history(of: "shop-dev-db", after: nil, limit: 10).items.count == 2)
    }

    @Test(arguments: StoreEngine.allCases) func proposal_leavesInstanceUntilApproved(_ engine: StoreEngine) async throws
    {
        let fixture = try await StoreFixture(engine)
        let store = fixture.store
        _ = try await fixture.create(["size": 20])
        let proposal = try await fixture.create(["size": 50], mode: .proposal, actor: "alice").deployment
        #expect(proposal.status == .proposed)
        #expect(proposal.proposedBy == "alice")
        #expect(try await store.instance("shop-dev-db").params == ["size": 20])

        let selfApproval = await convergeError { try await store.approve(proposal.id, approver: "alice") }
        #expect(
            selfApproval
                == ConvergeError(.permissionDenied, "alice proposed deployment \(proposal.id) and cannot approve it"))
        let approved = try await store.approve(proposal.id, approver: "bob")
        #expect(approved.status == .approved)
        #expect(approved.approvedBy == "bob")
        #expect(try await store.instance("shop-dev-db").params == ["size": 50])

        let twice = await convergeError { try await store.approve(proposal.id, approver: "carol") }
        #expect(twice?.code == .failedPrecondition)
        #expect(twice?.message == "deployment cannot move from APPROVED to APPROVED")
    }

    @Test(arguments: StoreEngine.allCases) func rejectAndAbort_endProposalsWithoutTouchingTheInstance(
        _ engine: StoreEngine
    ) async throws {
        let fixture = try await StoreFixture(engine)
        let store = fixture.store
        let one = try await fixture.create(["size": 60], mode: .proposal).deployment
        let rejected = try await store.reject(one.id, actor: "bob", reason: "too big")
        #expect(rejected.status == .rejected)
        #expect(rejected.error == "too big")
        #expect(rejected.finishedAt == fixture.clock.now)
        let two = try await fixture.create(["size": 70], mode: .proposal).deployment
        #expect(try await store.abort(two.id, actor: "alice", reason: nil).status == .aborted)
        #expect(try await store.instance("shop-dev-db").params == nil)
        #expect(
            await convergeError { try await store.abort(two.id, actor: "alice", reason: nil) }?.code
                == .failedPrecondition)
    }

    @Test(arguments: StoreEngine.allCases) func plans_cannotBeProposedAndNeverMoveTheInstance(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await StoreFixture(engine)
        let refused = await convergeError { try await fixture.create(["size": 20], mode: .proposal, action: .plan) }
        #expect(
            refused == ConvergeError(.invalidArgument, "only provision and decommission deployments can be proposed"))
        let plan = try await fixture.create(["size": 20], action: .plan).deployment
        #expect(try await fixture.store.instance("shop-dev-db").params == nil)
        let running = try await fixture.store.claimNextDeployments(owner: "w", leaseDuration: 60, limit: 10)
        #expect(running.map(\.id) == [plan.id])
        let done = try await fixture.store.complete(
            plan.id, owner: "w", epoch: 1, outputs: [:], planResult: ["changes": 3])
        #expect(done.planResult == ["changes": 3])
        #expect(try await fixture.store.instance("shop-dev-db").status == .initialized)
    }

    @Test(arguments: StoreEngine.allCases) func claim_takesTheHeadOfEachQueueInCreationOrder(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await StoreFixture(engine, instances: ["shop-dev-a", "shop-dev-b", "shop-dev-c"])
        let store = fixture.store
        let proposal = try await fixture.create(["v": 1], on: "shop-dev-a", mode: .proposal).deployment
        let b1 = try await fixture.create(["v": 1], on: "shop-dev-b").deployment
        _ = try await store.approve(proposal.id, approver: "bob")
        let a2 = try await fixture.create(["v": 2], on: "shop-dev-a").deployment
        let b2 = try await fixture.create(["v": 2], on: "shop-dev-b").deployment
        let c1 = try await fixture.create(["v": 1], on: "shop-dev-c").deployment

        // a's approved proposal was created before b1, so it runs before it: creation order decides, not approval.
        let first = try await store.claimNextDeployments(owner: "w1", leaseDuration: 30, limit: 2)
        #expect(first.map(\.id) == [proposal.id, b1.id])
        #expect(first.allSatisfy { $0.status == .running && $0.attempt == 1 })
        #expect(first[0].lease == Deployment.Lease(owner: "w1", epoch: 1, expiresAt: fixture.clock.now + 30))
        #expect(first[0].startedAt == fixture.clock.now)

        let second = try await store.claimNextDeployments(owner: "w2", leaseDuration: 30, limit: 10)
        #expect(second.map(\.id) == [c1.id])

        _ = try await store.complete(b1.id, owner: "w1", epoch: 1, outputs: ["endpoint": "b:5432"], planResult: nil)
        #expect(try await store.claimNextDeployments(owner: "w2", leaseDuration: 30, limit: 10).map(\.id) == [b2.id])
        _ = try await store.fail(proposal.id, owner: "w1", epoch: 1, error: "boom")
        #expect(try await store.claimNextDeployments(owner: "w2", leaseDuration: 30, limit: 10).map(\.id) == [a2.id])
        #expect(try await store.claimNextDeployments(owner: "w2", leaseDuration: 30, limit: 10).isEmpty)
    }

    @Test(arguments: StoreEngine.allCases) func proposed_neverBlocksDirectWork(_ engine: StoreEngine) async throws {
        let fixture = try await StoreFixture(engine)
        _ = try await fixture.create(["v": 1], mode: .proposal)
        let direct = try await fixture.create(["v": 2]).deployment
        #expect(
            try await fixture.store.claimNextDeployments(owner: "w", leaseDuration: 30, limit: 10).map(\.id) == [
                direct.id
            ])
    }

    @Test(arguments: StoreEngine.allCases) func completeAndFail_moveInstanceStatusAndOutputs(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await StoreFixture(engine)
        let store = fixture.store
        let provision = try await fixture.create(["v": 1]).deployment
        _ = try await store.claimNextDeployments(owner: "w", leaseDuration: 30, limit: 1)
        let wrongOwner = await convergeError {
            try await store.complete(provision.id, owner: "x", epoch: 1, outputs: [:], planResult: nil)
        }
        #expect(wrongOwner?.code == .failedPrecondition)
        #expect(wrongOwner?.message.contains("was taken over: w holds epoch 1, not x epoch 1") == true)
        let completed = try await store.complete(
            provision.id, owner: "w", epoch: 1, outputs: ["endpoint": "db:5432"], planResult: nil)
        #expect(completed.status == .completed)
        #expect(completed.lease == nil)
        var instance = try await store.instance("shop-dev-db")
        #expect(instance.status == .provisioned)
        #expect(instance.outputs == ["endpoint": "db:5432"])
        let late = await convergeError { try await store.fail(provision.id, owner: "w", epoch: 1, error: "late") }
        #expect(late == ConvergeError(.failedPrecondition, "deployment \(provision.id) is COMPLETED, not RUNNING"))

        let failing = try await fixture.create(["v": 2]).deployment
        _ = try await store.claimNextDeployments(owner: "w", leaseDuration: 30, limit: 1)
        #expect(
            try await store.fail(failing.id, owner: "w", epoch: 1, error: "quota exceeded").error == "quota exceeded")
        instance = try await store.instance("shop-dev-db")
        #expect(instance.status == .failed)
        #expect(instance.outputs == ["endpoint": "db:5432"])

        let decommission = try await fixture.create(["v": 2], action: .decommission).deployment
        _ = try await store.claimNextDeployments(owner: "w", leaseDuration: 30, limit: 1)
        _ = try await store.complete(decommission.id, owner: "w", epoch: 1, outputs: [:], planResult: nil)
        instance = try await store.instance("shop-dev-db")
        #expect(instance.status == .decommissioned)
        #expect(instance.outputs == nil)
    }

    @Test(arguments: StoreEngine.allCases) func leases_expiryOnlyAllowsATakeover_andTheEpochFencesTheFormerHolder(
        _ engine: StoreEngine
    ) async throws {
        let fixture = try await StoreFixture(engine, instances: ["shop-dev-db", "shop-dev-app"])
        let store = fixture.store
        let deployment = try await fixture.create(["v": 1]).deployment
        let other = try await fixture.create(["v": 1], on: "shop-dev-app").deployment
        let claimed = try await store.claimNextDeployments(owner: "w", leaseDuration: 30, limit: 1)
        #expect(claimed.map(\.id) == [deployment.id])
        #expect(claimed[0].lease?.epoch == 1)
        _ = try await store.claimNextDeployments(owner: "w", leaseDuration: 10, limit: 1)
        fixture.clock.advance(by: 20)
        let renewed = try await store.renewLease(deployment.id, owner: "w", epoch: 1, leaseDuration: 30)
        #expect(renewed.lease?.expiresAt == fixture.clock.now + 30)
        // Only the expired one is taken over.
        #expect(
            try await store.takeOverExpiredLeases(owner: "d2", leaseDuration: 30, limit: 10, excluding: []).map(\.id)
                == [other.id])
        _ = try await store.complete(other.id, owner: "d2", epoch: 2, outputs: [:], planResult: nil)

        // Expired, but nobody took it over: the holder is still the holder (a daemon stopped longer than its lease).
        fixture.clock.advance(by: 31)
        #expect(try await store.renewLease(deployment.id, owner: "w", epoch: 1, leaseDuration: 30).status == .running)
        #expect(try await store.takeOverExpiredLeases(owner: "d2", leaseDuration: 30, limit: 10, excluding: []).isEmpty)

        fixture.clock.advance(by: 31)
        let taken = try await store.takeOverExpiredLeases(owner: "d2", leaseDuration: 10, limit: 10, excluding: [])
        #expect(taken.map(\.id) == [deployment.id])
        #expect(taken[0].lease == Deployment.Lease(owner: "d2", epoch: 2, expiresAt: fixture.clock.now + 10))
        #expect(taken[0].attempt == 1)
        #expect(taken[0].startedAt == claimed[0].startedAt)
        for write in [
            { _ = try await store.renewLease(deployment.id, owner: "w", epoch: 1, leaseDuration: 30) },
            { _ = try await store.complete(deployment.id, owner: "w", epoch: 1, outputs: [:], planResult: nil) },
            { _ = try await store.fail(deployment.id, owner: "w", epoch: 1, error: "late") },
            { _ = try await store.complete(deployment.id, owner: "d2", epoch: 1, outputs: [:], planResult: nil) },
        ] as [@Sendable () async throws -> Void] {
            #expect(await convergeError(write)?.code == .failedPrecondition)
        }
        let events = try await store.events(of: deployment.id, after: nil, limit: 100).items.map(\.message)
        #expect(events.contains { $0.hasPrefix("lease of w expired; d2 resumes attempt 1") })
        let completed = try await store.complete(
            deployment.id, owner: "d2", epoch: 2, outputs: ["endpoint": "db:5432"], planResult: nil)
        #expect(completed.status == .completed)
        #expect(try await store.instance("shop-dev-db").status == .provisioned)
    }

    @Test(arguments: StoreEngine.allCases) func deploymentCounts_followEveryStatusChange(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await StoreFixture(engine, instances: ["shop-dev-db", "shop-dev-app"])
        let store = fixture.store
        let a = try await fixture.create(["v": 1]).deployment
        _ = try await fixture.create(["v": 1], on: "shop-dev-app", mode: .proposal)
        #expect(try await store.deploymentCounts() == [.pending: 1, .proposed: 1])
        _ = try await store.claimNextDeployments(owner: "w", leaseDuration: 30, limit: 10)
        _ = try await store.fail(a.id, owner: "w", epoch: 1, error: "boom")
        let counts = try await store.deploymentCounts()
        #expect(counts[.failed] == 1 && counts[.proposed] == 1 && (counts[.pending] ?? 0) == 0)
        #expect((counts[.running] ?? 0) == 0)
    }

    @Test(arguments: StoreEngine.allCases) func retry_isADirectDeploymentOfTheFailedSnapshot_pointingAtIt(
        _ engine: StoreEngine
    ) async throws {
        let fixture = try await StoreFixture(engine)
        let store = fixture.store
        let failed = try await fixture.create(["v": 1]).deployment
        _ = try await store.claimNextDeployments(owner: "w", leaseDuration: 30, limit: 1)
        _ = try await store.fail(failed.id, owner: "w", epoch: 1, error: "boom")
        let retry = try await store.createDeployment(
            DeploymentRequest(
                instanceID: "shop-dev-db", snapshot: failed.snapshot, mode: .direct, actor: "converge",
                retryOf: failed.id))
        #expect(retry.created)
        #expect(retry.deployment.retryOf == failed.id)
        #expect(retry.deployment.desiredHash == failed.desiredHash)
        #expect(retry.deployment.status == .pending)
        let recent = try await store.recentDeployments(of: "shop-dev-db", limit: 5)
        #expect(recent.map(\.id) == [retry.deployment.id, failed.id])
        #expect(recent[0].retryOf == failed.id && recent[1].status == .failed && recent[1].error == "boom")
        let proposed = await convergeError {
            _ = try await store.createDeployment(
                DeploymentRequest(
                    instanceID: "shop-dev-db", snapshot: failed.snapshot, mode: .proposal, actor: "converge",
                    retryOf: failed.id))
        }
        #expect(proposed?.code == .invalidArgument)
    }

    @Test(arguments: StoreEngine.allCases) func instanceStatus_andSecrets_persist(_ engine: StoreEngine) async throws {
        let fixture = try await StoreFixture(engine)
        let condition = InstanceCondition(
            type: .blocked, status: true, reason: "WaitingForUpstream", message: "waiting for shop-dev-app",
            lastTransitionTime: fixture.clock.now)
        try await fixture.store.updateInstanceStatus("shop-dev-db", observedGeneration: 3, conditions: [condition])
        let instance = try await fixture.store.instance("shop-dev-db")
        #expect(instance.observedGeneration == 3)
        #expect(instance.conditions == [condition])
        #expect(try await fixture.store.instanceIDs() == ["shop-dev-app", "shop-dev-db"])
        let secret = try await fixture.store.secret(named: "callback")
        #expect(secret.count == 32)
        #expect(try await fixture.openStore().secret(named: "callback") == secret)
        #expect(try await fixture.store.secret(named: "other") != secret)
    }

    @Test(arguments: StoreEngine.allCases) func history_isNewestFirstByCursor(_ engine: StoreEngine) async throws {
        let fixture = try await StoreFixture(engine)
        var ids: [String] = []
        for version in 0..<7 { ids.append(try await fixture.create(["v": .int(version)]).deployment.id) }
        var seen: [String] = []
        var cursor: String?
        for _ in 0..<10 {
            let page = try await fixture.store.history(of: "shop-dev-db", after: cursor, limit: 3)
            seen += page.items.map(\.id)
            cursor = page.nextCursor
            if cursor == nil { break }
        }
        #expect(seen == ids.reversed())
    }

    @Test(arguments: StoreEngine.allCases) func events_appendInOrderAndReadByCursor(_ engine: StoreEngine) async throws
    {
        let fixture = try await StoreFixture(engine)
        let deployment = try await fixture.create(["v": 1]).deployment
        try await fixture.store.appendEvents(
            [
                DeploymentEventDraft(kind: .phase, message: "plan"),
                DeploymentEventDraft(kind: .log, message: "creating db", data: ["step": 1]),
            ], to: deployment.id)
        let page = try await fixture.store.events(of: deployment.id, after: nil, limit: 2)
        #expect(page.items.map(\.message) == ["created as PENDING", "plan"])
        let rest = try await fixture.store.events(of: deployment.id, after: page.nextCursor, limit: 10)
        #expect(rest.items.map(\.message) == ["creating db"])
        #expect(rest.items[0].data == ["step": 1])
        #expect(rest.nextCursor == nil)
        #expect(
            await convergeError { try await fixture.store.appendEvents([], to: "dnope") }
                == ConvergeError(.notFound, "deployment dnope not found"))
    }

    /// Two daemons' reconcilers decide the same change from the same read: the first creates it; the second, decided
    /// from the view before it, is refused and creates nothing, also after the first completed (when the index of
    /// open deployments no longer stops it).
    @Test(arguments: StoreEngine.allCases)
    func aReconcilersRequest_decidedBeforeANewerDeployment_isRefusedAndCreatesNothing(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await StoreFixture(engine)
        let store = fixture.store
        func request(_ decidedAfter: Int64) -> DeploymentRequest {
            DeploymentRequest(
                instanceID: "shop-dev-db", snapshot: StoreFixture.snapshot(["size": 1]), mode: .direct,
                actor: "reconciler", decidedAfter: decidedAfter)
        }
        let first = try await store.createDeployment(request(0))
        #expect(first.created)
        _ = try await store.claimNextDeployments(owner: "w", leaseDuration: 30, limit: 1)
        _ = try await store.complete(first.deployment.id, owner: "w", epoch: 1, outputs: [:], planResult: nil)
        let refused = await convergeError { try await store.createDeployment(request(0)) }
        #expect(refused == .decidedFromAnOlderView("shop-dev-db"))
        #expect(try await store.history("shop-dev-db").count == 1)
        let next = DeploymentRequest(
            instanceID: "shop-dev-db", snapshot: StoreFixture.snapshot(["size": 2]), mode: .direct, actor: "reconciler",
            decidedAfter: first.deployment.sequence)
        #expect(try await store.createDeployment(next).created)
    }
}
