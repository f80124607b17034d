import ConvergeCore
import ConvergeManifests
import ConvergeStore
import Foundation
import Logging
import ServiceLifecycle

/// How the engine runs: what it reads, how much it does at once, and its timings (seconds).
public struct EngineConfiguration: Sendable {
    public var manifests: URL
    public var limits = YAMLLimits()
    public var workers = 2
    /// Reconciles per second the work queue hands out (a token bucket holding two seconds' worth).
    public var reconcileRate: Double = 1000
    public var maxConcurrentDeployments = 4
    public var leaseDuration: TimeInterval = 30
    public var pollInterval: TimeInterval = 10
    public var resyncInterval: TimeInterval = 300
    /// How often the dispatcher looks for expired leases and queued work it was not woken for.
    public var dispatchPollInterval: TimeInterval = 1
    public var shutdownGracePeriod: Duration = .seconds(20)
    /// The daemon's own URL as provisioners reach it, for callbacks; nil disables asynchronous provisioners.
    public var callbackBaseURL: String?
    /// A template for commit author avatars, with `{email}`.
    public var avatarTemplate: String?
    /// What instance secrets are sealed in (the daemon's secrets key); nil: secrets can be neither set nor sent.
    public var secretBox: SecretBox?
    /// Who holds the leases of this daemon's deployments: unique to the process, so a restarted daemon never
    /// mistakes its predecessor's leases for its own.
    public var owner =
        "converge-\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)-"
        + String(UInt32.random(in: 0...UInt32.max), radix: 16)

    /// The daemon's version, as `converge status` lists the daemons of the database.
    public var version = "dev"

    public init(manifests: URL) {
        self.manifests = manifests
    }
}

/// The engine's parts, wired together: the manifest source feeds the reconciler's work queue, the reconciler
/// creates deployments and wakes the dispatcher, the dispatcher runs them (and resumes those whose daemon was away),
/// callbacks end them.
public final class Engine: Sendable {
    /// The actor of everything the daemon does on its own (reconciles, retries, supersessions); no principal may
    /// have this name.
    public static let actor = ReconcilePlanner.actor

    public let queue: WorkQueue<String>
    public let manifests: ManifestSource
    public let reconciler: Reconciler
    public let dispatcher: Dispatcher
    public let callbacks: DeploymentCallbacks
    /// Queues the drift checks of the environments that declare `spec.driftCheck`.
    public let driftChecker: DriftChecker
    /// Instances' secrets: set, listed and deleted by the API, read fresh at dispatch.
    public let secrets: InstanceSecrets
    /// The rollout governing each environment, which holds back the instances it has not reached.
    let rollouts: RolloutGate
    /// The store the workflows (rollouts, previews, forks, promotions) read and write beside the parts above.
    let store: any Store
    let clock: any EngineClock
    let logger: Logger
    let rolloutPollInterval: TimeInterval
    let heartbeat: DaemonHeartbeat

    public init(
        configuration: EngineConfiguration, store: any Store, clock: any EngineClock,
        makeProvisioner: @escaping ProvisionerFactory, logger: Logger
    ) async throws {
        let queue = WorkQueue<String>(clock: clock, rate: configuration.reconcileRate)
        let manifests = ManifestSource(
            directory: configuration.manifests, loader: ManifestLoader(limits: configuration.limits), store: store,
            queue: queue, clock: clock, pollInterval: configuration.pollInterval,
            avatarTemplate: configuration.avatarTemplate, logger: logger)
        let tokens = CallbackToken(key: try await store.secret(named: "callback-token-key"))
        let secrets = InstanceSecrets(store: store, box: configuration.secretBox)
        let runner = DeploymentRunner(
            store: store, manifests: manifests, secrets: secrets, makeProvisioner: makeProvisioner,
            callbackBaseURL: configuration.callbackBaseURL, tokens: tokens, queue: queue, clock: clock, logger: logger)
        let dispatcher = Dispatcher(
            runner: runner, clock: clock, owner: configuration.owner,
            maxConcurrent: configuration.maxConcurrentDeployments, leaseDuration: configuration.leaseDuration,
            pollInterval: configuration.dispatchPollInterval, shutdownGracePeriod: configuration.shutdownGracePeriod,
            logger: logger)
        let rollouts = RolloutGate()
        self.rollouts = rollouts
        self.store = store
        self.clock = clock
        self.logger = logger
        self.rolloutPollInterval = configuration.dispatchPollInterval
        let now = clock.now
        self.heartbeat = DaemonHeartbeat(
            store: store,
            daemon: DaemonRecord(
                id: configuration.owner, host: ProcessInfo.processInfo.hostName, version: configuration.version,
                startedAt: now, heartbeatAt: now, expiresAt: now),
            leaseDuration: configuration.leaseDuration, clock: clock, logger: logger)
        self.queue = queue
        self.manifests = manifests
        self.secrets = secrets
        self.dispatcher = dispatcher
        self.reconciler = Reconciler(
            store: store, manifests: manifests, queue: queue, clock: clock, workers: configuration.workers,
            resyncInterval: configuration.resyncInterval, logger: logger, rollouts: rollouts,
            onDeploymentCreated: { dispatcher.wakeUp() })
        self.driftChecker = DriftChecker(
            store: store, manifests: manifests, reconciler: reconciler, clock: clock,
            pollInterval: configuration.pollInterval, logger: logger)
        self.callbacks = DeploymentCallbacks(
            store: store, tokens: tokens, leaseDuration: configuration.leaseDuration, runner: runner,
            dispatcher: dispatcher)
    }

    /// The long-lived parts in dependency order, for one `ServiceGroup`.
    public var services: [any Service] {
        [
            heartbeat, manifests, reconciler, dispatcher,
            RolloutService(engine: self, pollInterval: rolloutPollInterval), driftChecker,
        ]
    }
}
