import ConvergeCore
import Foundation

/// The instance's newest drift check that still stands (no provision or decommission completed after it): the plan
/// and what its result reported.
struct DriftObservation: Equatable, Sendable {
    var planID: String
    var report: DriftReport
}

/// What the result of a drift check's PLAN says, by the provisioner contract: a plan reports changes with a non-empty
/// `changes` (an array of what differs, or an object keyed by it), or with `changed: true` or `drifted: true`.
/// Anything else (no result, `{"changes": []}`) reports none.
struct DriftReport: Equatable, Sendable {
    var drifted: Bool
    /// What differs, as the provisioner names it: the array's strings (other values as JSON), or the object's keys,
    /// sorted. Empty for a plan that reports no changes, or changes without naming them (`changed: true`).
    var changes: [String]

    init(drifted: Bool, changes: [String]) {
        self.drifted = drifted
        self.changes = changes
    }

    init(planResult: Value?) {
        switch planResult?["changes"] {
        case .array(let items)?:
            changes = items.map { $0.stringValue ?? $0.canonicalJSON }
        case .object(let members)?:
            changes = members.keys.sorted()
        default:
            changes = []
        }
        drifted = !changes.isEmpty || planResult?["changed"] == .bool(true) || planResult?["drifted"] == .bool(true)
    }

    /// The changes for a message: the first few, and how many more.
    var summary: String {
        let shown = 10
        let named = changes.prefix(shown).joined(separator: ", ")
        return changes.count > shown ? "\(named) and \(changes.count - shown) more" : named
    }
}

extension ReconcilePlanner {
    /// The `Drifted` condition: true while the newest drift check that stands reported changes; false when it reported
    /// none, when a provision or decommission completed after it, and for an instance never checked.
    static func driftVerdict(_ context: ReconcileContext) -> Verdict {
        guard let drift = context.drift else { return (false, "NoDrift", "") }
        guard drift.report.drifted else {
            return (false, "NoDrift", "drift check \(drift.planID) reported no changes")
        }
        let changes = drift.report.changes
        return (
            true, "Drifted",
            "drift check \(drift.planID) reported "
                + (changes.isEmpty
                    ? "changes" : "\(changes.count) change\(changes.count == 1 ? "" : "s"): \(drift.report.summary)")
                + " against the last applied configuration"
        )
    }
}
