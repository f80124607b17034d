import ConvergeCore
import Foundation

/// Everything the reconciler reads about one instance before it decides.
struct ReconcileContext: Sendable {
    var instanceID: String
    /// The instance as the manifests declare it; nil when it was removed from them.
    var desired: Instance?
    var environment: Environment?
    var bundle: BundleDefinition?
    var resources: [String: ImportedResource]
    /// The recorded instance; nil before the store has seen it.
    var record: InstanceRecord?
    /// Recorded state of the instances its connections are wired to.
    var upstream: [String: InstanceRecord]
    /// The newest deployments of the instance, newest first.
    var history: [DeploymentSummary]
    var generation: Int64
    /// When the newest change is a person's rollback: the instance's generation when it was asked for. The rollback
    /// holds the instance at its snapshot until the manifests change the instance (a newer generation).
    var rollbackGeneration: Int64?
    /// The git commit of the manifests, for deployment metadata.
    var commit: Value?
    /// The labels of an instance removed from the manifests, from its newest deployment's snapshot: what the
    /// environment's review selector looks at for its decommission.
    var removedLabels: [String: String] = [:]
    /// The newest drift check that stands, read only when the newest plan may be one; what `Drifted` says.
    var drift: DriftObservation?
    /// Why the rollout governing the environment holds the instance back (`RolloutGate.hold`): the reconciler then
    /// provisions nothing for it.
    var rolloutHold: (reason: String, message: String)?

    /// The policy a change of this instance follows: its environment's, made `review` for an instance the review
    /// selector selects; `review` when the environment is unknown.
    var policy: ApprovalPolicy {
        environment?.policy(forInstanceLabeled: desired?.labels ?? removedLabels) ?? .review
    }
}

/// What the reconciler does for one instance, decided by `ReconcilePlanner.plan` and carried out by `Reconciler`.
struct ReconcilePlan: Equatable, Sendable {
    /// One change to make, in order.
    enum Step: Equatable, Sendable {
        /// Aborts an open proposal the reconciler made for an older desired state.
        case supersede(deploymentID: String)
        case create(DeploymentSnapshot, DeploymentRequest.Mode)
        /// Queues a new deployment with the snapshot of a FAILED one (the environment's automatic retry).
        case retry(deploymentID: String)
        /// Proposes a change whose PLAN completed: the proposal shows the plan and needs a plan approval, then an
        /// apply approval (the two-phase policy).
        case proposeAfterPlan(DeploymentSnapshot, planID: String)
    }

    var steps: [Step] = []
    /// The conditions to record; their transition times are filled in against the recorded ones.
    var conditions: [InstanceCondition] = []
    /// When to look at the instance again although nothing changed (a retry's backoff).
    var requeueAfter: TimeInterval?
}

/// The reconcile decision as a pure function (DESIGN §4): compute the desired snapshot and its hash, compare with
/// what is recorded, and say what to create, what to supersede and which conditions hold.
enum ReconcilePlanner {
    /// The actor of everything the reconciler creates; people approve its proposals.
    static let actor = "converge"

    static func plan(_ context: ReconcileContext, now: Date) -> ReconcilePlan {
        if let by = context.record?.orphanedBy {
            // No longer managed: whatever the manifests say, nothing is deployed or decommissioned.
            return ReconcilePlan(
                steps: [],
                conditions: conditions(
                    context, now: now, ready: context.record?.status == .provisioned, readyReason: "Orphaned",
                    orphaned: (true, "OrphanedByRequest", "no longer managed: orphaned by \(by)")))
        }
        guard let desired = context.desired else { return planRemoved(context, now: now) }
        if let hold = context.rolloutHold {
            let ready = context.record?.status == .provisioned
            return ReconcilePlan(
                steps: [],
                conditions: conditions(
                    context, now: now, ready: ready, readyReason: hold.reason,
                    progressing: (hold.reason == "WaitingForRollout", hold.reason, hold.message)))
        }
        let policy = context.policy
        switch snapshot(of: desired, context: context) {
        case .failure(let blocked):
            return ReconcilePlan(
                steps: [],
                conditions: conditions(
                    context, now: now, ready: context.record?.status == .provisioned,
                    readyReason: "Blocked", progressing: (false, "Blocked", blocked.message),
                    blocked: (true, "WaitingForUpstream", blocked.message)))
        case .success(let snapshot):
            return planPresent(context, snapshot: snapshot, policy: policy, now: now)
        }
    }

