import ConvergeCore
import ConvergeManifests
import ConvergeStore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The last good load of the manifests, as the store recorded it, with the indexes the engine looks things up in.
public struct LoadedManifests: Sendable {
    public var state: DesiredState
    /// The store's generation of every resource.
    public var generations: [ResourceKey: Int64]
    public var commit: GitCommit?
    /// The store's desired-state version after the load.
    public var version: Int64
    /// Instance → the instances whose connections are wired to it, which must be reconciled when its outputs change.
    public var downstream: [String: [String]]
    /// Environment → its instances, and bundle → its instances.
    var instancesByEnvironment: [String: [String]]
    var instancesByBundle: [String: [String]]

    init(state: DesiredState, generations: [ResourceKey: Int64], commit: GitCommit?, version: Int64) {
        self.state = state
        self.generations = generations
        self.commit = commit
        self.version = version
        var downstream: [String: [String]] = [:]
        var byEnvironment: [String: [String]] = [:]
        var byBundle: [String: [String]] = [:]
        for instance in state.instances.values {
            for target in Set(instance.connections.values.map(\.instance)) {
                downstream[target, default: []].append(instance.id)
            }
            byEnvironment[instance.environment, default: []].append(instance.id)
            byBundle[instance.bundle, default: []].append(instance.id)
        }
        self.downstream = downstream.mapValues { $0.sorted() }
        self.instancesByEnvironment = byEnvironment
        self.instancesByBundle = byBundle
    }

    /// The instances whose desired snapshot a change of `key` can change: an instance and its downstream, every
    /// instance of an environment or a bundle, every instance of the environments that default to a resource.
    func affected(by key: ResourceKey) -> [String] {
        switch key.kind {
        case .instance: [key.id] + (downstream[key.id] ?? [])
        case .environment: instancesByEnvironment[key.id] ?? []
        case .bundle: instancesByBundle[key.id] ?? []
        case .resource:
            state.environments.values.filter { $0.defaults.values.contains(key.id) }
                .flatMap { instancesByEnvironment[$0.id] ?? [] }
        case .project, .provisioner, .preview: []
        }
    }
}

/// Reads the manifests directory at start and again on every trigger (poll interval, SIGHUP, `/v1/sync`, a git
/// push), replaces the recorded desired state with each good load, and enqueues the instances a change touches:
/// every instance after the first load, then only those whose desired snapshot the change can move.
///
/// A load with errors is refused: the last good desired state stays in force, nothing recorded is touched, and its
/// errors are reported in `problems` and logged once per distinct set of errors (a poll that finds the same errors
/// again logs nothing; a different set, or a good load after a refused one, logs one line).
public final class ManifestSource: Service, Sendable {
    /// What the source has to say about its loads.
    public struct Status: Sendable {
        public var current: LoadedManifests?
        /// The errors of the latest load, one per entry (`file:line:col: field: message`), empty when it was good.
        public var problems: [String] = []
        /// When the manifests were last read, good or not.
        public var checkedAt: Date?
        /// When a load was last good (the load in force, confirmed).
        public var goodAt: Date?
        /// Since when the latest loads are refused with `problems`; nil when the latest load was good.
        public var refusedAt: Date?
    }

    let directory: URL
    let loader: ManifestLoader
    let store: any DesiredStateStore
    let queue: WorkQueue<String>
    let clock: any EngineClock
    let pollInterval: TimeInterval
    let avatarTemplate: String?
    let logger: Logger
    private let state = Mutex(Status())
    /// The documents of the API-applied resources, by key; nil until first read from the store.
    private let applied = Mutex<[ResourceKey: String]?>(nil)
    /// Loads, applies and deletes run one at a time, so that each is checked against what the one before recorded.
    private let serial = SerialExecutor()
    /// Tasks waiting for the first good load.
    private let loadWaiters = Mutex<(loaded: Bool, waiters: [UUID: CheckedContinuation<Void, any Error>])>((false, [:]))
    private let triggers: AsyncStream<Void>
    private let trigger: AsyncStream<Void>.Continuation

