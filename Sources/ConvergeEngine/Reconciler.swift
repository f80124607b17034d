import ConvergeCore
import ConvergeStore
import Foundation
import Logging
import Metrics
import ServiceLifecycle

/// The level-triggered reconcile loop (DESIGN §4): workers take instance keys from the work queue, read the
/// current desired and recorded state, and carry out `ReconcilePlanner`'s plan. A thrown error retries the key
/// with backoff; a periodic resync enqueues every instance.
public final class Reconciler: Service, Sendable {
    let store: any DesiredStateStore & DeploymentStore
    let manifests: ManifestSource
    let queue: WorkQueue<String>
    let clock: any EngineClock
    let workers: Int
    let resyncInterval: TimeInterval
    let onDeploymentCreated: @Sendable () -> Void
    let logger: Logger
    /// The rollouts that hold instances back; a reconcile in an environment with a running rollout wakes its driver.
    let rollouts: RolloutGate

    public init(
        store: any DesiredStateStore & DeploymentStore, manifests: ManifestSource, queue: WorkQueue<String>,
        clock: any EngineClock, workers: Int,
        resyncInterval: TimeInterval, logger: Logger, rollouts: RolloutGate = RolloutGate(),
        onDeploymentCreated: @escaping @Sendable () -> Void
    ) {
        self.store = store
        self.manifests = manifests
        self.queue = queue
        self.clock = clock
        self.workers = workers
        self.resyncInterval = resyncInterval
        self.onDeploymentCreated = onDeploymentCreated
        self.logger = logger
        self.rollouts = rollouts
    }

