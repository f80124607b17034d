import ConvergeCore
import ConvergeStore
import Foundation

/// Deployments people ask for through the API. The daemon still owns their lifecycle: each request is checked
/// against the manifests in force and the environment's approval policy, recorded by the store in one transaction,
/// and handed to the dispatcher.
extension Reconciler {
    /// A deployment of what the manifests declare for instance `id` now (provision or plan), or the decommission of
    /// an instance that is no longer declared. `mode` nil follows the environment's policy; a direct provision or
    /// decommission in an environment that needs review is refused, so nothing is applied unapproved. A plan is
    /// always direct: it changes nothing.
    public func requestDeployment(
        of id: String, action: Deployment.Action, mode requested: DeploymentRequest.Mode?, actor: String
    ) async throws -> DeploymentCreation {
        if action == .plan, requested == .proposal {
            throw ConvergeError(
                .invalidArgument, "mode: a plan runs directly; only provision and decommission can be proposed",
                details: ["field": "mode"])
        }
        let context = try await requestContext(of: id)
        var snapshot: DeploymentSnapshot
        switch (action, context.desired) {
        case (.decommission, nil):
            guard let record = context.record, record.status != .decommissioned else {
                throw ConvergeError(.failedPrecondition, "instance \(id) is already decommissioned")
            }
            snapshot = ReconcilePlanner.decommissionSnapshot(
                of: record, labels: context.removedLabels, actor: actor, reason: "requested by \(actor)")
        case (.decommission, _):
            throw ConvergeError(
                .failedPrecondition,
                "instance \(id) is declared in the manifests; remove it from them to decommission it")
        case (_, nil):
            throw ConvergeError(.notFound, "instance \(id) is not declared in the manifests")
        case (_, let desired?):
            snapshot = try Self.declaredSnapshot(of: desired, context: context, actor: actor)
            snapshot.action = action
        }
        let mode = try self.mode(requested, for: action, in: context)
        return try await create(
            DeploymentRequest(instanceID: id, snapshot: snapshot, mode: mode, actor: actor), in: context)
    }

    /// A rollout's change of instance `id` (DESIGN §6 deploy or decommission an environment): its provision as the
    /// manifests declare it, or its decommission although it is declared (the rollout then holds the environment
    /// down); either follows the environment's policy.
    func requestChange(of id: String, action: Deployment.Action, actor: String, reason: String) async throws
        -> DeploymentCreation
    {
        let context = try await requestContext(of: id)
        let snapshot: DeploymentSnapshot
        if action == .decommission {
            snapshot = ReconcilePlanner.decommissionSnapshot(
                of: try await store.instance(id), labels: context.desired?.labels ?? context.removedLabels,
                actor: actor, reason: reason)
        } else if let desired = context.desired {
            snapshot = try Self.declaredSnapshot(of: desired, context: context, actor: actor)
        } else {
            throw ConvergeError(.notFound, "instance \(id) is not declared in the manifests")
        }
        let mode = try self.mode(nil, for: action, in: context)
        return try await create(
            DeploymentRequest(instanceID: id, snapshot: snapshot, mode: mode, actor: actor), in: context)
    }

    /// The snapshot of what the manifests declare for an instance now; `failed_precondition` while an upstream
    /// instance has not produced what it connects to.
    private static func declaredSnapshot(of desired: Instance, context: ReconcileContext, actor: String) throws
        -> DeploymentSnapshot
    {
        switch ReconcilePlanner.snapshot(of: desired, context: context, actor: actor) {
        case .failure(let blocked):
            throw ConvergeError(
                .failedPrecondition, "instance \(desired.id) cannot be deployed yet: \(blocked.message)")
        case .success(let snapshot):
            return snapshot
        }
    }

    /// A PLAN of a PROPOSED deployment's snapshot: what approving it would change.
    public func requestPlan(ofProposal proposalID: String, actor: String) async throws -> DeploymentCreation {
        let proposal = try await store.deployment(proposalID)
        guard proposal.status == .proposed else {
            throw ConvergeError(
                .failedPrecondition,
                "deployment \(proposalID) is \(proposal.status.rawValue); only a PROPOSED deployment is planned")
        }
        guard proposal.action == .provision else {
            throw ConvergeError(
                .failedPrecondition,
                "deployment \(proposalID) is a \(proposal.action.rawValue); only a provision is planned")
        }
        var snapshot = proposal.snapshot
        snapshot.action = .plan
        snapshot.metadata = Self.refreshed(snapshot.metadata, actor: actor, extra: ["planOf": .string(proposalID)])
        return try await create(
            DeploymentRequest(instanceID: proposal.instanceID, snapshot: snapshot, mode: .direct, actor: actor))
    }

