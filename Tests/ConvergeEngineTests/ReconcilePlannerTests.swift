import ConvergeCore
import Foundation
import Testing

@testable import ConvergeEngine
@testable import ConvergeStore

@Suite struct ReconcilePlannerTests {
    let now = Date(timeIntervalSince1970: 2_000)

    static let bundle = BundleDefinition(
        id: "app", provisioner: "hook", description: nil,
        connections: [
            "database": ConnectionSlot(type: "pg", optional: false),
            "network": ConnectionSlot(type: "vpc", optional: false),
        ],
        artifacts: ["url": "http"], paramsSchema: [:], labels: [:])

    func environment(
        _ policy: ApprovalPolicy, prune: Bool = false, retry: RetryPolicy? = nil, reviewSelector: LabelSelector? = nil
    ) -> Environment {
        Environment(
            id: "p-dev", project: "p", name: "dev", description: nil, policy: policy, prune: prune,
            defaults: ["vpc": "p-vpc"], labels: [:], retry: retry, reviewSelector: reviewSelector)
    }

    func context(
        policy: ApprovalPolicy = .auto, prune: Bool = false, params: Value = ["size": 1], removed: Bool = false,
        upstreamOutputs: Value? = ["endpoint": ["host": "db"]], history: [DeploymentSummary] = [],
        status: InstanceStatus = .initialized, labels: [String: String] = [:], reviewSelector: LabelSelector? = nil
    ) -> ReconcileContext {
        let instance = Instance(
            id: "p-dev-app", project: "p", environment: "p-dev", name: "app", bundle: "app", version: "2.0.0",
            params: params, connections: ["database": ConnectionTarget(instance: "p-dev-db", artifact: "endpoint")],
            labels: labels)
        let record = InstanceRecord(
            id: "p-dev-app", environment: "p-dev", bundle: "app", status: status, params: ["size": 1],
            connectionParams: [:], version: "2.0.0", outputs: nil, observedGeneration: 0, conditions: [],
            updatedAt: now)
        let upstream = InstanceRecord(
            id: "p-dev-db", environment: "p-dev", bundle: "db", status: .provisioned, params: [:],
            connectionParams: [:],
            version: "1", outputs: upstreamOutputs, observedGeneration: 0, conditions: [], updatedAt: now)
        return ReconcileContext(
            instanceID: "p-dev-app", desired: removed ? nil : instance,
            environment: environment(policy, prune: prune, reviewSelector: reviewSelector),
            bundle: Self.bundle,
            resources: [
                "p-vpc": ImportedResource(
                    id: "p-vpc", project: "p", environment: nil, type: "vpc", data: ["id": "vpc-1"], labels: [:])
            ], record: record, upstream: ["p-dev-db": upstream], history: history, generation: 4,
            commit: ["sha": "abc"],
            removedLabels: removed ? labels : [:])
    }

    func deployment(
        _ snapshot: DeploymentSnapshot, _ status: Deployment.Status, by actor: String = "converge", id: String? = nil,
        retryOf: String? = nil
    ) -> DeploymentSummary {
        DeploymentSummary(
            id: id ?? "d\(status.rawValue.lowercased())", sequence: 1, action: snapshot.action, status: status,
            desiredHash: snapshot.desiredHash, createdBy: actor, finishedAt: status.isTerminal ? now : nil,
            retryOf: retryOf)
    }

    func condition(_ plan: ReconcilePlan, _ kind: InstanceCondition.Kind) -> InstanceCondition? {
        plan.conditions.first { $0.type == kind }
    }

    @Test func snapshot_resolvesWiresFromUpstreamOutputsAndDefaultsFromResources() throws {
        let snapshot = try ReconcilePlanner.snapshot(of: context().desired!, context: context()).get()
        #expect(snapshot.connectionParams == ["database": ["host": "db"], "network": ["id": "vpc-1"]])
        #expect(snapshot.version == "2.0.0")
        #expect(snapshot.metadata["commit"] == ["sha": "abc"])
        #expect(snapshot.metadata["generation"] == 4)
    }

