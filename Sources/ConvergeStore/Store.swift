import ConvergeCore
import Foundation

/// The durable record of desired state, instances and deployments (DESIGN §3).
///
/// Every operation is one transaction: it happens whole or not at all. The invariants (one RUNNING deployment
/// per instance, one open deployment per instance and desired-state hash, frozen snapshots, legal status
/// changes) are enforced by the database itself, so they hold across processes. Errors are `ConvergeError`s.
public protocol Store: Sendable {
    /// Replaces the desired state with a load, whole. `expectedVersion` (when given) must be the current
    /// desired-state version, or the call fails with `aborted`. Creates an INITIALIZED instance record for every
    /// new instance; recorded instances are never removed here.
    func replaceDesiredState(_ resources: [DesiredResource], expectedVersion: Int64?, actor: String) async throws
        -> DesiredStateRevision
    /// Applies part of a load to the desired state: `changed` resources are written (created or updated) and
    /// `removed` ones deleted, in one transaction, only while the desired-state version is still `expectedVersion`
    /// (else `aborted`). What `replaceDesiredState` would do for a load that differs from the recorded one only there.
    func updateDesiredState(
        _ changed: [DesiredResource], removing removed: [ResourceKey], expectedVersion: Int64, actor: String
    ) async throws -> DesiredStateRevision
    /// The recorded desired state and its version.
    func desiredState() async throws -> (version: Int64, resources: [StoredResource])

    /// Checks that the database answers.
    func ping() async throws
    /// Checks that the database accepts writes: throws (`cannot write: …`) while the latest write failed for want of
    /// storage (a full disk or database, an I/O error). When no write was tried for a couple of seconds it tries one
    /// first (a row of its own rewritten), so the answer is current on an idle daemon and clears once space is freed.
    func checkWritable() async throws
    /// How many deployments there are in each status.
    func deploymentCounts() async throws -> [Deployment.Status: Int]

    /// An instance's recorded state, with its `details` when asked (the API's view); `not_found` when it has none.
    func instance(_ id: String, details: Bool) async throws -> InstanceRecord
    /// The ids of every recorded instance, sorted.
    func instanceIDs() async throws -> [String]
    /// The generation of every recorded desired resource.
    func generations() async throws -> [ResourceKey: Int64]
    /// Records what the reconciler observed: the generation it acted on and the instance's conditions (whether its
    /// `Drifted` condition holds is kept indexed, for `instances(drifted:)` and `driftedInstanceCount`).
    func updateInstanceStatus(_ id: String, observedGeneration: Int64, conditions: [InstanceCondition]) async throws
    /// The record (with its configuration, without outputs) of instance `id` when a drift check may plan it now: it
    /// is PROVISIONED, not orphaned, and has no open deployment. Nil otherwise, or for an unknown instance.
    func driftCheckCandidate(_ id: String) async throws -> InstanceRecord?
    /// How many instances are drifted (their `Drifted` condition holds).
    func driftedInstanceCount() async throws -> Int

    /// Creates a deployment directly (PENDING, instance params advance) or as a proposal (PROPOSED, instance
    /// untouched). Idempotent: when an open deployment of the instance has the same desired-state hash, that one is
    /// returned with `created == false`.
    func createDeployment(_ request: DeploymentRequest) async throws -> DeploymentCreation
    /// Approves the step a proposal awaits for `approver`, as `ApprovalDecision.decide` rules under the
    /// environment's `rule`, recording who and when; the decision and its write are one transaction. A review
    /// proposal, or a two-phase one at its apply step, moves PROPOSED → APPROVED and the instance's params advance to
    /// its snapshot; a two-phase proposal at its plan step moves on to its apply step, still PROPOSED. With `step`,
    /// the approval is for that step only, so two approvers deciding at once never give one step's approval to the
    /// next.
    func approve(_ id: String, by approver: Approver, rule: ApproverRule?, step: Deployment.ApprovalStep?)
        async throws -> Deployment
    /// Rejects a proposal for `approver`, as `ApprovalDecision.decide` rules: PROPOSED → REJECTED; nothing else
    /// changes.
    func reject(_ id: String, by approver: Approver, rule: ApproverRule?, reason: String?) async throws -> Deployment
    /// Aborts a proposed, queued or running deployment; work already done is not undone.
    func abort(_ id: String, actor: String, reason: String?) async throws -> Deployment

