import ConvergeCore
import ConvergeManifests
import ConvergeStore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The last good load of the manifests, as the store recorded it.
public struct LoadedManifests: Sendable {
    public var state: DesiredState
    /// The store's generation of every resource.
    public var generations: [ResourceKey: Int64]
    public var commit: GitCommit?
    /// The store's desired-state version after the load.
    public var version: Int64
}

/// Reads the manifests directory at start and again on every trigger (poll interval, SIGHUP, `/v1/sync`, a git
/// push), replaces the recorded desired state with each good load, and enqueues every instance.
///
/// A load with errors keeps the last good desired state, logs every error and reports them in `problems`;
/// nothing recorded is touched.
public final class ManifestSource: Service, Sendable {
    /// What the source has to say about its loads.
    public struct Status: Sendable {
        public var current: LoadedManifests?
        /// The errors of the latest load, empty when it was good.
        public var problems: [String] = []
        public var loadedAt: Date?
    }

    let directory: URL
    let loader: ManifestLoader
    let store: any Store
    let queue: WorkQueue<String>
    let clock: any EngineClock
    let pollInterval: TimeInterval
    let avatarTemplate: String?
    let logger: Logger
    private let state = Mutex(Status())
    private let triggers: AsyncStream<Void>
    private let trigger: AsyncStream<Void>.Continuation

    public init(
        directory: URL, loader: ManifestLoader, store: any Store, queue: WorkQueue<String>, clock: any EngineClock,
        pollInterval: TimeInterval, avatarTemplate: String? = nil, logger: Logger
    ) {
        self.directory = directory
        self.loader = loader
        self.store = store
        self.queue = queue
        self.clock = clock
        self.pollInterval = pollInterval
        self.avatarTemplate = avatarTemplate
        self.logger = logger
        (triggers, trigger) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public var status: Status { state.withLock { $0 } }

    /// The last good load, nil before the first.
    public var current: LoadedManifests? { status.current }

    /// Asks for a re-read now; several requests before it happens collapse into one.
    public func requestSync() {
        trigger.yield()
    }

    /// Loads at once, then on every trigger until graceful shutdown.
    public func run() async throws {
        await load()
        await withDiscardingTaskGroup { group in
            group.addTask { [clock, pollInterval, trigger] in
                while (try? await clock.sleep(until: clock.now.addingTimeInterval(pollInterval))) != nil {
                    trigger.yield()
                }
            }
            await withGracefulShutdownHandler {
                for await _ in triggers { await load() }
            } onGracefulShutdown: { [trigger] in
                trigger.finish()
            }
            group.cancelAll()
        }
    }

    /// Reads the directory once; returns whether the load was good.
    @discardableResult
    public func load() async -> Bool {
        let now = clock.now
        let loaded: DesiredState
        do {
            loaded = try loader.load(directory: directory)
        } catch {
            for diagnostic in error.diagnostics {
                logger.error("manifest error", metadata: ["manifest.error": "\(diagnostic)"])
            }
            state.withLock {
                $0.problems = error.diagnostics.map(\.description)
                $0.loadedAt = now
            }
            return false
        }
        let (commit, warnings) = await GitCommit.read(directory: directory, now: now, avatarTemplate: avatarTemplate)
        for warning in warnings { logger.warning("git commit metadata", metadata: ["git.warning": "\(warning)"]) }
        do {
            let revision = try await store.replaceDesiredState(loaded.records, expectedVersion: nil, actor: "manifests")
            let recorded = try await store.desiredState()
            var generations: [ResourceKey: Int64] = [:]
            for stored in recorded.resources {
                generations[ResourceKey(stored.resource.kind, stored.resource.id)] = stored.generation
            }
            let previous = current
            state.withLock {
                $0.current = LoadedManifests(
                    state: loaded, generations: generations, commit: commit, version: revision.version)
                $0.problems = []
                $0.loadedAt = now
            }
            if previous?.version != revision.version || previous?.commit != commit {
                logger.info(
                    "manifests loaded",
                    metadata: [
                        "manifests.version": "\(revision.version)", "manifests.added": "\(revision.added.count)",
                        "manifests.changed": "\(revision.changed.count)",
                        "manifests.removed": "\(revision.removed.count)",
                    ])
                let recordedInstances = try await store.instances().map(\.id)
                await queue.add(Set(loaded.instances.keys).union(recordedInstances).sorted())
            }
            return true
        } catch {
            logger.error("cannot record the desired state", metadata: ["error": "\(error)"])
            state.withLock {
                $0.problems = ["cannot record the desired state: \(error)"]
                $0.loadedAt = now
            }
            return false
        }
    }
}