    @Test func auto_createsAPendingDeployment() throws {
        let plan = ReconcilePlanner.plan(context(), now: now)
        guard case .create(let snapshot, .direct)? = plan.steps.first else {
            Issue.record("expected a direct deployment, got \(plan.steps)")
            return
        }
        #expect(snapshot.params == ["size": 1])
        #expect(condition(plan, .progressing)?.reason == "DeploymentQueued")
        #expect(condition(plan, .ready)?.status == false)
    }

    @Test func sameHashAsTheLatestDeployment_doesNothing() throws {
        let snapshot = try ReconcilePlanner.snapshot(of: context().desired!, context: context()).get()
        for status in Deployment.Status.allCases {
            let plan = ReconcilePlanner.plan(context(history: [deployment(snapshot, status)]), now: now)
            #expect(plan.steps.isEmpty, "\(status)")
        }
        let completed = ReconcilePlanner.plan(
            context(history: [deployment(snapshot, .completed)], status: .provisioned), now: now)
        #expect(condition(completed, .ready)?.status == true)
        #expect(condition(completed, .progressing)?.reason == "UpToDate")
        let failed = ReconcilePlanner.plan(context(history: [deployment(snapshot, .failed)]), now: now)
        #expect(condition(failed, .failed)?.status == true)
    }

    @Test func rollback_holdsTheInstanceAtItsSnapshot_untilTheManifestsChangeTheInstance() throws {
        var old = try ReconcilePlanner.snapshot(of: context(params: ["size": 0]).desired!, context: context()).get()
        old.metadata = [:]
        var rollback = deployment(old, .completed, by: "alice", id: "drollback")
        rollback.rollbackOf = "dsource"
        for status in [Deployment.Status.pending, .running, .completed, .failed] {
            rollback.status = status
            var held = context(history: [rollback])
            held.rollbackGeneration = held.generation
            #expect(ReconcilePlanner.plan(held, now: now).steps.isEmpty, "\(status)")
        }
        rollback.status = .completed
        var changed = context(history: [rollback])
        changed.rollbackGeneration = changed.generation - 1
        guard case .create(let snapshot, .direct)? = ReconcilePlanner.plan(changed, now: now).steps.first else {
            Issue.record("a newer generation of the instance deploys again")
            return
        }
        #expect(snapshot.params == ["size": 1])
        rollback.status = .aborted
        var aborted = context(history: [rollback])
        aborted.rollbackGeneration = aborted.generation
        #expect(ReconcilePlanner.plan(aborted, now: now).steps.count == 1, "an aborted rollback holds nothing")
    }

    @Test func orphanedInstance_isNeitherDeployedNorDecommissioned() throws {
        for (removed, prune) in [(false, false), (true, true)] {
            var orphaned = context(prune: prune, params: ["size": 7], removed: removed, status: .provisioned)
            orphaned.record?.orphanedBy = "dora"
            let plan = ReconcilePlanner.plan(orphaned, now: now)
            #expect(plan.steps.isEmpty, "removed: \(removed)")
            #expect(condition(plan, .orphaned)?.status == true)
            #expect(condition(plan, .orphaned)?.message == "no longer managed: orphaned by dora")
        }
    }

    @Test func review_proposesAndSupersedesOnlyTheReconcilersOlderProposals() throws {
        let old = try ReconcilePlanner.snapshot(of: context(params: ["size": 0]).desired!, context: context()).get()
        var humans = old
        humans.params = ["size": 9]
        let plan = ReconcilePlanner.plan(
            context(
                policy: .review, history: [deployment(old, .proposed), deployment(humans, .proposed, by: "alice")]),
            now: now)
        #expect(plan.steps.count == 2)
        #expect(plan.steps.first == .supersede(deploymentID: "dproposed"))
        guard case .create(_, .proposal)? = plan.steps.last else {
            Issue.record("expected a proposal, got \(plan.steps)")
            return
        }
        #expect(condition(plan, .progressing)?.reason == "AwaitingApproval")
    }

