import ConvergeCore
import Foundation

/// The durable record of desired state, instances and deployments (DESIGN §3).
///
/// Every operation is one transaction: it happens whole or not at all. The invariants (one RUNNING deployment
/// per instance, one open deployment per instance and desired-state hash, frozen snapshots, legal status
/// changes) are enforced by the database itself, so they hold across processes. Errors are `ConvergeError`s.
public protocol Store: DesiredStateStore, DeploymentStore, DispatchStore, RolloutStore, SecretStore, QueryStore,
    ChangeFeed
{}

/// The desired state the reconciler writes and reads, and what it records of each instance.
public protocol DesiredStateStore: Sendable {
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

    /// The recorded desired state's version alone: whether another daemon of the database wrote it.
    func desiredStateVersion() async throws -> Int64

    /// The generation of every recorded desired resource.
    func generations() async throws -> [ResourceKey: Int64]

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

    /// An instance's recorded state, with its `details` when asked (the API's view); `not_found` when it has none.
    func instance(_ id: String, details: Bool) async throws -> InstanceRecord

    /// The ids of every recorded instance, sorted.
    func instanceIDs() async throws -> [String]

    /// Records what the reconciler observed: the generation it acted on and the instance's conditions (whether its
    /// `Drifted` condition holds is kept indexed, for `instances(drifted:)` and `driftedInstanceCount`).
    func updateInstanceStatus(_ id: String, observedGeneration: Int64, conditions: [InstanceCondition]) async throws

    /// The record (with its configuration, without outputs) of instance `id` when a drift check may plan it now: it
    /// is PROVISIONED, not orphaned, and has no open deployment. Nil otherwise, or for an unknown instance.
    func driftCheckCandidate(_ id: String) async throws -> InstanceRecord?

    /// How many instances are drifted (their `Drifted` condition holds).
    func driftedInstanceCount() async throws -> Int

    /// Stops managing an instance: it is marked orphaned by `actor` (audited) and the reconciler leaves it alone;
    /// nothing is decommissioned. An instance with an open deployment is `failed_precondition`; an orphaned one is
    /// returned as it is.
    func orphanInstance(_ id: String, actor: String) async throws -> InstanceRecord

    /// Everything a reconcile of `instanceID` reads, from one snapshot of the store. Only what a decision needs is
    /// decoded: the record's params and connection params only with `includeConfiguration` (a decommission
    /// snapshot needs them), never its own outputs; the upstream records' outputs but not their configuration.
    func reconcileInputs(of instanceID: String, upstream: [String], recentLimit: Int, includeConfiguration: Bool)
        async throws -> ReconcileInputs

    /// The newest `limit` deployments of an instance, newest first, without their snapshots: what the reconciler
    /// decides on.
    func recentDeployments(of instanceID: String, limit: Int) async throws -> [DeploymentSummary]
}

/// Deployments as people and the reconciler create and decide them: the queue's entry and the approval rules.
public protocol DeploymentStore: Sendable {
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

    /// A deployment by id.
    func deployment(_ id: String) async throws -> Deployment

    /// Appends log lines, phases and other events to a deployment's append-only log.
    func appendEvents(_ events: [DeploymentEventDraft], to id: String) async throws
}

/// What a dispatcher does with the queue: claims under a lease, renews, takes over, and ends a deployment, fenced by
/// its lease epoch.
public protocol DispatchStore: Sendable {
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

    /// Records that daemon `daemon.id` is alive until `daemon.expiresAt` (its host, version and start are kept from
    /// its first announcement); several daemons may share the database.
    func heartbeat(_ daemon: DaemonRecord) async throws

    /// The daemons alive now (announced and not expired), oldest first, each with the leases it holds.
    func daemonsAlive() async throws -> [DaemonRecord]
}

/// Rollouts of environments in waves, and the expiry of previews.
public protocol RolloutStore: Sendable {
    /// Records a new RUNNING rollout of its environment. The environment's running rollout, if any, is REPLACED by
    /// it in the same transaction, and that rollout's deployments that had not started (proposed or queued) are
    /// aborted. Audited. Returns the new rollout and the replaced one.
    func startRollout(_ rollout: Rollout) async throws -> (rollout: Rollout, replaced: Rollout?)

    /// Writes a RUNNING rollout's progress or end (audited when it ends); nil when it is no longer RUNNING (a newer
    /// rollout replaced it), and then nothing is written.
    ///
    /// `base` is the rollout as the caller read it: the write happens only while the recorded rollout is still that
    /// (its wave and items), so two daemons advancing one rollout at once never write an older view over a newer one;
    /// the one that loses gets nil and reads the rollout again.
    func updateRollout(_ rollout: Rollout, from base: Rollout, actor: String) async throws -> Rollout?

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

/// Sealed secrets of instances and of the daemon; the store never sees a secret in plain text.
public protocol SecretStore: Sendable {
    /// A random 32-byte secret of the daemon, created on first use and kept across restarts.
    func secret(named name: String) async throws -> [UInt8]

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
}

/// Reads for people and watchers: listings by cursor, logs, the change feed, the audit log, health.
public protocol QueryStore: Sendable {
    /// Checks that the database answers.
    func ping() async throws

    /// Checks that the database accepts writes: throws (`cannot write: …`) while the latest write failed for want of
    /// storage (a full disk or database, an I/O error). When no write was tried for a couple of seconds it tries one
    /// first (a row of its own rewritten), so the answer is current on an idle daemon and clears once space is freed.
    func checkWritable() async throws

    /// How many deployments there are in each status.
    func deploymentCounts() async throws -> [Deployment.Status: Int]

    /// An instance's deployments, newest first, by cursor.
    func history(of instanceID: String, after cursor: String?, limit: Int) async throws -> Page<Deployment>

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
}

extension DesiredStateStore {
    /// An instance's recorded state without its details; `not_found` when it has none.
    public func instance(_ id: String) async throws -> InstanceRecord {
        try await instance(id, details: false)
    }
}

extension QueryStore {
    /// Recorded instances by id, of one environment or all, by cursor.
    public func instances(environment: String?, after cursor: String?, limit: Int) async throws
        -> Page<InstanceRecord>
    {
        try await instances(environment: environment, drifted: nil, labels: nil, after: cursor, limit: limit)
    }
}

extension DeploymentStore {
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