    public init(
        directory: URL, loader: ManifestLoader, store: any DesiredStateStore, queue: WorkQueue<String>,
        clock: any EngineClock,
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

    /// Records the part of a load that differs from the previous one; should the recorded desired state have moved
    /// meanwhile, replaces it whole.
    private func recordChanges(
        _ delta: (changed: [DesiredResource], removed: [ResourceKey]), of loaded: DesiredState,
        after previous: LoadedManifests
    ) async throws -> DesiredStateRevision {
        do {
            return try await store.updateDesiredState(
                delta.changed, removing: delta.removed, expectedVersion: previous.version, actor: "manifests")
        } catch let error as ConvergeError where error.code == .aborted {
            return try await store.replaceDesiredState(loaded.records, expectedVersion: nil, actor: "manifests")
        }
    }

    /// Returns once a load was good (at once if one was); throws `CancellationError` if the task is cancelled first.
    public func firstLoad() async throws {
        let id = UUID()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow = loadWaiters.withLock { waiting -> Bool in
                    if waiting.loaded || Task.isCancelled { return true }
                    waiting.waiters[id] = continuation
                    return false
                }
                if resumeNow {
                    if Task.isCancelled {
                        continuation.resume(throwing: CancellationError())
                    } else {
                        continuation.resume()
                    }
                }
            }
        } onCancel: {
            loadWaiters.withLock { $0.waiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
        }
    }

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

    /// Reads the directory once, with the API-applied resources; returns whether the load was good.
    @discardableResult
    public func load() async -> Bool {
        await serial.run { await self.loadInTurn() }
    }

    private func loadInTurn() async -> Bool {
        let now = clock.now
        defer { state.withLock { $0.checkedAt = now } }
        let result: ManifestLoader.Result
        do {
            try await forgetAPIDocumentsIfMoved()
            result = try loader.reload(directory: directory, apiDocuments: try await appliedDocuments())
        } catch let error as ManifestErrors {
            refuse(error.diagnostics.map(\.description), now: now)
            return false
        } catch {
            refuse(["cannot read the API-applied resources: \(error)"], now: now)
            return false
        }
        return await record(result, now: now)
    }

    /// Reports a refused load: its errors become `problems`, logged in one line unless the latest load was refused
    /// with the same errors.
    private func refuse(_ problems: [String], now: Date) {
        let isNew = state.withLock { status in
            guard status.problems != problems else { return false }
            status.problems = problems
            status.refusedAt = now
            return true
        }
        guard isNew else { return }
        logger.error(
            "manifest load refused; the last good load stays in force",
            metadata: ["manifest.errors": .array(problems.map { .string($0) })])
    }

    /// Reports a good load, with `current` in force; a refused load before it is cleared, in one log line.
    private func accept(_ current: LoadedManifests? = nil, now: Date) {
        let recovered = state.withLock { status in
            let recovered = status.refusedAt != nil
            if let current { status.current = current }
            status.problems = []
            status.refusedAt = nil
            status.goodAt = now
            return recovered
        }
        if recovered { logger.info("manifest load accepted again; the refused load is cleared") }
    }

    /// The document of a resource applied through the API; nil for one the API does not own.
    public func appliedDocument(_ key: ResourceKey) async throws -> Value? {
        _ = try await appliedDocuments()
        return try applied.withLock { $0?[key] }.map { try Value(json: $0) }
    }

    /// Forgets the API-applied documents read before, when the recorded desired state moved past the last good load:
    /// another daemon of the database wrote it (an API apply or delete through it), and what this daemon records next
    /// must hold that daemon's documents, never undo them.
    private func forgetAPIDocumentsIfMoved() async throws {
        guard let known = current?.version, try await store.desiredStateVersion() != known else { return }
        applied.withLock { $0 = nil }
    }