    @Test func twoPhase_plansFirstThenProposesOnceThePlanCompleted() throws {
        let first = ReconcilePlanner.plan(context(policy: .twoPhase), now: now)
        guard case .create(let plan, .direct)? = first.steps.first else {
            Issue.record("expected a plan, got \(first.steps)")
            return
        }
        #expect(plan.action == .plan)
        let waiting = ReconcilePlanner.plan(context(policy: .twoPhase, history: [deployment(plan, .running)]), now: now)
        #expect(waiting.steps.isEmpty)
        let planned = ReconcilePlanner.plan(
            context(policy: .twoPhase, history: [deployment(plan, .completed, id: "dplan")]), now: now)
        guard case .proposeAfterPlan(let proposal, planID: "dplan")? = planned.steps.first else {
            Issue.record("expected a proposal after plan dplan, got \(planned.steps)")
            return
        }
        #expect(proposal.action == .provision)
        #expect(condition(planned, .progressing)?.reason == "AwaitingApproval")
        #expect(condition(planned, .progressing)?.message.contains("awaits its plan approval") == true)
    }

    /// Every state of a two-phase change's plan and proposal, and what the reconciler does in it.
    @Test(
        arguments: [
            // (plan status, proposal status or nil, expected step, Progressing reason)
            (Deployment.Status.pending, nil, "none", "DeploymentQueued"),
            (.running, nil, "none", "DeploymentRunning"),
            (.failed, nil, "none", "DeploymentFailed"),
            (.aborted, nil, "none", "DeploymentAborted"),
            (.completed, nil, "propose", "AwaitingApproval"),
            (.completed, Deployment.Status.proposed, "none", "AwaitingApproval"),
            (.completed, .rejected, "none", "ProposalRejected"),
            (.completed, .aborted, "none", "DeploymentAborted"),
            (.completed, .approved, "none", "DeploymentQueued"),
            (.completed, .completed, "none", "UpToDate"),
        ] as [(Deployment.Status, Deployment.Status?, String, String)])
    func twoPhase_table(planStatus: Deployment.Status, proposal: Deployment.Status?, step: String, reason: String)
        throws
    {
        let change = try ReconcilePlanner.snapshot(of: context().desired!, context: context()).get()
        let plan = ReconcilePlanner.planSnapshot(of: change)
        var history = [deployment(plan, planStatus, id: "dplan")]
        if let proposal { history.insert(deployment(change, proposal, id: "dproposal"), at: 0) }
        let decided = ReconcilePlanner.plan(context(policy: .twoPhase, history: history), now: now)
        switch (step, decided.steps.first) {
        case ("none", nil): break
        case ("propose", .proposeAfterPlan(_, planID: "dplan")?): break
        default: Issue.record("expected \(step), got \(decided.steps)")
        }
        #expect(condition(decided, .progressing)?.reason == reason)
        #expect(condition(decided, .failed)?.status == (planStatus == .failed))
    }

