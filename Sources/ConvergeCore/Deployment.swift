import Foundation

/// An immutable record of one attempt to make infrastructure match an instance's configuration (DESIGN §3).
///
/// The snapshot is frozen when the record is created; only status, timestamps, attempt, lease, approvals,
/// error, outputs and plan result change afterwards.
public struct Deployment: Equatable, Sendable, Identifiable {
    /// Where a deployment is in its life; every change goes through `transition(from:to:)`.
    public enum Status: String, Sendable, CaseIterable, Codable {
        case proposed = "PROPOSED"
        case rejected = "REJECTED"
        case approved = "APPROVED"
        case pending = "PENDING"
        case running = "RUNNING"
        case completed = "COMPLETED"
        case failed = "FAILED"
        case aborted = "ABORTED"

        /// No transition leaves a terminal status.
        public var isTerminal: Bool { [.rejected, .completed, .failed, .aborted].contains(self) }
    }

    /// What the provisioner is asked to do.
    public enum Action: String, Sendable, CaseIterable, Codable {
        case provision
        case plan
        case decommission
    }

    /// The lease of a RUNNING deployment: who holds it, under which epoch, and until when.
    ///
    /// Owner and epoch fence writes: every claim and every takeover starts a new epoch, and only the holder of the
    /// current one can renew, complete or fail the deployment, also after the lease expired as long as nobody took
    /// it over. Expiry only allows a takeover.
    public struct Lease: Equatable, Sendable {
        public var owner: String
        public var epoch: Int64
        public var expiresAt: Date

        public init(owner: String, epoch: Int64, expiresAt: Date) {
            self.owner = owner
            self.epoch = epoch
            self.expiresAt = expiresAt
        }
    }

    /// The approval a proposal awaits or received: `review` (the one approval of the review policy), or the `plan`
    /// and `apply` approvals of a two-phase proposal, in that order.
    public enum ApprovalStep: String, Sendable, CaseIterable, Codable {
        case review
        case plan
        case apply
    }

    /// One recorded approval of a proposal: which step, who, when. Approvals are append-only.
    public struct Approval: Equatable, Sendable {
        public var step: ApprovalStep
        public var by: String
        public var at: Date

        public init(step: ApprovalStep, by: String, at: Date) {
            self.step = step
            self.by = by
            self.at = at
        }
    }

    /// Where the PLAN a two-phase proposal shows stands: its status and, once it completed, its result.
    public struct PlanOutcome: Equatable, Sendable {
        public var status: Status
        public var result: Value?

        public init(status: Status, result: Value?) {
            self.status = status
            self.result = result
        }
    }

    public var id: String
    /// The creation sequence the database assigns; queue order comes from it, never from clocks.
    public var sequence: Int64
    public var instanceID: String
    public var snapshot: DeploymentSnapshot
    /// The canonical hash of the snapshot's desired state; enqueue is idempotent on it.
    public var desiredHash: String
    public var status: Status
    public var proposedBy: String?
    public var approvedBy: String?
    public var createdBy: String
    public var createdAt: Date
    public var updatedAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    public var attempt: Int
    public var lease: Lease?
    public var error: String?
    public var outputs: Value?
    public var planResult: Value?
    /// The FAILED deployment this one retries automatically with the same snapshot (an environment's `retry`).
    public var retryOf: String?
    /// The earlier deployment of the same instance whose snapshot this one re-applies (a rollback).
    public var rollbackOf: String?
    /// The step of a two-phase proposal: `plan` until its plan approval, then `apply`; kept once it leaves
    /// PROPOSED, so a rejection tells at which step it stopped. Nil for direct deployments and review proposals.
    public var approvalStep: ApprovalStep?
    /// The PLAN whose result a two-phase proposal shows; its plan approval needs it COMPLETED.
    public var planDeploymentID: String?
    /// Where that plan stands, read with the deployment.
    public var planOutcome: PlanOutcome?
    /// The approvals it received, in order.
    public var approvals: [Approval]

    public var action: Action { snapshot.action }

    /// The approval a PROPOSED deployment waits for; nil in every other status.
    public var awaitedApproval: ApprovalStep? {
        status == .proposed ? approvalStep ?? .review : nil
    }

    public init(
        id: String, sequence: Int64, instanceID: String, snapshot: DeploymentSnapshot, desiredHash: String,
        status: Status, proposedBy: String? = nil, approvedBy: String? = nil, createdBy: String, createdAt: Date,
        updatedAt: Date, startedAt: Date? = nil, finishedAt: Date? = nil, attempt: Int, lease: Lease? = nil,
        error: String? = nil, outputs: Value? = nil, planResult: Value? = nil, retryOf: String? = nil,
        rollbackOf: String? = nil, approvalStep: ApprovalStep? = nil, planDeploymentID: String? = nil,
        planOutcome: PlanOutcome? = nil, approvals: [Approval] = []
    ) {
        self.id = id
        self.sequence = sequence
        self.instanceID = instanceID
        self.snapshot = snapshot
        self.desiredHash = desiredHash
        self.status = status
        self.proposedBy = proposedBy
        self.approvedBy = approvedBy
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.attempt = attempt
        self.lease = lease
        self.error = error
        self.outputs = outputs
        self.planResult = planResult
        self.retryOf = retryOf
        self.rollbackOf = rollbackOf
        self.approvalStep = approvalStep
        self.planDeploymentID = planDeploymentID
        self.planOutcome = planOutcome
        self.approvals = approvals
    }
}

/// The frozen part of a deployment: what the provisioner is asked to apply.
public struct DeploymentSnapshot: Equatable, Sendable {
    public var action: Deployment.Action
    public var params: Value
    /// The resolved connections: slot name → the connected artifact's data.
    public var connectionParams: Value
    /// The bundle release.
    public var version: String
    /// Instance name, labels, deployment id, the git commit of the manifests, the actor.
    public var metadata: Value

    public init(action: Deployment.Action, params: Value, connectionParams: Value, version: String, metadata: Value) {
        self.action = action
        self.params = params
        self.connectionParams = connectionParams
        self.version = version
        self.metadata = metadata
    }

    /// The canonical hash of the desired state this snapshot captures: action, params, connection params and
    /// version. Metadata (commit, actor) is left out, so re-reading an unchanged repository hashes the same; only
    /// a plan's `plannedAction` (a plan of a decommission) counts, so it never stands for a plan of the provision.
    public var desiredHash: String {
        var fields: [String: Value] = [
            "action": .string(action.rawValue), "params": params, "connectionParams": connectionParams,
            "version": .string(version),
        ]
        if action == .plan, let planned = metadata[Self.plannedActionKey] { fields[Self.plannedActionKey] = planned }
        return Value.object(fields).canonicalHash
    }

    /// The metadata key of a plan that says which action it plans when that is not a provision.
    public static let plannedActionKey = "plannedAction"
}