    /// For every instance without a RUNNING deployment, makes the head of its queue (APPROVED and PENDING together,
    /// in creation order) RUNNING with a new lease epoch held by `owner`, at most `limit` of them, oldest first.
    func claimNextDeployments(owner: String, leaseDuration: TimeInterval, limit: Int) async throws -> [Deployment]
    /// Takes over RUNNING deployments whose lease expired (their daemon was away), oldest expiry first, at most
    /// `limit`: each gets a new epoch held by `owner`, whose daemon then resumes it under the same attempt and
    /// idempotency key. The previous holder is fenced off from then on.
    ///
    /// `applying` are the deployments the caller is itself still applying: never taken over, however long ago their
    /// lease expired (the caller was paused), so a daemon never sends a second call beside its own; it renews their
    /// leases instead.
    func takeOverExpiredLeases(
        owner: String, leaseDuration: TimeInterval, limit: Int, excluding applying: Set<String>
    ) async throws -> [Deployment]
    /// Extends the lease of a RUNNING deployment held by `owner` under `epoch`; also after it expired, as long as
    /// nobody took it over (then `failed_precondition`).
    func renewLease(_ id: String, owner: String, epoch: Int64, leaseDuration: TimeInterval) async throws -> Deployment
    /// Completes a RUNNING deployment held by `owner` under `epoch`; a provision's outputs become the instance's.
    func complete(_ id: String, owner: String, epoch: Int64, outputs: Value, planResult: Value?) async throws
        -> Deployment
    /// Fails a RUNNING deployment held by `owner` under `epoch`, with an error for people.
    func fail(_ id: String, owner: String, epoch: Int64, error: String) async throws -> Deployment

    /// A random 32-byte secret of the daemon, created on first use and kept across restarts.
    func secret(named name: String) async throws -> [UInt8]

    /// A deployment by id.
    func deployment(_ id: String) async throws -> Deployment
    /// Everything a reconcile of `instanceID` reads, from one snapshot of the store. Only what a decision needs is
    /// decoded: the record's params and connection params only with `includeConfiguration` (a decommission
    /// snapshot needs them), never its own outputs; the upstream records' outputs but not their configuration.
    func reconcileInputs(of instanceID: String, upstream: [String], recentLimit: Int, includeConfiguration: Bool)
        async throws -> ReconcileInputs
    /// An instance's deployments, newest first, by cursor.
    func history(of instanceID: String, after cursor: String?, limit: Int) async throws -> Page<Deployment>
    /// The newest `limit` deployments of an instance, newest first, without their snapshots: what the reconciler
    /// decides on.
    func recentDeployments(of instanceID: String, limit: Int) async throws -> [DeploymentSummary]
    /// Appends log lines, phases and other events to a deployment's append-only log.
    func appendEvents(_ events: [DeploymentEventDraft], to id: String) async throws
    /// A deployment's events in order, by cursor.
    func events(of id: String, after cursor: String?, limit: Int) async throws -> Page<DeploymentEvent>
    /// Every deployment that matches `filter`, newest first, by cursor; read from an index chosen by the filter.
    func listDeployments(_ filter: DeploymentFilter, after cursor: String?, limit: Int) async throws
        -> Page<Deployment>
    /// The deployment changes (creations and status changes) after sequence `after`, oldest first, at most `limit`.
    ///
    /// The feed is written by the database in the transaction of each change, so no code path skips it, and in
    /// commit order: a watcher that has seen sequence n finds every later change by asking for those after n.
    func deploymentChanges(after sequence: Int64, limit: Int) async throws -> [DeploymentChange]
    /// The sequence of the newest deployment change; 0 when there is none. Where a watcher that has just listed
    /// starts from.
    func latestDeploymentChange() async throws -> Int64
    /// The audit log entries that match `filter`, newest first (like deployments), by cursor.
    func auditLog(_ filter: AuditFilter, after cursor: String?, limit: Int) async throws -> Page<AuditEntry>