    @Test func twoPhase_decommission_plansWhatWillBeRemovedThenProposes() throws {
        let removed = context(policy: .twoPhase, prune: true, removed: true, status: .provisioned)
        let first = ReconcilePlanner.plan(removed, now: now)
        guard case .create(let plan, .direct)? = first.steps.first else {
            Issue.record("expected a plan, got \(first.steps)")
            return
        }
        #expect(plan.action == .plan)
        #expect(plan.metadata["plannedAction"] == "decommission")
        #expect(condition(first, .progressing)?.message == "a plan of the decommission is queued")
        // The plan of a decommission never stands for a plan of the same configuration's provision.
        let provisionPlan = ReconcilePlanner.planSnapshot(
            of: ReconcilePlanner.decommissionSnapshot(
                of: removed.record!, actor: "converge", reason: "pruned"
            ).withAction(.provision))
        #expect(plan.desiredHash != provisionPlan.desiredHash)
        let stale = ReconcilePlanner.plan(
            context(
                policy: .twoPhase, prune: true, removed: true,
                history: [deployment(provisionPlan, .completed, id: "dold")], status: .provisioned), now: now)
        guard case .create(let again, .direct)? = stale.steps.first else {
            Issue.record("expected a plan of the decommission, got \(stale.steps)")
            return
        }
        #expect(again.desiredHash == plan.desiredHash)

        let planned = ReconcilePlanner.plan(
            context(
                policy: .twoPhase, prune: true, removed: true, history: [deployment(plan, .completed, id: "dplan")],
                status: .provisioned), now: now)
        guard case .proposeAfterPlan(let proposal, planID: "dplan")? = planned.steps.first else {
            Issue.record("expected a decommission proposal after dplan, got \(planned.steps)")
            return
        }
        #expect(proposal.action == .decommission)
    }

    @Test func reviewSelector_makesAnAutoEnvironmentProposeTheInstancesItSelects() {
        let selector = LabelSelector(matchLabels: ["tier": "data"])
        let selected = ReconcilePlanner.plan(
            context(labels: ["tier": "data", "team": "a"], reviewSelector: selector), now: now)
        guard case .create(_, .proposal)? = selected.steps.first else {
            Issue.record("expected a proposal, got \(selected.steps)")
            return
        }
        let other = ReconcilePlanner.plan(context(labels: ["tier": "web"], reviewSelector: selector), now: now)
        guard case .create(_, .direct)? = other.steps.first else {
            Issue.record("expected a direct deployment, got \(other.steps)")
            return
        }
        // A removed instance's decommission: its last declared labels decide.
        let removed = ReconcilePlanner.plan(
            context(
                prune: true, removed: true, status: .provisioned, labels: ["tier": "data"], reviewSelector: selector),
            now: now)
        guard case .create(let decommission, .proposal)? = removed.steps.first else {
            Issue.record("expected a decommission proposal, got \(removed.steps)")
            return
        }
        #expect(decommission.metadata["labels"] == ["tier": "data"])
        // In a two-phase environment the selector changes nothing.
        let twoPhase = ReconcilePlanner.plan(
            context(policy: .twoPhase, labels: ["tier": "data"], reviewSelector: selector), now: now)
        guard case .create(let plan, .direct)? = twoPhase.steps.first, plan.action == .plan else {
            Issue.record("expected a plan, got \(twoPhase.steps)")
            return
        }
    }

    @Test func approverRule_allowsNamedPrincipalsAndRolesReachingANamedOne() {
        let rule = ApproverRule(principals: ["alice"], roles: ["admin"])
        #expect(rule.allows(principal: "alice", holding: ["viewer", "deployer", "approver"]))
        #expect(rule.allows(principal: "root", holding: ["viewer", "deployer", "approver", "admin"]))
        #expect(!rule.allows(principal: "bob", holding: ["viewer", "deployer", "approver"]))
        #expect(ApproverRule().allows(principal: "bob", holding: ["approver"]))
        #expect(rule.summary == "principals alice or roles admin")
    }

    @Test func upstreamWithoutOutputs_blocksNamingIt() {
        let plan = ReconcilePlanner.plan(context(upstreamOutputs: nil), now: now)
        #expect(plan.steps.isEmpty)
        #expect(condition(plan, .blocked)?.status == true)
        #expect(condition(plan, .blocked)?.message == "waiting for p-dev-db to produce endpoint")
    }

    @Test func changedUpstreamOutputs_changeTheHash() throws {
        let before = try ReconcilePlanner.snapshot(of: context().desired!, context: context()).get()
        let changed = context(upstreamOutputs: ["endpoint": ["host": "db2"]])
        let after = try ReconcilePlanner.snapshot(of: changed.desired!, context: changed).get()
        #expect(before.desiredHash != after.desiredHash)
        let plan = ReconcilePlanner.plan(
            context(upstreamOutputs: ["endpoint": ["host": "db2"]], history: [deployment(before, .completed)]), now: now
        )
        #expect(plan.steps.count == 1)
    }

