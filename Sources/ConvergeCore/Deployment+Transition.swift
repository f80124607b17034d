/// The single home of the deployment status rules (DESIGN §3).
///
/// Returns normally when `from → to` is allowed, and throws `failed_precondition` otherwise. The store calls
/// it before every status change and the database enforces the same table.
public func transition(from: Deployment.Status, to: Deployment.Status) throws(ConvergeError) {
    switch (from, to) {
    case (.proposed, .approved), (.proposed, .rejected), (.proposed, .aborted),
        (.approved, .running), (.pending, .running), (.approved, .aborted), (.pending, .aborted),
        (.running, .completed), (.running, .failed), (.running, .aborted):
        return
    default:
        throw ConvergeError(
            .failedPrecondition, "deployment cannot move from \(from.rawValue) to \(to.rawValue)",
            details: ["from": .string(from.rawValue), "to": .string(to.rawValue)])
    }
}

extension Deployment.Status {
    /// Every allowed (from, to) pair, derived from `transition(from:to:)`.
    public static var allowedTransitions: [(from: Deployment.Status, to: Deployment.Status)] {
        allCases.flatMap { from in
            allCases.compactMap { to in
                (try? transition(from: from, to: to)) == nil ? nil : (from, to)
            }
        }
    }
}