    /// The API-applied documents, read from the store once and then kept up to date by `apply` and `delete` (and read
    /// again when another daemon moved the desired state).
    private func appliedDocuments() async throws -> [APIDocument] {
        if let documents = applied.withLock({ $0 }) { return Self.documents(documents) }
        let read = try await store.apiDocuments()
        let documents = Dictionary(uniqueKeysWithValues: read.map { ($0.key, $0.document) })
        applied.withLock { $0 = documents }
        return Self.documents(documents)
    }

    private static func documents(_ documents: [ResourceKey: String]) -> [APIDocument] {
        documents.map { APIDocument(key: $0.key, json: $0.value) }
    }

    /// Applies resources through the API (kubectl apply: create, or replace the whole document), all or none: they
    /// are checked with the manifests in force exactly like files, recorded in one transaction, and in force when
    /// this returns. Returns the keys created and each resource's spec as the store records it. A resource the
    /// manifests declare is `failed_precondition` naming its file, a stale expected version is `aborted`, and a
    /// document with errors is `invalid_argument` with every error located at `api:<Kind>/<id>`. Nothing changes
    /// unless everything is right; with `dryRun` nothing changes at all, and the specs are what applying would
    /// record.
    public func apply(
        _ documents: [ResourceKey: Value], expectedVersions: [ResourceKey: Int64] = [:], actor: String,
        dryRun: Bool = false
    ) async throws -> (created: Set<ResourceKey>, specs: [ResourceKey: Value]) {
        try await serial.run {
            try await self.forgetAPIDocumentsIfMoved()
            var applied = try await self.ownedByAPI(Array(documents.keys))
            let new = Set(documents.keys.filter { applied[$0] == nil })
            // A document applied again as it is writes nothing (and audits nothing), unless it carries a version
            // to check.
            let writes = documents.filter {
                applied[$0.key] != $0.value.canonicalJSON || expectedVersions[$0.key] != nil
            }
            for (key, document) in documents { applied[key] = document.canonicalJSON }
            let result = try self.check(applied, remembering: !dryRun)
            let specs = Dictionary(
                uniqueKeysWithValues: documents.keys.map { ($0, result.state.record(of: $0)?.spec ?? .null) })
            if dryRun { return (new, specs) }
            guard !writes.isEmpty else { return ([], specs) }
            let created = try await self.store.putAPIDocuments(
                writes.sorted { $0.key < $1.key }.map {
                    APIResourceDocument(key: $0.key, document: $0.value.canonicalJSON)
                }, expectedVersions: expectedVersions, actor: actor)
            self.applied.withLock { $0 = applied }
            _ = await self.record(result, now: self.clock.now)
            return (created, specs)
        }
    }

    /// Deletes resources applied through the API, all or none, checked like `apply` (nothing may still refer to
    /// them).
    public func delete(_ keys: [ResourceKey], expectedVersions: [ResourceKey: Int64] = [:], actor: String)
        async throws
    {
        try await serial.run {
            try await self.forgetAPIDocumentsIfMoved()
            var documents = try await self.ownedByAPI(keys)
            for key in keys where documents.removeValue(forKey: key) == nil {
                throw ConvergeError(.notFound, "\(key.kind.rawValue.lowercased()) \(key.id) not found")
            }
            let result = try self.check(documents)
            try await self.store.deleteAPIDocuments(keys, expectedVersions: expectedVersions, actor: actor)
            self.applied.withLock { $0 = documents }
            _ = await self.record(result, now: self.clock.now)
        }
    }

    /// The API-applied documents, once every key of `keys` is known to be the API's to write.
    private func ownedByAPI(_ keys: [ResourceKey]) async throws -> [ResourceKey: String] {
        guard let current else {
            throw ConvergeError(.failedPrecondition, "the daemon has not loaded the manifests yet; try again shortly")
        }
        for key in keys.sorted() {
            if let source = current.state.sources[key], !source.isAPI {
                throw ConvergeError(
                    .failedPrecondition,
                    "\(key) is declared in the manifests at \(source); change it there, since the next sync would undo "
                        + "an API write",
                    details: ["file": .string(source.file), "line": .int(source.line)])
            }
        }
        _ = try await appliedDocuments()
        return applied.withLock { $0 ?? [:] }
    }