    @Test func removed_decommissionsWhenPruningElseReportsOrphaned() {
        let pruned = ReconcilePlanner.plan(context(prune: true, removed: true, status: .provisioned), now: now)
        guard case .create(let snapshot, .direct)? = pruned.steps.first else {
            Issue.record("expected a decommission, got \(pruned.steps)")
            return
        }
        #expect(snapshot.action == .decommission)
        #expect(snapshot.params == ["size": 1])
        let again = ReconcilePlanner.plan(
            context(prune: true, removed: true, history: [deployment(snapshot, .running)], status: .provisioned),
            now: now)
        #expect(again.steps.isEmpty)

        let orphaned = ReconcilePlanner.plan(context(removed: true, status: .provisioned), now: now)
        #expect(orphaned.steps.isEmpty)
        #expect(condition(orphaned, .orphaned)?.status == true)
        #expect(
            condition(orphaned, .orphaned)?.message == "removed from the manifests; environment p-dev does not prune")

        let neverDeployed = ReconcilePlanner.plan(context(prune: true, removed: true), now: now)
        #expect(neverDeployed.steps.isEmpty)
    }

    @Test func conditionTransitionTimes_areKeptWhileTheStatusHolds() {
        let earlier = Date(timeIntervalSince1970: 10)
        let old = [
            InstanceCondition(type: .ready, status: false, reason: "A", message: "", lastTransitionTime: earlier)
        ]
        let same = [InstanceCondition(type: .ready, status: false, reason: "B", message: "x", lastTransitionTime: now)]
        #expect(InstanceCondition.merge(old: old, new: same).first?.lastTransitionTime == earlier)
        let flipped = [InstanceCondition(type: .ready, status: true, reason: "C", message: "", lastTransitionTime: now)]
        #expect(InstanceCondition.merge(old: old, new: flipped).first?.lastTransitionTime == now)
    }

    @Test func retry_countsTheChainOfRetries_andWaitsForTheBackoff() throws {
        let snapshot = try ReconcilePlanner.snapshot(of: context().desired!, context: context()).get()
        var retrying = context(history: [deployment(snapshot, .failed, id: "d1")])
        retrying.environment = environment(.auto, retry: RetryPolicy(limit: 2, backoff: 30))
        let early = ReconcilePlanner.plan(retrying, now: now.addingTimeInterval(10))
        #expect(early.steps.isEmpty)
        #expect(early.requeueAfter == 20)
        #expect(condition(early, .progressing)?.reason == "RetryScheduled")
        #expect(ReconcilePlanner.plan(retrying, now: now.addingTimeInterval(30)).steps == [.retry(deploymentID: "d1")])

        retrying.history = [
            deployment(snapshot, .failed, id: "d2", retryOf: "d1"), deployment(snapshot, .failed, id: "d1"),
        ]
        #expect(ReconcilePlanner.plan(retrying, now: now.addingTimeInterval(59)).requeueAfter == 1)
        #expect(ReconcilePlanner.plan(retrying, now: now.addingTimeInterval(60)).steps == [.retry(deploymentID: "d2")])
        retrying.history.insert(deployment(snapshot, .failed, id: "d3", retryOf: "d2"), at: 0)
        let exhausted = ReconcilePlanner.plan(retrying, now: now.addingTimeInterval(1000))
        #expect(exhausted.steps.isEmpty && exhausted.requeueAfter == nil)
        #expect(condition(exhausted, .failed)?.status == true)
    }
}

extension DeploymentSnapshot {
    /// The same snapshot with another action.
    fileprivate func withAction(_ action: Deployment.Action) -> DeploymentSnapshot {
        var copy = self
        copy.action = action
        return copy
    }
}