    /// Why a snapshot cannot be taken yet: an upstream instance has no outputs for the artifact.
    struct Blocked: Error, Equatable {
        var upstream: String
        var artifact: String
        var message: String { "waiting for \(upstream) to produce \(artifact)" }
    }

    /// The desired snapshot: params with defaults, connections resolved from upstream outputs or environment
    /// defaults, version and metadata.
    static func snapshot(of instance: Instance, context: ReconcileContext, actor: String = actor)
        -> Result<DeploymentSnapshot, Blocked>
    {
        var connectionParams: [String: Value] = [:]
        for (slot, definition) in (context.bundle?.connections ?? [:]).sorted(by: { $0.key < $1.key }) {
            if let wire = instance.connections[slot] {
                guard let artifact = context.upstream[wire.instance]?.outputs?[wire.artifact] else {
                    return .failure(Blocked(upstream: wire.instance, artifact: wire.artifact))
                }
                connectionParams[slot] = artifact
            } else if let resourceID = context.environment?.defaults[definition.type],
                let resource = context.resources[resourceID]
            {
                connectionParams[slot] = resource.data
            }
        }
        var metadata: [String: Value] = [
            "instance": .string(instance.id), "name": .string(instance.name), "project": .string(instance.project),
            "environment": .string(instance.environment), "bundle": .string(instance.bundle),
            "labels": .object(instance.labels.mapValues { .string($0) }), "generation": .int(Int(context.generation)),
            "actor": .string(actor),
        ]
        if let provisioner = context.bundle?.provisioner { metadata["provisioner"] = .string(provisioner) }
        if let commit = context.commit { metadata["commit"] = commit }
        return .success(
            DeploymentSnapshot(
                action: .provision, params: instance.params, connectionParams: .object(connectionParams),
                version: instance.version ?? "latest", metadata: .object(metadata)))
    }

    static func planPresent(
        _ context: ReconcileContext, snapshot: DeploymentSnapshot, policy: ApprovalPolicy, now: Date
    ) -> ReconcilePlan {
        let hash = snapshot.desiredHash
        let changes = context.history.filter { $0.action != .plan }
        let ready = context.record?.status == .provisioned
        if let latest = changes.first, latest.rollbackOf != nil, context.rollbackGeneration == context.generation,
            latest.status != .rejected, latest.status != .aborted
        {
            return retryPlan(context, failed: latest, now: now)
                ?? ReconcilePlan(steps: [], conditions: conditions(context, now: now, ready: ready, current: latest))
        }
        if let latest = changes.first, latest.desiredHash == hash {
            return retryPlan(context, failed: latest, now: now)
                ?? ReconcilePlan(steps: [], conditions: conditions(context, now: now, ready: ready, current: latest))
        }
        var steps = supersededProposals(context, keeping: hash)
        if policy == .twoPhase {
            return planTwoPhase(
                context, change: snapshot, superseding: steps, now: now, ready: ready, readyReason: "Changing",
                subject: "the change")
        }
        let mode: DeploymentRequest.Mode = policy == .auto ? .direct : .proposal
        steps.append(.create(snapshot, mode))
        return ReconcilePlan(
            steps: steps,
            conditions: conditions(
                context, now: now, ready: ready, readyReason: "Changing",
                progressing: mode == .direct
                    ? (true, "DeploymentQueued", "a deployment of the new configuration is queued")
                    : (true, "AwaitingApproval", "a proposal of the new configuration awaits approval")))
    }