    /// DESIGN §6 rollback: a new deployment of instance `id` with the params, connection params and version of
    /// `sourceID`, which must be a COMPLETED provision of the same instance; it follows the environment's policy.
    /// Once it stands as the instance's newest change, the reconciler holds the instance at its snapshot (version
    /// and params pinned) until the manifests change the instance again.
    public func requestRollback(of id: String, to sourceID: String, actor: String) async throws -> DeploymentCreation {
        let source = try await store.deployment(sourceID)
        guard source.instanceID == id else {
            throw ConvergeError(
                .failedPrecondition, "deployment \(sourceID) is of instance \(source.instanceID), not \(id)")
        }
        guard source.action == .provision, source.status == .completed else {
            throw ConvergeError(
                .failedPrecondition,
                "deployment \(sourceID) is a \(source.status.rawValue) \(source.action.rawValue); a rollback needs a "
                    + "COMPLETED provision")
        }
        let context = try await requestContext(of: id)
        var snapshot = source.snapshot
        snapshot.metadata = Self.refreshed(
            snapshot.metadata, actor: actor,
            extra: [
                "rollbackOf": .string(sourceID), "commit": context.commit ?? .null,
                "rollbackGeneration": .int(Int(context.generation)),
            ])
        let mode = try self.mode(nil, for: .provision, in: context)
        return try await create(
            DeploymentRequest(instanceID: id, snapshot: snapshot, mode: mode, actor: actor, rollbackOf: sourceID),
            in: context)
    }

    /// Creates a person's deployment; in a two-phase environment a proposal follows its PLAN: the plan is queued
    /// (or an open or completed one of the same change reused) and the proposal, created at once, awaits the plan
    /// approval, which the store refuses until the plan completed.
    private func create(_ request: DeploymentRequest, in context: ReconcileContext) async throws
        -> DeploymentCreation
    {
        guard request.mode == .proposal, context.policy == .twoPhase else { return try await create(request) }
        if let open = context.history.first(where: {
            $0.status == .proposed && $0.desiredHash == request.snapshot.desiredHash
        }) {
            return DeploymentCreation(deployment: try await store.deployment(open.id), created: false)
        }
        let plan = ReconcilePlanner.planSnapshot(of: request.snapshot)
        let planHash = plan.desiredHash
        var planID = context.history.first {
            $0.action == .plan && $0.desiredHash == planHash && ![.failed, .aborted].contains($0.status)
        }?.id
        if planID == nil {
            planID = try await create(
                DeploymentRequest(instanceID: request.instanceID, snapshot: plan, mode: .direct, actor: request.actor)
            ).deployment.id
        }
        var proposal = request
        proposal.planID = planID
        return try await create(proposal)
    }

    /// Approves the step a proposal awaits, for `approver`, under the approver rules of its environment in the
    /// manifests in force; `ApprovalDecision.decide` rules, in the store's transaction.
    public func approve(_ id: String, by approver: Approver, step: Deployment.ApprovalStep? = nil) async throws
        -> Deployment
    {
        try await store.approve(id, by: approver, rule: try await approverRule(of: id), step: step)
    }

    /// Rejects a proposal at whichever step it is, for `approver`, under the approver rules of its environment.
    public func reject(_ id: String, by approver: Approver, reason: String?) async throws -> Deployment {
        try await store.reject(id, by: approver, rule: try await approverRule(of: id), reason: reason)
    }

    /// Who may decide on deployment `id` (`spec.approvers` of its environment in the manifests in force); nil:
    /// anyone with the approver role. An instance never changes environment, so this holds through the decision.
    private func approverRule(of id: String) async throws -> ApproverRule? {
        let deployment = try await store.deployment(id)
        let environmentID = try await store.instance(deployment.instanceID).environment
        return manifests.current?.state.environments[environmentID]?.approvers
    }

    /// The context of a request: the manifests must be loaded and the instance known to them or to the store.
    private func requestContext(of id: String) async throws -> ReconcileContext {
        guard manifests.current != nil else {
            throw ConvergeError(.failedPrecondition, "the daemon has not loaded the manifests yet; try again shortly")
        }
        guard let context = try await context(of: id) else {
            throw ConvergeError(.notFound, "instance \(id) not found")
        }
        return context
    }

    /// The mode a request gets: a plan is direct; otherwise the environment's policy decides, and a request for
    /// `direct` where the policy needs review is refused.
    private func mode(_ requested: DeploymentRequest.Mode?, for action: Deployment.Action, in context: ReconcileContext)
        throws -> DeploymentRequest.Mode
    {
        guard action != .plan else { return .direct }
        let policy = context.policy
        switch (requested, policy) {
        case (nil, .auto): return .direct
        case (nil, _), (.proposal, _): return .proposal
        case (.direct, .auto): return .direct
        case (.direct, _):
            let environment = context.record?.environment ?? context.desired?.environment ?? "?"
            if context.environment?.policy == .auto, let selector = context.environment?.reviewSelector {
                throw ConvergeError(
                    .failedPrecondition,
                    "instance \(context.instanceID) is selected by the reviewSelector of environment \(environment) "
                        + "(\(selector)): a change must be proposed and approved")
            }
            throw ConvergeError(
                .failedPrecondition,
                "environment \(environment) has the \(policy.rawValue) policy: a change must be proposed and approved")
        }
    }

    /// Snapshot metadata with the actor of a new request and the fields given.
    private static func refreshed(_ metadata: Value, actor: String, extra: [String: Value]) -> Value {
        var members = metadata.objectValue ?? [:]
        members["actor"] = .string(actor)
        for (key, value) in extra { members[key] = value == .null ? nil : value }
        return .object(members)
    }
}