    /// Runs the workers and the periodic resync; on graceful shutdown the queue stops handing out keys, workers
    /// finish the key they hold, and the resync stops.
    public func run() async throws {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for _ in 0..<max(1, workers) {
                    group.addTask { await self.work() }
                }
                group.addTask { try? await cancelWhenGracefulShutdown { await self.resync() } }
            }
        } onGracefulShutdown: {
            Task { await self.queue.shutdown() }
        }
    }

    private func work() async {
        while let key = await queue.next() {
            let metadata: Logger.Metadata = ["instance.id": "\(key)"]
            Counter(label: MetricFamily.reconciles.name).increment()
            do {
                let requeueAfter = try await reconcile(key)
                await queue.done(key, succeeded: true, requeueAfter: requeueAfter)
            } catch {
                Counter(label: MetricFamily.reconcileErrors.name).increment()
                logger.warning(
                    "reconcile failed; retrying with backoff", metadata: metadata.merging(["error": "\(error)"]) { $1 })
                await queue.done(key, succeeded: false)
            }
        }
    }

    private func resync() async {
        while (try? await clock.sleep(until: clock.now.addingTimeInterval(resyncInterval))) != nil {
            guard let loaded = manifests.current, let recorded = try? await store.instanceIDs() else { continue }
            await queue.add(Set(loaded.state.instances.keys).union(recorded).sorted())
        }
    }

    /// Reconciles one instance; returns when to look at it again, if sooner than the next change or resync.
    @discardableResult
    public func reconcile(_ id: String) async throws -> TimeInterval? {
        guard manifests.current != nil else { return 1 }
        guard let context = try await context(of: id) else { return nil }
        let record = context.record
        let plan = ReconcilePlanner.plan(context, now: clock.now)
        if let environment = context.environment?.id, rollouts.isRunning(in: environment) { rollouts.wakeUp() }
        let metadata: Logger.Metadata = ["instance.id": "\(id)"]
        // What this reconcile creates, it creates only while no deployment of the instance was created since it read
        // them: another daemon's reconciler may have decided the same change a moment before.
        let decidedAfter = context.history.first?.sequence ?? 0
        do {
            try await apply(plan.steps, of: id, decidedAfter: decidedAfter, metadata: metadata)
        } catch let error as ConvergeError where error == .decidedFromAnOlderView(id) {
            logger.debug("a deployment of the instance was created meanwhile; reconciling again", metadata: metadata)
            return 0
        }
        if let record {
            let conditions = InstanceCondition.merge(old: record.conditions, new: plan.conditions)
            if conditions != record.conditions || record.observedGeneration != context.generation {
                try await store.updateInstanceStatus(id, observedGeneration: context.generation, conditions: conditions)
                await updateDriftedGauge(from: record.conditions, to: conditions)
            }
        }
        return plan.requeueAfter
    }

    /// Carries out a reconcile's steps for instance `id`, each creation only while `decidedAfter` is still the
    /// sequence of the instance's newest deployment.
    private func apply(
        _ steps: [ReconcilePlan.Step], of id: String, decidedAfter: Int64, metadata: Logger.Metadata
    ) async throws {
        for step in steps {
            switch step {
            case .supersede(let deploymentID):
                do {
                    _ = try await store.abort(
                        deploymentID, actor: ReconcilePlanner.actor, reason: "superseded by a newer change")
                    logger.info(
                        "proposal superseded", metadata: metadata.merging(["deployment.id": "\(deploymentID)"]) { $1 })
                } catch let error as ConvergeError where error.code == .failedPrecondition {
                    // Approved, rejected or aborted meanwhile: nothing to supersede.
                }
            case .create(let snapshot, let mode):
                try await create(
                    DeploymentRequest(
                        instanceID: id, snapshot: snapshot, mode: mode, actor: ReconcilePlanner.actor,
                        decidedAfter: decidedAfter))
            case .proposeAfterPlan(let snapshot, let planID):
                try await create(
                    DeploymentRequest(
                        instanceID: id, snapshot: snapshot, mode: .proposal, actor: ReconcilePlanner.actor,
                        planID: planID, decidedAfter: decidedAfter))
            case .retry(let failedID):
                let failed = try await store.deployment(failedID)
                try await create(
                    DeploymentRequest(
                        instanceID: id, snapshot: failed.snapshot, mode: .direct, actor: ReconcilePlanner.actor,
                        retryOf: failed.id, decidedAfter: decidedAfter))
            }
        }
    }

    /// What a reconcile of `id` reads, from the manifests in force and the store; nil when neither knows the
    /// instance, or before the first load of the manifests.
    func context(of id: String) async throws -> ReconcileContext? {
        guard let loaded = manifests.current else { return nil }
        let state = loaded.state
        let desired = state.instances[id]
        let inputs = try await store.reconcileInputs(
            of: id, upstream: desired?.connections.values.map(\.instance) ?? [], recentLimit: Self.historyDepth,
            includeConfiguration: desired == nil)
        guard let environmentID = desired?.environment ?? inputs.record?.environment,
            let bundleID = desired?.bundle ?? inputs.record?.bundle
        else { return nil }
        // A rollback is rare: only then is the newest change's snapshot read, for the generation it holds at.
        var rollbackGeneration: Int64?
        if let latest = inputs.recent.first(where: { $0.action != .plan }), latest.rollbackOf != nil {
            let metadata = try await store.deployment(latest.id).snapshot.metadata
            if case .int(let generation)? = metadata["rollbackGeneration"] { rollbackGeneration = Int64(generation) }
        }
        // A removed instance's labels, for a review selector, are those of its newest deployment's snapshot.
        var removedLabels: [String: String] = [:]
        if desired == nil, state.environments[environmentID]?.reviewSelector != nil,
            let latest = inputs.recent.first(where: { $0.action != .plan })
        {
            let labels = try await store.deployment(latest.id).snapshot.metadata["labels"]?.objectValue ?? [:]
            removedLabels = labels.compactMapValues(\.stringValue)
        }
        return ReconcileContext(
            instanceID: id, desired: desired, environment: state.environments[environmentID],
            bundle: state.bundles[bundleID], resources: state.resources, record: inputs.record,
            upstream: inputs.upstream, history: inputs.recent,
            generation: loaded.generations[ResourceKey(.instance, id)] ?? 0, rollbackGeneration: rollbackGeneration,
            commit: loaded.commit?.value, removedLabels: removedLabels,
            drift: try await driftObservation(record: inputs.record, recent: inputs.recent),
            rolloutHold: rollouts.hold(of: id, in: environmentID))
    }

    /// How many of an instance's newest deployments a reconcile reads: enough for the open proposals, the plan of a
    /// two-phase change and a chain of retries.
    static let historyDepth = 20

    @discardableResult
    func create(_ request: DeploymentRequest) async throws -> DeploymentCreation {
        let creation = try await store.createDeployment(request)
        let metadata: Logger.Metadata = ["instance.id": "\(request.instanceID)"]
        if creation.created {
            logger.info(
                "deployment created",
                metadata: metadata.merging([
                    "deployment.id": "\(creation.deployment.id)",
                    "deployment.action": "\(request.snapshot.action.rawValue)",
                    "deployment.status": "\(creation.deployment.status.rawValue)",
                ]) { $1 })
            onDeploymentCreated()
        }
        return creation
    }
}