    /// A two-phase change (DESIGN §3): its PLAN first; once that COMPLETED, the proposal that shows it, awaiting its
    /// plan approval and then its apply approval. A plan that failed or was aborted stops the change there, and the
    /// conditions say so.
    static func planTwoPhase(
        _ context: ReconcileContext, change: DeploymentSnapshot, superseding steps: [ReconcilePlan.Step], now: Date,
        ready: Bool, readyReason: String, subject: String
    ) -> ReconcilePlan {
        let plan = planSnapshot(of: change)
        let planHash = plan.desiredHash
        guard let latestPlan = context.history.first(where: { $0.action == .plan && $0.desiredHash == planHash })
        else {
            return ReconcilePlan(
                steps: steps + [.create(plan, .direct)],
                conditions: conditions(
                    context, now: now, ready: ready, readyReason: readyReason,
                    progressing: (true, "Planning", "a plan of \(subject) is queued")))
        }
        guard latestPlan.status == .completed else {
            return ReconcilePlan(
                steps: [], conditions: conditions(context, now: now, ready: ready, current: latestPlan))
        }
        return ReconcilePlan(
            steps: steps + [.proposeAfterPlan(change, planID: latestPlan.id)],
            conditions: conditions(
                context, now: now, ready: ready, readyReason: readyReason,
                progressing: (
                    true, "AwaitingApproval",
                    "plan \(latestPlan.id) completed; a proposal of \(subject) awaits its plan approval"
                )))
    }

    /// The PLAN of a change: its snapshot with action `plan`; the plan of a decommission says so in its metadata
    /// (`plannedAction`), which its hash counts, so that the provisioner shows what will be removed.
    static func planSnapshot(of change: DeploymentSnapshot) -> DeploymentSnapshot {
        var plan = change
        plan.action = .plan
        if change.action == .decommission {
            var metadata = plan.metadata.objectValue ?? [:]
            metadata[DeploymentSnapshot.plannedActionKey] = .string(change.action.rawValue)
            plan.metadata = .object(metadata)
        }
        return plan
    }

    /// Open proposals the reconciler made for another desired state: a newer change supersedes them.
    static func supersededProposals(_ context: ReconcileContext, keeping hash: String) -> [ReconcilePlan.Step] {
        context.history.filter { $0.status == .proposed && $0.createdBy == actor && $0.desiredHash != hash }
            .map { .supersede(deploymentID: $0.id) }
    }

    /// An instance removed from the manifests: decommission when its environment prunes, else report it orphaned.
    static func planRemoved(_ context: ReconcileContext, now: Date) -> ReconcilePlan {
        guard let record = context.record else { return ReconcilePlan() }
        let changes = context.history.filter { $0.action != .plan }
        if record.status == .decommissioned || (record.status == .initialized && changes.isEmpty) {
            return ReconcilePlan(
                steps: [], conditions: conditions(context, now: now, ready: false, readyReason: "Removed"))
        }
        guard context.environment?.prune == true else {
            return ReconcilePlan(
                steps: [],
                conditions: conditions(
                    context, now: now, ready: record.status == .provisioned, readyReason: "Orphaned",
                    orphaned: (
                        true, "RemovedFromManifests",
                        "removed from the manifests; environment \(record.environment) does not prune"
                    )))
        }
        let snapshot = decommissionSnapshot(of: record, labels: context.removedLabels, actor: actor, reason: "pruned")
        // A decommission of this configuration that is open, completed or failed stands; a failed one is retried
        // only as the environment's retry policy says.
        if let latest = changes.first, latest.action == .decommission, latest.desiredHash == snapshot.desiredHash,
            latest.status != .aborted, latest.status != .rejected
        {
            return retryPlan(context, failed: latest, now: now)
                ?? ReconcilePlan(steps: [], conditions: conditions(context, now: now, ready: false, current: latest))
        }
        let policy = context.policy
        if policy == .twoPhase {
            return planTwoPhase(
                context, change: snapshot, superseding: supersededProposals(context, keeping: snapshot.desiredHash),
                now: now, ready: false, readyReason: "Decommissioning", subject: "the decommission")
        }
        let mode: DeploymentRequest.Mode = policy == .auto ? .direct : .proposal
        return ReconcilePlan(
            steps: supersededProposals(context, keeping: snapshot.desiredHash) + [.create(snapshot, mode)],
            conditions: conditions(
                context, now: now, ready: false, readyReason: "Decommissioning",
                progressing: (true, "Decommissioning", "removed from the manifests; environment prunes")))
    }

    /// The decommission of a recorded instance: its current configuration, to be removed. Its labels (the last
    /// declared ones) go into the metadata, so the review selector still sees them on later decommissions.
    static func decommissionSnapshot(
        of record: InstanceRecord, labels: [String: String] = [:], actor: String, reason: String
    ) -> DeploymentSnapshot {
        DeploymentSnapshot(
            action: .decommission, params: record.params ?? [:], connectionParams: record.connectionParams ?? [:],
            version: record.version ?? "latest",
            metadata: [
                "instance": .string(record.id), "environment": .string(record.environment),
                "bundle": .string(record.bundle), "actor": .string(actor), "reason": .string(reason),
                "labels": .object(labels.mapValues { .string($0) }),
            ])
    }

