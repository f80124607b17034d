/// Who decides on a proposal: a principal's name and the roles it holds (its own and every lower one), checked
/// against an environment's `spec.approvers`.
public struct Approver: Sendable, Equatable {
    public var name: String
    public var roles: Set<String>

    public init(name: String, roles: Set<String>) {
        self.name = name
        self.roles = roles
    }

    /// The role every decision on a proposal needs.
    public static let approverRole = "approver"
}

/// What may be done with a proposal (DESIGN §3): the single home of the approval rules. The store asks it inside
/// the transaction that writes the answer, so nothing can change between the decision and its write.
public enum ApprovalDecision: Equatable, Sendable {
    /// Where an approval leaves the proposal.
    public enum Next: Equatable, Sendable {
        /// PROPOSED → APPROVED: it enters the queue and its instance's params advance to its snapshot.
        case approved
        /// Still PROPOSED, awaiting this step's approval.
        case awaiting(Deployment.ApprovalStep)
    }

    /// What is asked: an approval (of the step given, or of whichever step the proposal awaits), or a rejection.
    public enum Request: Equatable, Sendable {
        case approve(step: Deployment.ApprovalStep?)
        case reject
    }

    /// Record the approval of `step`; the proposal moves on to `next`.
    case approve(step: Deployment.ApprovalStep, next: Next)
    /// Reject the proposal at the step it awaits: PROPOSED → REJECTED.
    case reject(step: Deployment.ApprovalStep)
    /// Refuse, with why.
    case refuse(ConvergeError)

    /// Decides `request` on `proposal` for `actor`.
    ///
    /// - `environment`, `rule`: the proposal's environment and its `spec.approvers` (nil: anyone with the approver
    ///   role).
    /// - `supersededBy`: the newest deployment of the same instance created after the proposal that is not REJECTED
    ///   or ABORTED (nor a PLAN, which never moves params), if any. It makes the proposal stale: approving it would
    ///   record params older than what the queue applies last. A stale proposal can still be rejected.
    ///
    /// Refusals, first match wins: not PROPOSED (`failed_precondition`); without the approver role or outside the
    /// environment's rule (`permission_denied`); approving one's own proposal (`permission_denied`); stale
    /// (`failed_precondition`); a named step the proposal does not await (`failed_precondition`); the approver of the
    /// plan step approving the apply step (`permission_denied`); a plan step whose plan has not COMPLETED
    /// (`failed_precondition`).
    public static func decide(
        _ request: Request, of proposal: Deployment, by actor: Approver, in environment: String, rule: ApproverRule?,
        supersededBy newer: String?
    ) -> ApprovalDecision {
        let verb = request == .reject ? "reject" : "approve"
        do {
            try transition(from: proposal.status, to: request == .reject ? .rejected : .approved)
        } catch {
            return .refuse(error)
        }
        guard actor.roles.contains(Approver.approverRole) else {
            return .refuse(
                ConvergeError(
                    .permissionDenied,
                    "\(actor.name) needs the \(Approver.approverRole) role to \(verb) deployment \(proposal.id)"))
        }
        if let rule, !rule.allows(principal: actor.name, holding: actor.roles) {
            return .refuse(
                ConvergeError(
                    .permissionDenied,
                    "environment \(environment) allows only \(rule.summary) to \(verb) its proposals; \(actor.name) is "
                        + "not among them",
                    details: ["rule": "spec.approvers", "environment": .string(environment)]))
        }
        let step = proposal.awaitedApproval ?? .review
        guard case .approve(let expected) = request else { return .reject(step: step) }
        if proposal.proposedBy == actor.name {
            return .refuse(
                ConvergeError(
                    .permissionDenied, "\(actor.name) proposed deployment \(proposal.id) and cannot approve it"))
        }
        if let newer {
            return .refuse(
                ConvergeError(
                    .failedPrecondition,
                    "deployment \(proposal.id) is superseded by deployment \(newer); propose again",
                    details: ["supersededBy": .string(newer)]))
        }
        if let expected, expected != step {
            return .refuse(
                ConvergeError(
                    .failedPrecondition,
                    "deployment \(proposal.id) awaits its \(step.rawValue) approval, not the \(expected.rawValue) one",
                    details: ["awaiting": .string(step.rawValue)]))
        }
        if let earlier = proposal.approvals.first(where: { $0.by == actor.name }) {
            return .refuse(
                ConvergeError(
                    .permissionDenied,
                    "\(actor.name) gave the \(earlier.step.rawValue) approval of deployment \(proposal.id); its "
                        + "\(step.rawValue) approval needs another approver"))
        }
        guard step == .plan else { return .approve(step: step, next: .approved) }
        let planID = proposal.planDeploymentID ?? "?"
        switch proposal.planOutcome?.status {
        case .completed?:
            return .approve(step: .plan, next: .awaiting(.apply))
        case let status? where status.isTerminal:
            return .refuse(
                ConvergeError(
                    .failedPrecondition,
                    "the plan \(planID) of deployment \(proposal.id) is \(status.rawValue); there is no plan to "
                        + "approve: reject or abort the proposal"))
        case let status:
            return .refuse(
                ConvergeError(
                    .failedPrecondition,
                    "the plan \(planID) of deployment \(proposal.id) has not completed (it is "
                        + "\(status?.rawValue ?? "missing")); approve the plan once it has"))
        }
    }
}
