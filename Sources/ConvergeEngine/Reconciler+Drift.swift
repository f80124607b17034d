import ConvergeCore
import ConvergeStore
import Foundation
import Metrics
import Synchronization

/// What a reconcile reads and keeps up to date of drift checks: the instance's newest drift check, for its `Drifted`
/// condition, and the drifted-instances gauge.
extension Reconciler {
    /// The instance's newest drift check that still stands, or nil. Only when the newest COMPLETED plan in `recent`
    /// was created by the daemon and no provision or decommission completed after it is that one plan read (its
    /// metadata says whether it is a drift check, its result what it found); otherwise, the common case, nothing is.
    /// A two-phase change's plan, awaiting its proposal's approval, is read too, and is not a drift check.
    func driftObservation(record: InstanceRecord?, recent: [DeploymentSummary]) async throws -> DriftObservation? {
        guard let record, record.orphanedBy == nil,
            let index = recent.firstIndex(where: { $0.action == .plan && $0.status == .completed }),
            recent[index].createdBy == ReconcilePlanner.actor,
            !recent[..<index].contains(where: { $0.action != .plan && $0.status == .completed })
        else { return nil }
        let plan = try await store.deployment(recent[index].id)
        guard plan.snapshot.metadata[DriftChecker.metadataKey] == .bool(true) else { return nil }
        return DriftObservation(planID: plan.id, report: DriftReport(planResult: plan.planResult))
    }

    /// Recounts the drifted instances for the gauge when a reconcile moved an instance into or out of drift.
    func updateDriftedGauge(from old: [InstanceCondition], to new: [InstanceCondition]) async {
        func drifted(_ conditions: [InstanceCondition]) -> Bool {
            conditions.contains { $0.type == .drifted && $0.status }
        }
        guard drifted(old) != drifted(new) else { return }
        await DriftedGauge.shared.recount(store)
    }
}

/// The `converge_instances_drifted` gauge, recounted from the store's index of drifted instances whenever one enters
/// or leaves drift. Of two recounts that overlap, the one that began last is the one recorded, so the gauge never
/// goes back to an older count.
final class DriftedGauge: Sendable {
    static let shared = DriftedGauge()

    private let tickets = Mutex<(issued: UInt64, recorded: UInt64)>((0, 0))

    func recount(_ store: any DesiredStateStore) async {
        let ticket = tickets.withLock { state -> UInt64 in
            state.issued += 1
            return state.issued
        }
        guard let count = try? await store.driftedInstanceCount() else { return }
        tickets.withLock { state in
            guard ticket > state.recorded else { return }
            state.recorded = ticket
            Gauge(label: MetricFamily.instancesDrifted.name).record(count)
        }
    }
}
