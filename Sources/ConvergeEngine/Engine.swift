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
    public var maxConcurrentDeployments = 4
    public var leaseDuration: TimeInterval = 30
    public var leaseCheckInterval: TimeInterval = 2
    public var pollInterval: TimeInterval = 10
    public var resyncInterval: TimeInterval = 300
    public var dispatchPollInterval: TimeInterval = 1
    public var shutdownGracePeriod: Duration = .seconds(20)
    /// The daemon's own URL as provisioners reach it, for callbacks; nil disables asynchronous provisioners.
    public var callbackBaseURL: String?
    /// A template for commit author avatars, with `{email}`.
    public var avatarTemplate: String?
    /// Who holds the leases of this daemon's deployments.
    public var owner = "converge-\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"

    public init(manifests: URL) {
        self.manifests = manifests
    }
}

/// The engine's parts, wired together: the manifest source feeds the reconciler's work queue, the reconciler
/// creates deployments and wakes the dispatcher, the dispatcher and lease monitor run them, callbacks end them.
public final class Engine: Sendable {
    public let queue: WorkQueue<String>
    public let manifests: ManifestSource
    public let reconciler: Reconciler
    public let dispatcher: Dispatcher
    public let leaseMonitor: LeaseMonitor
    public let callbacks: DeploymentCallbacks

    public init(
        configuration: EngineConfiguration, store: any Store, clock: any EngineClock,
        makeProvisioner: @escaping ProvisionerFactory, logger: Logger
    ) async throws {
        let queue = WorkQueue<String>(clock: clock)
        let manifests = ManifestSource(
            directory: configuration.manifests, loader: ManifestLoader(limits: configuration.limits), store: store,
            queue: queue, clock: clock, pollInterval: configuration.pollInterval,
            avatarTemplate: configuration.avatarTemplate, logger: logger)
        let tokens = CallbackToken(key: try await store.secret(named: "callback-token-key"))
        let runner = DeploymentRunner(
            store: store, manifests: manifests, makeProvisioner: makeProvisioner,
            callbackBaseURL: configuration.callbackBaseURL, tokens: tokens, queue: queue, logger: logger)
        let dispatcher = Dispatcher(
            runner: runner, clock: clock, owner: configuration.owner,
            maxConcurrent: configuration.maxConcurrentDeployments, leaseDuration: configuration.leaseDuration,
            pollInterval: configuration.dispatchPollInterval, shutdownGracePeriod: configuration.shutdownGracePeriod,
            logger: logger)
        self.queue = queue
        self.manifests = manifests
        self.dispatcher = dispatcher
        self.reconciler = Reconciler(
            store: store, manifests: manifests, queue: queue, clock: clock, workers: configuration.workers,
            resyncInterval: configuration.resyncInterval, logger: logger,
            onDeploymentCreated: { dispatcher.wakeUp() })
        self.leaseMonitor = LeaseMonitor(
            runner: runner, clock: clock, owner: configuration.owner, interval: configuration.leaseCheckInterval,
            probeLease: configuration.leaseDuration, logger: logger)
        self.callbacks = DeploymentCallbacks(
            store: store, tokens: tokens, leaseDuration: configuration.leaseDuration, runner: runner)
    }

    /// The long-lived parts in dependency order, for one `ServiceGroup`.
    public var services: [any Service] { [manifests, reconciler, dispatcher, leaseMonitor] }
}
