import ConvergeCore
import Foundation
import Synchronization

/// The rollout that governs each environment (its newest), kept in memory so that a reconcile asks in a dictionary
/// lookup whether a rollout holds its instance back; and the signal that wakes the rollout driver.
public final class RolloutGate: Sendable {
    private let governing = Mutex<[String: Rollout]>([:])
    /// One rollout change at a time (a start, a step of the driver), so no step works from a stale copy.
    let turns = SerialExecutor()
    private let wakes: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    public init() {
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Why the rollout governing `environment` holds instance `instance` back, with the condition reason to show.
    func hold(of instance: String, in environment: String) -> (reason: String, message: String)? {
        guard let rollout = governing.withLock({ $0[environment] }), let message = rollout.hold(of: instance) else {
            return nil
        }
        return (rollout.action == .decommission ? "EnvironmentDecommissioned" : "WaitingForRollout", message)
    }

    /// Whether a RUNNING rollout governs `environment`.
    func isRunning(in environment: String) -> Bool {
        governing.withLock { $0[environment]?.status == .running }
    }

    /// The RUNNING rollouts (not reservations: they are not recorded, and nothing moves them on).
    var running: [Rollout] {
        governing.withLock { state in
            state.values.filter { $0.status == .running && $0.id != Self.reservation }.sorted {
                $0.createdAt < $1.createdAt
            }
        }
    }

    /// Records `rollout` as the one governing its environment, unless a newer one does.
    func govern(_ rollout: Rollout) {
        governing.withLock { state in
            // A reservation gives way to any rollout; a rollout to a newer one.
            if let current = state[rollout.environment], current.id != rollout.id, current.id != Self.reservation,
                current.createdAt > rollout.createdAt
            {
                return
            }
            state[rollout.environment] = rollout
        }
    }

    /// The id of a reservation's rollout, which is never recorded.
    static let reservation = "setup"

    /// Holds every instance of `environment` back (a rollout that has not reached its first wave, kept in memory
    /// only) while a workflow writes its documents and secrets, so that nothing deploys half set up. Returns the
    /// rollout that governed it, for `restore`.
    func reserve(_ environment: String, at now: Date) -> Rollout? {
        var setup = Rollout(
            id: Self.reservation, environment: environment, action: .deploy, items: [], createdBy: "", createdAt: now)
        setup.wave = -1
        return governing.withLock { state in
            defer { state[environment] = setup }
            return state[environment]
        }
    }

    /// Gives `environment` back to the rollout that governed it before `reserve`, unless a new one governs it now.
    func restore(_ previous: Rollout?, in environment: String) {
        governing.withLock { state in
            guard state[environment]?.id == Self.reservation else { return }
            state[environment] = previous
        }
    }

    /// Forgets `environment` (it was deleted).
    func forget(_ environment: String) {
        _ = governing.withLock { $0.removeValue(forKey: environment) }
    }

    /// Asks the driver to look at the running rollouts now.
    func wakeUp() {
        wake.yield()
    }

    /// The driver's wake-ups; iterated by one task, which stops when it is cancelled.
    var signals: AsyncStream<Void> { wakes }
}
