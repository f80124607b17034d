import ConvergeCore
import ConvergeStore
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Drift checks (`spec.driftCheck: {every: 6h}` of an environment): on each environment's schedule, a PLAN of the
/// recorded configuration (what was last applied: the instance record's params, connection params and version) of
/// each of its instances, created directly by the daemon (actor `converge`) with metadata `driftCheck: true`.
///
/// Only a PROVISIONED, managed instance without an open deployment is planned, so an instance never has two drift
/// plans open, and a check never waits in a queue behind a change. When the plan ends, its instance is reconciled
/// (as after any deployment), and the reconciler sets the `Drifted` condition from the plan's result.
///
/// The schedule is each environment's next due time, kept in memory and rebuilt from the manifests (an environment
/// that starts being checked, or changes its period, is first due one period later; so is every environment after a
/// restart). The checker sleeps until the earliest due time, or until the manifests' poll interval passed, when it
/// looks whether the manifests changed; a check of an environment reads one record per instance it declares.
public final class DriftChecker: Service, Sendable {
    /// The metadata key that marks a drift check's plan.
    static let metadataKey = "driftCheck"

    let store: any DesiredStateStore
    let manifests: ManifestSource
    let reconciler: Reconciler
    let clock: any EngineClock
    /// How long the checker sleeps at most before it looks whether the manifests changed.
    let pollInterval: TimeInterval
    let logger: Logger
    private let schedule = Mutex(DriftSchedule())

    public init(
        store: any DesiredStateStore, manifests: ManifestSource, reconciler: Reconciler, clock: any EngineClock,
        pollInterval: TimeInterval, logger: Logger
    ) {
        self.store = store
        self.manifests = manifests
        self.reconciler = reconciler
        self.clock = clock
        self.pollInterval = pollInterval
        self.logger = logger
    }

    /// After the first good load of the manifests, checks what is due and sleeps until the next due time (or the
    /// next look at the manifests), until graceful shutdown.
    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            try await self.manifests.firstLoad()
            await DriftedGauge.shared.recount(self.store)
            while true {
                try await self.clock.sleep(until: await self.checkDue())
            }
        }
    }

    /// Follows the manifests in force, checks every environment that is due, and returns when to look again: the
    /// earliest due time, or one poll interval from now if that comes first.
    func checkDue() async -> Date {
        guard let loaded = manifests.current else { return clock.now.addingTimeInterval(pollInterval) }
        let now = clock.now
        let due = schedule.withLock { schedule in
            schedule.follow(
                version: loaded.version,
                periods: loaded.state.environments.compactMapValues { $0.driftCheck?.every }, now: now)
            return schedule.takeDue(now: now)
        }
        for environmentID in due { await check(environmentID, in: loaded) }
        let next = schedule.withLock { $0.nextDue } ?? .distantFuture
        return min(next, clock.now.addingTimeInterval(pollInterval))
    }

    /// Plans every instance of an environment that may be checked now.
    func check(_ environmentID: String, in loaded: LoadedManifests) async {
        var queued = 0
        for id in (loaded.instancesByEnvironment[environmentID] ?? []).sorted() {
            let metadata: Logger.Metadata = ["instance.id": "\(id)", "environment.id": "\(environmentID)"]
            do {
                guard let record = try await store.driftCheckCandidate(id) else { continue }
                let declared = loaded.state.instances[id]
                let snapshot = Self.snapshot(
                    of: record, declared: declared,
                    provisioner: loaded.state.bundles[record.bundle]?.provisioner, commit: loaded.commit?.value)
                let creation = try await reconciler.create(
                    DeploymentRequest(instanceID: id, snapshot: snapshot, mode: .direct, actor: ReconcilePlanner.actor))
                if creation.created {
                    queued += 1
                    Counter(label: MetricFamily.driftPlansQueued.name).increment()
                }
            } catch let error as ConvergeError where error.code == .failedPrecondition {
                // The instance changed since it was read (a change queued, an orphan): the store refused the check.
                logger.debug("drift check skipped", metadata: metadata.merging(["error": "\(error)"]) { $1 })
            } catch {
                logger.warning(
                    "drift check not queued; the next one is due a period later",
                    metadata: metadata.merging(["error": "\(error)"]) { $1 })
            }
        }
        logger.info(
            "drift checks queued", metadata: ["environment.id": "\(environmentID)", "drift.queued": "\(queued)"])
    }

    /// The PLAN of a recorded instance's configuration: its params, connection params and version as last applied,
    /// with the metadata of a reconciler's snapshot (the declared name, project and labels when the manifests still
    /// declare it) and `driftCheck: true`.
    static func snapshot(of record: InstanceRecord, declared: Instance?, provisioner: String?, commit: Value?)
        -> DeploymentSnapshot
    {
        var metadata: [String: Value] = [
            "instance": .string(record.id), "environment": .string(record.environment),
            "bundle": .string(record.bundle), "actor": .string(ReconcilePlanner.actor), metadataKey: .bool(true),
        ]
        if let declared {
            metadata["name"] = .string(declared.name)
            metadata["project"] = .string(declared.project)
            metadata["labels"] = .object(declared.labels.mapValues { .string($0) })
        }
        if let provisioner { metadata["provisioner"] = .string(provisioner) }
        if let commit { metadata["commit"] = commit }
        return DeploymentSnapshot(
            action: .plan, params: record.params ?? [:], connectionParams: record.connectionParams ?? [:],
            version: record.version ?? "latest", metadata: .object(metadata))
    }
}

/// When each drift-checked environment is next due: a pure schedule the `DriftChecker` keeps in memory.
struct DriftSchedule: Equatable, Sendable {
    struct Entry: Equatable, Sendable {
        /// Seconds between two checks.
        var every: TimeInterval
        var due: Date
    }

    private(set) var entries: [String: Entry] = [:]
    /// The desired-state version the entries follow; nil before the first.
    private(set) var version: Int64?

    /// Follows the manifests of `version` (nothing to do when the schedule already does): an environment that starts
    /// being checked, or whose period changed, is first due one period from `now`; one no longer checked is dropped;
    /// the others keep their due time.
    mutating func follow(version: Int64, periods: @autoclosure () -> [String: TimeInterval], now: Date) {
        guard version != self.version else { return }
        self.version = version
        var next: [String: Entry] = [:]
        for (id, every) in periods() {
            if let entry = entries[id], entry.every == every {
                next[id] = entry
            } else {
                next[id] = Entry(every: every, due: now.addingTimeInterval(every))
            }
        }
        entries = next
    }

    /// The environments due at `now`, sorted; each is next due one period after it was due, or one period from `now`
    /// when it is later than that already (after a long sleep, or a suspended process).
    mutating func takeDue(now: Date) -> [String] {
        let due = entries.filter { $0.value.due <= now }.keys.sorted()
        for id in due {
            let entry = entries[id]!
            let next = entry.due.addingTimeInterval(entry.every)
            entries[id]?.due = next > now ? next : now.addingTimeInterval(entry.every)
        }
        return due
    }

    /// The earliest due time; nil when no environment is checked.
    var nextDue: Date? { entries.values.map(\.due).min() }
}