    /// Recorded instances by id, of one environment or all, by cursor, with their details; with `drifted`, only
    /// those whose `Drifted` condition holds (true) or does not (false); with `labels`, only those whose declared
    /// labels it selects (filtered in the query, so a page is short only at the end).
    func instances(
        environment: String?, drifted: Bool?, labels: LabelSelector?, after cursor: String?, limit: Int
    ) async throws -> Page<InstanceRecord>
    /// Desired resources of one kind by id, by cursor; with `labels`, only those whose labels it selects.
    func resources(of kind: ResourceKind, labels: LabelSelector?, after cursor: String?, limit: Int) async throws
        -> Page<StoredResource>
    /// One desired resource; `not_found` when there is none.
    func resource(_ key: ResourceKey) async throws -> StoredResource

    /// Creates or replaces secret `name` of an instance with `sealed`, bytes the store keeps opaque (they are
    /// encrypted before they reach it, and never decrypted by it); audited with the name only. `not_found` for an
    /// unknown instance.
    func setSecret(instanceID: String, name: String, sealed: [UInt8], actor: String) async throws
    /// The names of an instance's secrets, sorted; `not_found` for an unknown instance.
    func secretNames(of instanceID: String) async throws -> [String]
    /// The sorted secret names of each of `instanceIDs` that has any, in one read (a page of instances).
    func secretNames(ofInstances instanceIDs: [String]) async throws -> [String: [String]]
    /// Deletes secret `name` of an instance; audited with the name only. `not_found` when there is none.
    func deleteSecret(instanceID: String, name: String, actor: String) async throws
    /// An instance's sealed secrets by name, read at dispatch; empty for an instance without any.
    func sealedSecrets(of instanceID: String) async throws -> [String: [UInt8]]

    /// Stops managing an instance: it is marked orphaned by `actor` (audited) and the reconciler leaves it alone;
    /// nothing is decommissioned. An instance with an open deployment is `failed_precondition`; an orphaned one is
    /// returned as it is.
    func orphanInstance(_ id: String, actor: String) async throws -> InstanceRecord

    /// The documents of every resource applied through the API.
    func apiDocuments() async throws -> [APIResourceDocument]
    /// Creates or replaces API-applied resources' documents in one transaction; a document with an expected version
    /// is written only while the recorded resource has that resource version (else `aborted`, and nothing is
    /// written). Returns the keys that were created. Audited.
    func putAPIDocuments(_ documents: [APIResourceDocument], expectedVersions: [ResourceKey: Int64], actor: String)
        async throws -> Set<ResourceKey>
    /// Deletes API-applied resources' documents in one transaction (`not_found` for one there is none of, and
    /// nothing is deleted), each with the same version check as `putAPIDocuments`. Audited.
    func deleteAPIDocuments(_ keys: [ResourceKey], expectedVersions: [ResourceKey: Int64], actor: String) async throws

    /// Records a new RUNNING rollout of its environment. The environment's running rollout, if any, is REPLACED by
    /// it in the same transaction, and that rollout's deployments that had not started (proposed or queued) are
    /// aborted. Audited. Returns the new rollout and the replaced one.
    func startRollout(_ rollout: Rollout) async throws -> (rollout: Rollout, replaced: Rollout?)
    /// Writes a RUNNING rollout's progress or end (audited when it ends); nil when it is no longer RUNNING (a newer
    /// rollout replaced it), and then nothing is written.
    func updateRollout(_ rollout: Rollout, actor: String) async throws -> Rollout?
    /// A rollout by id; `not_found` when there is none.
    func rollout(_ id: String) async throws -> Rollout
    /// Rollouts, newest first, of one environment or of all.
    func rollouts(environment: String?, limit: Int) async throws -> [Rollout]
    /// The newest rollout of every environment that had one: the one that governs it.
    func governingRollouts() async throws -> [Rollout]
    /// Sets (or with nil removes) when preview environment `environment` expires.
    func setPreviewExpiry(of environment: String, to expiry: Date?) async throws
    /// The previews expired by `deadline`, soonest first; with nil, the one that expires soonest.
    func previewExpiries(dueBy deadline: Date?) async throws -> [(environment: String, expiresAt: Date)]
}

extension Store {
    /// An instance's recorded state without its details; `not_found` when it has none.
    public func instance(_ id: String) async throws -> InstanceRecord {
        try await instance(id, details: false)
    }

