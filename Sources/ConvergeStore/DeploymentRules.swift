import ConvergeCore
import Foundation

// What both engines decide and record of deployments the same way, whatever their SQL: which requests are refused
// before any read, what the event log and the audit log say, what a lease holder may write, what an ending leaves the
// instance, and how a row's columns become a deployment.

extension DeploymentRequest {
    /// Refuses a request whose mode does not fit it, before anything is read.
    func checkMode() throws {
        if mode == .proposal && snapshot.action == .plan {
            throw ConvergeError(.invalidArgument, "only provision and decommission deployments can be proposed")
        }
        if retryOf != nil && mode != .direct {
            throw ConvergeError(.invalidArgument, "a retry enters the queue directly; it cannot be proposed")
        }
        if planID != nil && mode != .proposal {
            throw ConvergeError(.invalidArgument, "only a proposal follows a plan and awaits its approval")
        }
    }

    /// The status it enters: PENDING in the queue, or PROPOSED.
    var initialStatus: Deployment.Status { mode == .direct ? .pending : .proposed }

    /// The approval step it starts at: a two-phase proposal's plan step, or none.
    var initialApprovalStep: Deployment.ApprovalStep? { planID == nil ? nil : .plan }

    /// The event that opens its deployment's log.
    var creationMessage: String {
        "created as \(initialStatus.rawValue)" + (retryOf.map { ", retrying \($0)" } ?? "")
            + (rollbackOf.map { ", rolling back to \($0)" } ?? "")
            + (planID.map { ", awaiting the plan approval of plan \($0)" } ?? "")
    }

    /// Refuses a request decided from an older view of the instance than its newest deployment, `newest` (the
    /// sequence; 0 for none).
    func checkDecided(newest: Int64) throws {
        guard let decidedAfter, decidedAfter != newest else { return }
        throw ConvergeError.decidedFromAnOlderView(instanceID)
    }

    /// Refuses a plan that is not a plan of the instance it is for.
    func checkPlan(_ plan: Deployment) throws {
        guard plan.action == .plan, plan.instanceID == instanceID else {
            throw ConvergeError(
                .failedPrecondition,
                "deployment \(plan.id) is a \(plan.action.rawValue) of \(plan.instanceID), not a plan of "
                    + instanceID)
        }
    }
}

extension ApprovalDecision {
    /// The error of a refusal (any other decision here is a bug in the caller's match).
    var refusal: ConvergeError {
        guard case .refuse(let error) = self else {
            return ConvergeError(.internal, "unexpected approval decision \(self)")
        }
        return error
    }
}

extension Deployment {
    /// The event of its move to `status` by `actor`. The event of an ending that is not a success (REJECTED, FAILED,
    /// ABORTED) names the actor and `reason`, so a deployment's log alone tells why.
    func statusEvent(to status: Status, actor: String, because reason: String?) -> (message: String, data: Value?) {
        let message = "\(self.status.rawValue) -> \(status.rawValue)"
        guard [.rejected, .failed, .aborted].contains(status) else { return (message, nil) }
        return (
            message + " by \(actor)" + (reason.map { ": \($0)" } ?? ""),
            ["actor": .string(actor), "reason": reason.map(Value.string) ?? .null]
        )
    }

    /// The audit action of its move to `status`.
    static func auditAction(movingTo status: Status) -> String { "deployment.\(status.rawValue.lowercased())" }

    /// The event of a two-phase proposal whose plan `approver` approved.
    static func planApprovedMessage(by approver: String) -> String {
        "plan approved by \(approver); awaiting the apply approval"
    }

    /// The event of its takeover by `owner`, from the holder of its expired lease.
    func takeOverMessage(by owner: String) -> String {
        "lease of \(lease?.owner ?? "nobody") expired; \(owner) resumes attempt \(attempt) under the same "
            + "idempotency key"
    }

    /// Refuses a write by another than the holder of its current lease: it must be RUNNING, with `owner` holding
    /// `epoch`. An expired lease that nobody took over still counts: expiry only opens it to a takeover.
    func checkLease(owner: String, epoch: Int64) throws {
        guard status == .running, let lease else {
            throw ConvergeError(.failedPrecondition, "deployment \(id) is \(status.rawValue), not RUNNING")
        }
        guard lease.owner == owner, lease.epoch == epoch else {
            throw ConvergeError(
                .failedPrecondition,
                "the lease of deployment \(id) was taken over: \(lease.owner) holds epoch \(lease.epoch), "
                    + "not \(owner) epoch \(epoch)",
                details: ["reason": "lease_lost", "owner": .string(lease.owner), "epoch": .int(Int(lease.epoch))])
        }
    }

    /// What its ending as `status` does to its instance's outputs: a completed provision's outputs replace them, a
    /// completed decommission clears them, anything else keeps them.
    func instanceOutputs(endingAs status: Status) -> OutputsChange {
        switch (action, status) {
        case (.provision, .completed): .replace(outputs)
        case (.decommission, .completed): .replace(nil)
        default: .keep
        }
    }

    enum OutputsChange {
        case keep
        case replace(Value?)
    }

    /// A deployment's lease as its columns record it: only a RUNNING one has one.
    static func lease(status: Status, owner: String?, epoch: Int64, expiresAt: Int64?) -> Lease? {
        guard status == .running, let owner, let expiresAt else { return nil }
        return Lease(owner: owner, epoch: epoch, expiresAt: date(expiresAt))
    }

    /// The epoch of the current or last lease; 0 before the first claim.
    var leaseEpoch: Int64 { lease?.epoch ?? 0 }

    /// What the audit log records of a deployment before and after a change.
    var auditValue: Value {
        var value: [String: Value] = [
            "id": .string(id), "instance": .string(instanceID), "action": .string(action.rawValue),
            "status": .string(status.rawValue), "attempt": .int(attempt),
        ]
        if let lease {
            value["leaseOwner"] = .string(lease.owner)
            value["leaseEpoch"] = .int(Int(lease.epoch))
        }
        if let error { value["error"] = .string(error) }
        if let approvedBy { value["approvedBy"] = .string(approvedBy) }
        if let retryOf { value["retryOf"] = .string(retryOf) }
        if let rollbackOf { value["rollbackOf"] = .string(rollbackOf) }
        if let approvalStep { value["approvalStep"] = .string(approvalStep.rawValue) }
        if let planDeploymentID { value["planDeployment"] = .string(planDeploymentID) }
        return .object(value)
    }
}

extension ConvergeError {
    static func deploymentNotFound(_ id: String) -> ConvergeError {
        ConvergeError(.notFound, "deployment \(id) not found")
    }

    /// A compare-and-set on a deployment's status found another status than the one read: a writer beside this one
    /// moved it first.
    static func deploymentChanged(_ id: String) -> ConvergeError {
        ConvergeError(.aborted, "deployment \(id) changed concurrently; retry")
    }

    /// The database did not answer (down, restarting, or the network to it lost): nothing was written, and a retry
    /// once it answers may succeed. Its details say so (`reason: unreachable`) to callers that wait for it.
    static func databaseUnreachable(_ why: String) -> ConvergeError {
        ConvergeError(.internal, "the database is unreachable: \(why)", details: ["reason": "unreachable"])
    }

    /// A reconciler's request refused because the instance got a deployment after the reconciler read it.
    public static func decidedFromAnOlderView(_ instanceID: String) -> ConvergeError {
        ConvergeError(
            .aborted, "instance \(instanceID) got a deployment after this change was decided; reconcile again")
    }
}

/// Milliseconds in `seconds`.
func millis(_ seconds: TimeInterval) -> Int64 { Int64((seconds * 1000).rounded()) }