    /// The load of the manifests with `documents` as the API-applied resources, or its errors as `invalid_argument`.
    /// Without `remembering` (a dry run), the next load compares with the load before this one.
    private func check(_ documents: [ResourceKey: String], remembering: Bool = true) throws -> ManifestLoader.Result {
        do {
            return try loader.reload(
                directory: directory, apiDocuments: Self.documents(documents), remembering: remembering)
        } catch {
            let messages = error.diagnostics.map(\.description)
            throw ConvergeError(
                .invalidArgument, messages.joined(separator: "; "),
                details: ["errors": .array(messages.map { .string($0) })])
        }
    }

    /// Records a good load: what differs from the previous one goes to the store, and the instances it touches to
    /// the work queue.
    private func record(_ result: ManifestLoader.Result, now: Date) async -> Bool {
        // Nothing changed since the last good load: a stat of every file, and nothing parsed, spawned or written.
        if !result.changed, current != nil {
            accept(now: now)
            return true
        }
        let loaded = result.state
        let (commit, warnings) = await GitCommit.read(directory: directory, now: now, avatarTemplate: avatarTemplate)
        for warning in warnings { logger.warning("git commit metadata", metadata: ["git.warning": "\(warning)"]) }
        do {
            let previous = current
            let revision: DesiredStateRevision
            var delta: (changed: [DesiredResource], removed: [ResourceKey]) = ([], [])
            if let previous {
                // Only what differs from the last recorded load goes to the store; nothing, when nothing changed.
                delta = loaded.records(changedFrom: previous.state)
                if delta.changed.isEmpty && delta.removed.isEmpty {
                    state.withLock { $0.current?.commit = commit }
                    accept(now: now)
                    return true
                }
                revision = try await recordChanges(delta, of: loaded, after: previous)
            } else {
                revision = try await store.replaceDesiredState(loaded.records, expectedVersion: nil, actor: "manifests")
            }
            // Generations move with this load's revision, unless someone else wrote the desired state in between.
            var generations: [ResourceKey: Int64]
            if let previous, revision.version <= previous.version + 1 {
                generations = previous.generations
                for key in revision.added { generations[key] = 1 }
                for key in revision.changed { generations[key, default: 0] += 1 }
                for key in revision.removed { generations[key] = nil }
            } else {
                generations = try await store.generations()
            }
            let next = LoadedManifests(
                state: loaded, generations: generations, commit: commit, version: revision.version)
            accept(next, now: now)
            for waiter in loadWaiters.withLock({ waiting in
                waiting.loaded = true
                defer { waiting.waiters = [:] }
                return Array(waiting.waiters.values)
            }) { waiter.resume() }
            logger.info(
                "manifests loaded",
                metadata: [
                    "manifests.version": "\(revision.version)", "manifests.added": "\(revision.added.count)",
                    "manifests.changed": "\(revision.changed.count)",
                    "manifests.removed": "\(revision.removed.count)",
                ])
            guard let previous else {
                await queue.add(Set(loaded.instances.keys).union(try await store.instanceIDs()).sorted())
                return true
            }
            // What this load changed, whoever recorded it first: a daemon of the same database may have recorded the
            // same manifests a moment before (the revision is then empty) and died before reconciling them all.
            // Reconciling again is idempotent; it creates nothing twice.
            var touched = Set<String>()
            let changed = revision.added + revision.changed + delta.changed.map { ResourceKey($0.kind, $0.id) }
            for key in changed { touched.formUnion(next.affected(by: key)) }
            for key in revision.removed + delta.removed { touched.formUnion(previous.affected(by: key)) }
            await queue.add(touched.sorted())
            return true
        } catch {
            refuse(["cannot record the desired state: \(error)"], now: now)
            return false
        }
    }
}
