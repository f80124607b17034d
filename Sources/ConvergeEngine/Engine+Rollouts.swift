import ConvergeCore
import ConvergeStore
import Foundation
import Logging
import Metrics
import ServiceLifecycle

extension Engine {
    /// DESIGN §6 deploy or decommission an environment: a rollout of every instance the manifests in force declare in
    /// it, in waves from their connections (a decommission in reverse), each wave started once every deployment of
    /// the one before completed; a failure stops the later waves. The environment's running rollout, if any, is
    /// replaced: its deployments that had not started are aborted. `deleteEnvironment` deletes the (API-owned)
    /// environment once a decommission completed, as a preview's destroy does.
    public func startRollout(
        of environment: String, action: Rollout.Action, actor: String, deleteEnvironment: Bool = false
    ) async throws -> (rollout: Rollout, replaced: Rollout?) {
        guard let state = manifests.current?.state else {
            throw ConvergeError(.failedPrecondition, "the daemon has not loaded the manifests yet; try again shortly")
        }
        guard state.environments[environment] != nil else {
            throw ConvergeError(.notFound, "environment \(environment) not found")
        }
        let instances = state.instances.values.filter { $0.environment == environment }.map(\.id).sorted()
        let upstream = Dictionary(
            uniqueKeysWithValues: instances.map { id in
                (id, state.instances[id]!.connections.values.map(\.instance))
            })
        let waves = Rollout.waves(of: instances, upstream: upstream, reversed: action == .decommission)
        let rollout = Rollout(
            id: "r" + DeploymentID.make(now: clock.now).dropFirst(), environment: environment, action: action,
            items: instances.map { Rollout.Item(instance: $0, wave: waves[$0] ?? 0) }.sorted {
                ($0.wave, $0.instance) < ($1.wave, $1.instance)
            }, createdBy: actor, createdAt: clock.now, deleteEnvironment: deleteEnvironment)
        let (started, replaced) = try await rollouts.turns.run {
            let (started, replaced) = try await store.startRollout(rollout)
            rollouts.govern(started)
            return (try await advance(started), replaced)
        }
        logger.info(
            "rollout started",
            metadata: [
                "rollout.id": "\(started.id)", "environment": "\(environment)", "rollout.action": "\(action.rawValue)",
                "rollout.waves": "\(started.waves)",
            ])
        if let replaced {
            Counter(
                label: MetricFamily.rolloutsEnded.name,
                dimensions: [("action", replaced.action.rawValue), ("status", replaced.status.rawValue)]
            ).increment()
            dispatcher.wakeUp()
            await queue.add(replaced.items.map(\.instance))
        }
        await queue.add(instances)
        return (started, replaced)
    }

    /// Moves a RUNNING rollout on as far as its deployments allow: starts the instances of its current wave, takes in
    /// how their deployments ended, fails it at the first failure, and starts the next wave once the current one is
    /// done. Returns the rollout as recorded.
    @discardableResult
    func advance(_ rollout: Rollout) async throws -> Rollout {
        var next = rollout
        var released: [String] = []
        while next.status == .running {
            for index in next.items.indices where next.items[index].wave == next.wave {
                if next.items[index].outcome == .waiting {
                    next.items[index] = await start(next.items[index], of: next)
                }
                if next.items[index].outcome == .deploying, let id = next.items[index].deploymentID {
                    next.items[index] = Self.observed(next.items[index], try await store.deployment(id))
                }
            }
            let (settled, wave) = next.settled()
            guard settled != next else { break }
            next = settled
            released += wave
        }
        guard next != rollout else { return rollout }
        guard let saved = try await store.updateRollout(next, from: rollout, actor: Self.actor) else {
            // Replaced meanwhile (the newer rollout governs), or advanced by another daemon (its view is newer).
            let recorded = try await store.rollout(rollout.id)
            rollouts.govern(recorded)
            return recorded
        }
        rollouts.govern(saved)
        if saved.status.isTerminal {
            Counter(
                label: MetricFamily.rolloutsEnded.name,
                dimensions: [("action", saved.action.rawValue), ("status", saved.status.rawValue)]
            ).increment()
            logger.info(
                "rollout ended",
                metadata: [
                    "rollout.id": "\(saved.id)", "environment": "\(saved.environment)",
                    "rollout.status": "\(saved.status.rawValue)", "rollout.error": "\(saved.error ?? "")",
                ])
            await queue.add(saved.items.map(\.instance))
            if saved.status == .completed && saved.deleteEnvironment {
                try await deleteEnvironment(saved.environment, actor: saved.createdBy)
                try await store.setPreviewExpiry(of: saved.environment, to: nil)
            }
        } else if !released.isEmpty {
            await queue.add(released)
        }
        return saved
    }