    /// Recorded instances by id, of one environment or all, by cursor.
    public func instances(environment: String?, after cursor: String?, limit: Int) async throws
        -> Page<InstanceRecord>
    {
        try await instances(environment: environment, drifted: nil, labels: nil, after: cursor, limit: limit)
    }

    /// Approves whichever step deployment `id` awaits, for a principal with the approver role, in an environment
    /// without approver rules.
    public func approve(_ id: String, approver: String, step: Deployment.ApprovalStep? = nil) async throws
        -> Deployment
    {
        try await approve(id, by: Approver(name: approver, roles: [Approver.approverRole]), rule: nil, step: step)
    }

    /// Rejects deployment `id`, for a principal with the approver role, in an environment without approver rules.
    public func reject(_ id: String, actor: String, reason: String?) async throws -> Deployment {
        try await reject(id, by: Approver(name: actor, roles: [Approver.approverRole]), rule: nil, reason: reason)
    }
}

/// A resource applied through the API, as the store keeps it: its manifest document as JSON.
public struct APIResourceDocument: Equatable, Sendable {
    public var key: ResourceKey
    public var document: String

    public init(key: ResourceKey, document: String) {
        self.key = key
        self.document = document
    }
}

/// The outcome of replacing the desired state.
public struct DesiredStateRevision: Equatable, Sendable {
    public var version: Int64
    public var added: [ResourceKey]
    public var changed: [ResourceKey]
    public var removed: [ResourceKey]
}

/// A desired resource as recorded, with its generation (bumped when its spec changes) and resource version
/// (the store-wide counter value of its last write).
public struct StoredResource: Equatable, Sendable {
    public var resource: DesiredResource
    public var generation: Int64
    public var resourceVersion: Int64
    /// When it was first recorded.
    public var createdAt: Date
}

/// An instance's recorded state: its current configuration and how its last deployment ended.
public struct InstanceRecord: Equatable, Sendable {
    public var id: String
    public var environment: String
    public var bundle: String
    public var status: InstanceStatus
    /// The params of the last deployment that advanced them; nil before the first.
    public var params: Value?
    public var connectionParams: Value?
    public var version: String?
    public var outputs: Value?
    public var observedGeneration: Int64
    public var conditions: [InstanceCondition]
    public var updatedAt: Date
    /// Who stopped managing the instance (`converge instance orphan`); nil while it is managed.
    public var orphanedBy: String? = nil
    /// What the API shows besides; read by `instance(_:)` and `instances(…)` only, nil in the engine's reads.
    public var details: Details? = nil

    /// When an instance was first recorded, its declared labels, its bundle's provisioner and its newest deployment.
    public struct Details: Equatable, Sendable {
        public var createdAt: Date
        /// Empty once it is no longer declared.
        public var labels: [String: String]
        public var provisioner: String?
        public var lastDeployment: String?
    }
}

/// A request to create a deployment of an instance.
public struct DeploymentRequest: Sendable {
    /// Whether the deployment enters the queue at once or waits for approval.
    public enum Mode: String, Sendable {
        case direct
        case proposal
    }

    public var instanceID: String
    public var snapshot: DeploymentSnapshot
    public var mode: Mode
    public var actor: String
    /// The FAILED deployment this one retries (an environment's automatic retry).
    public var retryOf: String?
    /// The earlier deployment of the same instance whose snapshot this one re-applies (a rollback); the store refuses
    /// one of another instance.
    public var rollbackOf: String?
    /// The PLAN of the same instance whose result a two-phase proposal shows: with it, the proposal needs a plan
    /// approval and then an apply approval. Only for a proposal.
    public var planID: String?

    public init(
        instanceID: String, snapshot: DeploymentSnapshot, mode: Mode, actor: String, retryOf: String? = nil,
        rollbackOf: String? = nil, planID: String? = nil
    ) {
        self.instanceID = instanceID
        self.snapshot = snapshot
        self.mode = mode
        self.actor = actor
        self.retryOf = retryOf
        self.rollbackOf = rollbackOf
        self.planID = planID
    }
}

