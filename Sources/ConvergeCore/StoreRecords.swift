import Foundation

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

    public init(version: Int64, added: [ResourceKey], changed: [ResourceKey], removed: [ResourceKey]) {
        self.version = version
        self.added = added
        self.changed = changed
        self.removed = removed
    }
}

/// A desired resource as recorded, with its generation (bumped when its spec changes) and resource version
/// (the store-wide counter value of its last write).
public struct StoredResource: Equatable, Sendable {
    public var resource: DesiredResource
    public var generation: Int64
    public var resourceVersion: Int64
    /// When it was first recorded.
    public var createdAt: Date

    public init(resource: DesiredResource, generation: Int64, resourceVersion: Int64, createdAt: Date) {
        self.resource = resource
        self.generation = generation
        self.resourceVersion = resourceVersion
        self.createdAt = createdAt
    }
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
    public var orphanedBy: String?
    /// What the API shows besides; read by `instance(_:details:)` and `instances(…)` only, nil in the engine's reads.
    public var details: Details? = nil

    /// When an instance was first recorded, its declared labels, its bundle's provisioner and its newest deployment.
    public struct Details: Equatable, Sendable {
        public var createdAt: Date
        /// Empty once it is no longer declared.
        public var labels: [String: String]
        public var provisioner: String?
        public var lastDeployment: String?

        public init(createdAt: Date, labels: [String: String], provisioner: String?, lastDeployment: String?) {
            self.createdAt = createdAt
            self.labels = labels
            self.provisioner = provisioner
            self.lastDeployment = lastDeployment
        }
    }

    public init(
        id: String, environment: String, bundle: String, status: InstanceStatus, params: Value?,
        connectionParams: Value?, version: String?, outputs: Value?, observedGeneration: Int64,
        conditions: [InstanceCondition], updatedAt: Date, orphanedBy: String? = nil
    ) {
        self.id = id
        self.environment = environment
        self.bundle = bundle
        self.status = status
        self.params = params
        self.connectionParams = connectionParams
        self.version = version
        self.outputs = outputs
        self.observedGeneration = observedGeneration
        self.conditions = conditions
        self.updatedAt = updatedAt
        self.orphanedBy = orphanedBy
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
    /// The sequence of the instance's newest deployment the request was decided from (0 for none), for a
    /// reconciler's request: the store creates the deployment only while that is still the newest, and refuses it
    /// (`aborted`) when a deployment was created meanwhile — by a reconciler of another daemon of the database, whose
    /// change this request would otherwise apply a second time. Nil creates it whatever was created meanwhile.
    public var decidedAfter: Int64?

    public init(
        instanceID: String, snapshot: DeploymentSnapshot, mode: Mode, actor: String, retryOf: String? = nil,
        rollbackOf: String? = nil, planID: String? = nil, decidedAfter: Int64? = nil
    ) {
        self.decidedAfter = decidedAfter
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

    public init(record: InstanceRecord?, upstream: [String: InstanceRecord], recent: [DeploymentSummary]) {
        self.record = record
        self.upstream = upstream
        self.recent = recent
    }
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

    public init(items: [Item], nextCursor: String?) {
        self.items = items
        self.nextCursor = nextCursor
    }
}

/// An event of a deployment's append-only log.
public struct DeploymentEvent: Equatable, Sendable {
    public var sequence: Int64
    public var deploymentID: String
    public var at: Date
    public var kind: DeploymentEventDraft.Kind
    public var message: String
    public var data: Value?

    public init(
        sequence: Int64, deploymentID: String, at: Date, kind: DeploymentEventDraft.Kind, message: String, data: Value?
    ) {
        self.sequence = sequence
        self.deploymentID = deploymentID
        self.at = at
        self.kind = kind
        self.message = message
        self.data = data
    }
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

    public init(
        sequence: Int64, at: Date, actor: String, action: String, targetKind: String, targetID: String, before: Value?,
        after: Value?
    ) {
        self.sequence = sequence
        self.at = at
        self.actor = actor
        self.action = action
        self.targetKind = targetKind
        self.targetID = targetID
        self.before = before
        self.after = after
    }
}

/// A daemon of the store's database, as it last announced itself: several daemons may share a PostgreSQL database.
public struct DaemonRecord: Equatable, Sendable {
    /// The lease owner its deployments are held by.
    public var id: String
    public var host: String
    public var version: String
    public var startedAt: Date
    /// When it last announced itself; it counts as alive until `expiresAt`.
    public var heartbeatAt: Date
    public var expiresAt: Date
    /// How many RUNNING deployments it holds an unexpired lease of.
    public var leasesHeld: Int

    public init(
        id: String, host: String, version: String, startedAt: Date, heartbeatAt: Date, expiresAt: Date,
        leasesHeld: Int = 0
    ) {
        self.id = id
        self.host = host
        self.version = version
        self.startedAt = startedAt
        self.heartbeatAt = heartbeatAt
        self.expiresAt = expiresAt
        self.leasesHeld = leasesHeld
    }
}