    /// Starts one instance of a rollout's current wave: adopts an open deployment of the same change, notes an
    /// instance already as wanted, or asks for its deployment (the environment's policy decides how it runs).
    private func start(_ item: Rollout.Item, of rollout: Rollout) async -> Rollout.Item {
        var item = item
        do {
            guard let context = try await reconciler.context(of: item.instance) else {
                item.outcome = .skipped
                item.message = "no longer known"
                return item
            }
            if let by = context.record?.orphanedBy {
                item.outcome = .skipped
                item.message = "orphaned by \(by)"
                return item
            }
            let latest = context.history.first { $0.action != .plan }
            let wanted: DeploymentSnapshot
            switch rollout.action {
            case .deploy:
                guard let desired = context.desired else {
                    item.outcome = .skipped
                    item.message = "no longer declared"
                    return item
                }
                switch ReconcilePlanner.snapshot(of: desired, context: context, actor: rollout.createdBy) {
                case .failure(let blocked):
                    item.outcome = .failed
                    item.message = blocked.message
                    return item
                case .success(let snapshot): wanted = snapshot
                }
                if latest?.desiredHash == wanted.desiredHash, latest?.status == .completed,
                    context.record?.status == .provisioned
                {
                    item.outcome = .unchanged
                    return item
                }
            case .decommission:
                guard let known = context.record, known.status != .decommissioned,
                    known.status != .initialized || latest != nil
                else {
                    item.outcome = .unchanged
                    item.message = "not deployed"
                    return item
                }
                let record = try await store.instance(item.instance)
                wanted = ReconcilePlanner.decommissionSnapshot(
                    of: record, actor: rollout.createdBy, reason: "rollout \(rollout.id)")
                if latest?.desiredHash == wanted.desiredHash, latest?.status == .completed {
                    item.outcome = .unchanged
                    return item
                }
            }
            let creation = try await reconciler.requestChange(
                of: item.instance, action: rollout.action == .deploy ? .provision : .decommission,
                actor: rollout.createdBy, reason: "rollout \(rollout.id)")
            item.deploymentID = creation.deployment.id
            item.outcome = .deploying
            return Self.observed(item, creation.deployment)
        } catch {
            item.outcome = .failed
            item.message = (error as? ConvergeError)?.message ?? "\(error)"
            return item
        }
    }

    /// `item` with the outcome its deployment's status gives.
    private static func observed(_ item: Rollout.Item, _ deployment: Deployment) -> Rollout.Item {
        var item = item
        switch deployment.status {
        case .proposed, .approved, .pending, .running: item.outcome = .deploying
        case .completed: item.outcome = .completed
        case .failed: item.outcome = .failed
        case .aborted: item.outcome = .aborted
        case .rejected: item.outcome = .rejected
        }
        if item.outcome.isFailure { item.message = deployment.error }
        return item
    }

    /// Keeps rollouts moving: loads the governing rollouts once the manifests are loaded, then advances the running
    /// ones whenever a deployment of their environment ends (the reconciler wakes it) and on every poll, and
    /// destroys the previews whose time to live ran out; until the task is cancelled (graceful shutdown).
    func driveRollouts(pollInterval: TimeInterval) async throws {
        try await manifests.firstLoad()
        for rollout in try await store.governingRollouts() { rollouts.govern(rollout) }
        await withDiscardingTaskGroup { group in
            group.addTask { [clock, rollouts] in
                while (try? await clock.sleep(until: clock.now.addingTimeInterval(pollInterval))) != nil {
                    rollouts.wakeUp()
                }
            }
            for await _ in rollouts.signals {
                // Rollouts started, advanced or replaced through another daemon of the database govern here too.
                do {
                    for rollout in try await store.governingRollouts() { rollouts.govern(rollout) }
                } catch {
                    logger.warning("cannot read the governing rollouts", metadata: ["error": "\(error)"])
                }
                for id in rollouts.running.map(\.id) {
                    do {
                        try await rollouts.turns.run {
                            // The newest copy: a start or an earlier step may have moved it meanwhile.
                            if let rollout = rollouts.running.first(where: { $0.id == id }) {
                                try await advance(rollout)
                            }
                        }
                    } catch {
                        logger.warning(
                            "cannot advance rollout", metadata: ["rollout.id": "\(id)", "error": "\(error)"])
                    }
                }
                await destroyExpiredPreviews()
            }
            group.cancelAll()
        }
    }
}

/// The engine's rollout driver as a service of the daemon's group.
struct RolloutService: Service {
    let engine: Engine
    let pollInterval: TimeInterval

    func run() async throws {
        try await cancelWhenGracefulShutdown { try await engine.driveRollouts(pollInterval: pollInterval) }
    }
}