/// What a reconcile reads of the store: the instance's record, those of its connection targets, and its newest
/// deployments.
public struct ReconcileInputs: Sendable {
    /// Nil before the store has seen the instance.
    public var record: InstanceRecord?
    /// The recorded upstream instances, by id; one not recorded yet is absent.
    public var upstream: [String: InstanceRecord]
    /// Newest first.
    public var recent: [DeploymentSummary]
}

/// What the reconciler reads of a deployment: no snapshot, nothing to decode.
public struct DeploymentSummary: Equatable, Sendable {
    public var id: String
    public var sequence: Int64
    public var action: Deployment.Action
    public var status: Deployment.Status
    public var desiredHash: String
    public var createdBy: String
    public var error: String?
    public var finishedAt: Date?
    public var retryOf: String?
    /// The deployment this one rolls back to (a person's `rollback`).
    public var rollbackOf: String?

    public init(
        id: String, sequence: Int64, action: Deployment.Action, status: Deployment.Status, desiredHash: String,
        createdBy: String, error: String? = nil, finishedAt: Date? = nil, retryOf: String? = nil,
        rollbackOf: String? = nil
    ) {
        self.id = id
        self.sequence = sequence
        self.action = action
        self.status = status
        self.desiredHash = desiredHash
        self.createdBy = createdBy
        self.error = error
        self.finishedAt = finishedAt
        self.retryOf = retryOf
        self.rollbackOf = rollbackOf
    }
}

/// A created deployment, or the open one with the same desired-state hash that made the request a no-op.
public struct DeploymentCreation: Equatable, Sendable {
    public var deployment: Deployment
    public var created: Bool

    public init(deployment: Deployment, created: Bool) {
        self.deployment = deployment
        self.created = created
    }
}

/// One page of a listing and the cursor of the next, nil at the end.
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var nextCursor: String?
}

/// An event of a deployment's append-only log.
public struct DeploymentEvent: Equatable, Sendable {
    public var sequence: Int64
    public var deploymentID: String
    public var at: Date
    public var kind: DeploymentEventDraft.Kind
    public var message: String
    public var data: Value?
}

/// Which deployments a listing returns: those that match every field given; a nil field matches all.
public struct DeploymentFilter: Equatable, Sendable {
    public var instanceID: String?
    /// The environment of the deployment's instance.
    public var environment: String?
    /// Any of these statuses; when given, not empty.
    public var statuses: Set<Deployment.Status>?
    public var action: Deployment.Action?
    /// Who created the deployment.
    public var actor: String?

    public init(
        instanceID: String? = nil, environment: String? = nil, statuses: Set<Deployment.Status>? = nil,
        action: Deployment.Action? = nil, actor: String? = nil
    ) {
        self.instanceID = instanceID
        self.environment = environment
        self.statuses = statuses
        self.action = action
        self.actor = actor
    }
}

/// A deployment's creation or status change, as the change feed records it.
public struct DeploymentChange: Equatable, Sendable {
    /// The position in the feed; grows with every change, in commit order.
    public var sequence: Int64
    public var deploymentID: String
    public var instanceID: String
    /// The status the deployment was created with or moved to.
    public var status: Deployment.Status
    public var at: Date

    public init(sequence: Int64, deploymentID: String, instanceID: String, status: Deployment.Status, at: Date) {
        self.sequence = sequence
        self.deploymentID = deploymentID
        self.instanceID = instanceID
        self.status = status
        self.at = at
    }
}

/// Which audit log entries a listing returns: those that match every field given; a nil field matches all.
public struct AuditFilter: Equatable, Sendable {
    public var actor: String?
    /// What was done, such as `deployment.approved`.
    public var action: String?
    /// The kind of what it was done to, such as `Deployment`.
    public var targetKind: String?
    public var targetID: String?

    public init(actor: String? = nil, action: String? = nil, targetKind: String? = nil, targetID: String? = nil) {
        self.actor = actor
        self.action = action
        self.targetKind = targetKind
        self.targetID = targetID
    }
}

/// One mutation: who, what, when, before and after.
public struct AuditEntry: Equatable, Sendable {
    public var sequence: Int64
    public var at: Date
    public var actor: String
    public var action: String
    public var targetKind: String
    public var targetID: String
    public var before: Value?
    public var after: Value?
}