    /// The environment's automatic retry of `failed`, the deployment standing for the current desired state, when it
    /// FAILED and retries are left: a retry now, or a look again when its backoff ends. Nil otherwise.
    static func retryPlan(_ context: ReconcileContext, failed: DeploymentSummary, now: Date) -> ReconcilePlan? {
        guard failed.status == .failed, let policy = context.environment?.retry else { return nil }
        var retries = 0
        var link = failed.retryOf
        while let id = link, retries < policy.limit {
            retries += 1
            link = context.history.first { $0.id == id }?.retryOf
        }
        guard retries < policy.limit else { return nil }
        let ready = context.record?.status == .provisioned
        let due = (failed.finishedAt ?? now).addingTimeInterval(policy.delay(beforeRetry: retries + 1))
        let failure: Verdict = (true, "DeploymentFailed", failed.error ?? "the deployment failed")
        guard due <= now else {
            var plan = ReconcilePlan(
                steps: [],
                conditions: conditions(
                    context, now: now, ready: ready, readyReason: "Retrying",
                    progressing: (
                        true, "RetryScheduled",
                        "retry \(retries + 1) of \(policy.limit) of \(failed.id) at \(due.formatted(.iso8601))"
                    ), failed: failure))
            plan.requeueAfter = due.timeIntervalSince(now)
            return plan
        }
        return ReconcilePlan(
            steps: [.retry(deploymentID: failed.id)],
            conditions: conditions(
                context, now: now, ready: ready, readyReason: "Retrying",
                progressing: (true, "Retrying", "retry \(retries + 1) of \(policy.limit) of \(failed.id) is queued"),
                failed: failure))
    }

    typealias Verdict = (status: Bool, reason: String, message: String)

    /// Conditions from the deployment that stands for the current desired state.
    static func conditions(_ context: ReconcileContext, now: Date, ready: Bool, current: DeploymentSummary)
        -> [InstanceCondition]
    {
        let subject = current.action == .plan ? "plan" : current.action.rawValue
        let progressing: Verdict
        var failed: Verdict = (false, "NoFailure", "")
        switch current.status {
        case .proposed: progressing = (true, "AwaitingApproval", "\(subject) \(current.id) awaits approval")
        case .approved, .pending: progressing = (true, "DeploymentQueued", "\(subject) \(current.id) is queued")
        case .running: progressing = (true, "DeploymentRunning", "\(subject) \(current.id) is running")
        case .completed: progressing = (false, "UpToDate", "\(subject) \(current.id) completed")
        case .failed:
            progressing = (false, "DeploymentFailed", "\(subject) \(current.id) failed")
            failed = (true, "DeploymentFailed", current.error ?? "the deployment failed")
        case .rejected: progressing = (false, "ProposalRejected", "\(subject) \(current.id) was rejected")
        case .aborted: progressing = (false, "DeploymentAborted", "\(subject) \(current.id) was aborted")
        }
        return conditions(
            context, now: now, ready: ready, readyReason: ready ? "Provisioned" : "NotProvisioned",
            progressing: progressing, failed: failed)
    }

    static func conditions(
        _ context: ReconcileContext, now: Date, ready: Bool, readyReason: String,
        progressing: Verdict = (false, "Idle", ""), blocked: Verdict = (false, "NotBlocked", ""),
        failed: Verdict = (false, "NoFailure", ""), orphaned: Verdict = (false, "Managed", "")
    ) -> [InstanceCondition] {
        let readyMessage = ready ? "the instance is provisioned" : "the instance is not provisioned"
        let verdicts: [(InstanceCondition.Kind, Verdict)] = [
            (.ready, (ready, ready ? "Provisioned" : readyReason, readyMessage)), (.progressing, progressing),
            (.blocked, blocked),
            (.failed, failed), (.orphaned, orphaned), (.drifted, driftVerdict(context)),
        ]
        return verdicts.map { kind, verdict in
            InstanceCondition(
                type: kind, status: verdict.status, reason: verdict.reason, message: verdict.message,
                lastTransitionTime: now)
        }
    }
}
