import ConvergeCore
import ConvergeStore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Runs deployments (DESIGN §3): takes over RUNNING deployments whose lease expired because their daemon was away
/// and resumes them under the same idempotency key, claims queued deployments (one RUNNING per instance, each
/// instance's queue in creation order), all up to a concurrency limit; hands each to its provisioner while renewing
/// its lease, and records the outcome as the lease holder.
///
/// A deployment fails only on its provisioner's verdict or when the provisioner's timeout, counted from the first
/// start, passed without one. When a renewal finds the lease taken over, the call is cancelled and nothing is
/// recorded: the new holder owns the deployment. Nothing runs before the first good manifest load, since the
/// provisioners are declared there.
///
/// On graceful shutdown it stops claiming, lets in-flight calls finish up to a deadline and stops waiting for
/// callbacks; whatever is still RUNNING is resumed through its lease by the next daemon.
public final class Dispatcher: Service, Sendable {
    let runner: DeploymentRunner
    let store: any DispatchStore & ChangeFeed
    let clock: any EngineClock
    let owner: String
    let maxConcurrent: Int
    let leaseDuration: TimeInterval
    let pollInterval: TimeInterval
    let shutdownGracePeriod: Duration
    let logger: Logger
    private let inFlight = Mutex<Set<String>>([])
    /// Deployments waiting for their provisioner's callbacks, woken when a callback ends one.
    private let waiting = Mutex<[String: AsyncStream<Void>.Continuation]>([:])
    private let stopping = Atomic<Bool>(false)
    private let wakes: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init(
        runner: DeploymentRunner, clock: any EngineClock, owner: String, maxConcurrent: Int,
        leaseDuration: TimeInterval, pollInterval: TimeInterval, shutdownGracePeriod: Duration, logger: Logger
    ) {
        self.runner = runner
        self.store = runner.store
        self.clock = clock
        self.owner = owner
        self.maxConcurrent = maxConcurrent
        self.leaseDuration = leaseDuration
        self.pollInterval = pollInterval
        self.shutdownGracePeriod = shutdownGracePeriod
        self.logger = logger
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Asks the dispatcher to claim now (a deployment was created or a slot freed).
    public func wakeUp() {
        wake.yield()
    }

    /// Tells a deployment waiting for callbacks that one of them ended it.
    func callbackEnded(_ id: String) {
        _ = waiting.withLock { $0[id] }?.yield()
    }

    /// Deployments being applied by this dispatcher, including those waiting for callbacks.
    public var running: Int { inFlight.withLock { $0.count } }

    public func run() async throws {
        guard (try? await cancelWhenGracefulShutdown({ try await self.runner.manifests.firstLoad() })) != nil else {
            return
        }
        await withDiscardingTaskGroup { group in
            // Woken by every change of the store's deployments, and every poll interval at the latest, for the leases
            // that expire with nothing changing.
            group.addTask { [store, pollInterval, wake] in
                while !Task.isCancelled {
                    let seen = store.changes.generation
                    wake.yield()
                    await store.changes.wait(since: seen, timeout: .milliseconds(Int(pollInterval * 1000)))
                }
            }
            await withGracefulShutdownHandler {
                for await _ in wakes {
                    for deployment in await takeOverExpired() + claim() {
                        group.addTask { await self.apply(deployment) }
                    }
                }
            } onGracefulShutdown: { [wake] in
                wake.finish()
            }
            stopWaitingForCallbacks()
            await drain()
            group.cancelAll()
        }
    }

    /// Takes over as many expired leases as there are free slots; each is now this dispatcher's, under a new epoch.
    ///
    /// Never one of the deployments this dispatcher is still applying: after a pause longer than the lease (SIGSTOP,
    /// a stalled host) their leases have expired, but their calls are still in flight and their renewals keep them.
    /// The in-flight set cannot grow meanwhile: only `fill`, on the dispatch loop, adds to it.
    func takeOverExpired() async -> [Deployment] {
        let applying = inFlight.withLock { $0 }
        return await fill { [store, owner, leaseDuration] free in
            try await store.takeOverExpiredLeases(
                owner: owner, leaseDuration: leaseDuration, limit: free, excluding: applying)
        }
    }

    /// Claims as many deployments as there are free slots; each is now RUNNING with this dispatcher's lease.
    func claim() async -> [Deployment] {
        await fill { [store, owner, leaseDuration] free in
            try await store.claimNextDeployments(owner: owner, leaseDuration: leaseDuration, limit: free)
        }
    }

    /// Takes up to the free slots' worth of deployments with `take`; a store that does not answer within a lease
    /// (the database gone, a connection that never answers) is given up on, so the dispatch loop goes on: what a call
    /// given up on took meanwhile is RUNNING under a lease nobody renews, and is taken over once it expires.
    private func fill(_ take: @escaping @Sendable (Int) async throws -> [Deployment]) async -> [Deployment] {
        let free = maxConcurrent - running
        guard free > 0 else { return [] }
        do {
            let taken = try await withDeadline(.seconds(max(leaseDuration, 5))) { try await take(free) }
            inFlight.withLock { $0.formUnion(taken.map(\.id)) }
            return taken
        } catch {
            logger.error("cannot take deployments to run", metadata: ["error": "\(error)"])
            return []
        }
    }

    /// Sends a deployment this dispatcher holds to its provisioner — a first send, or a resumed one after a
    /// takeover — renewing the lease while the call runs and while callbacks are awaited.
    func apply(_ deployment: Deployment) async {
        defer {
            inFlight.withLock { _ = $0.remove(deployment.id) }
            wake.yield()
        }
        guard let lease = deployment.lease else { return }
        let metadata: Logger.Metadata = [
            "deployment.id": "\(deployment.id)", "instance.id": "\(deployment.instanceID)",
            "deployment.attempt": "\(deployment.attempt)", "lease.epoch": "\(lease.epoch)",
        ]
        logger.info(lease.epoch > 1 ? "deployment resumed" : "deployment running", metadata: metadata)
        let prepared: PreparedDeployment
        do {
            prepared = try await runner.prepare(deployment)
        } catch let error as ConvergeError where error.details?["reason"] == "unreachable" {
            // Nothing was sent: the deployment stays RUNNING under its lease, and is resumed (by whichever daemon
            // takes the expired lease over, this one included) once the database answers again.
            logger.warning(
                "cannot prepare the deployment while the database is unreachable; it resumes once its lease expires",
                metadata: metadata.merging(["error": "\(error.message)"]) { $1 })
            return
        } catch {
            await runner.record(.failed("\(error)"), of: deployment, lease: lease)
            return
        }
        guard clock.now < prepared.deadline else {
            await runner.record(.failed(timedOut(prepared)), of: deployment, lease: lease)
            return
        }
        // A pause (SIGSTOP, a stalled host or database) since the claim may have let the lease expire and another
        // daemon take the deployment over and send it: a lease past half its time is renewed before the call, and the
        // call is not sent when the lease is no longer this daemon's.
        if clock.now >= lease.expiresAt.addingTimeInterval(-leaseDuration / 2), await !renew(lease, of: deployment) {
            return
        }
        let outcome = await whileHolding(lease, of: deployment) {
            await self.runner.call(prepared)
        }
        guard let outcome, !(await runner.record(outcome, of: deployment, lease: lease)) else { return }
        await awaitCallbacks(deployment, lease: lease, prepared: prepared)
    }

    /// Runs `body` while renewing `lease` every third of its duration; cancels `body` and returns nil when a renewal
    /// finds the lease taken over or the deployment ended by someone else.
    private func whileHolding<T: Sendable>(
        _ lease: Deployment.Lease, of deployment: Deployment, _ body: @escaping @Sendable () async -> T?
    ) async -> T? {
        await withTaskGroup(of: T?.self) { group in
            group.addTask { await body() }
            group.addTask { [self] in
                while (try? await clock.sleep(until: clock.now.addingTimeInterval(leaseDuration / 3))) != nil {
                    if await !renew(lease, of: deployment) { return nil }
                }
                return nil
            }
            // The first to end decides: the call's outcome, or the renewal loop's nil when the lease was lost.
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// Renews `lease`; false when it is no longer this dispatcher's (taken over, or the deployment ended).
    private func renew(_ lease: Deployment.Lease, of deployment: Deployment) async -> Bool {
        do {
            _ = try await store.renewLease(
                deployment.id, owner: lease.owner, epoch: lease.epoch, leaseDuration: leaseDuration)
            return true
        } catch let error as ConvergeError where error.code == .failedPrecondition || error.code == .notFound {
            let metadata: Logger.Metadata = ["deployment.id": "\(deployment.id)", "error": "\(error.message)"]
            if error.details?["reason"] == "lease_lost" {
                logger.warning("lease taken over; stopping the provisioner call", metadata: metadata)
            } else {
                // Ended meanwhile: by a callback (the usual end of an accepted call), or aborted.
                logger.debug("deployment ended; no longer renewing its lease", metadata: metadata)
            }
            return false
        } catch {
            // A busy database: the lease is still ours, renew again at the next beat.
            return true
        }
    }

    /// Keeps the lease of an accepted deployment while its provisioner works and reports through callbacks, until
    /// a callback ends it, the lease is lost, the provisioner's time is up, or the daemon stops.
    private func awaitCallbacks(_ deployment: Deployment, lease: Deployment.Lease, prepared: PreparedDeployment)
        async
    {
        let (ended, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        waiting.withLock { $0[deployment.id] = signal }
        defer { waiting.withLock { _ = $0.removeValue(forKey: deployment.id) } }
        if stopping.load(ordering: .acquiring) { return }
        let beats = Task { [clock, leaseDuration] in
            while clock.now < prepared.deadline {
                let beat = min(prepared.deadline, clock.now.addingTimeInterval(leaseDuration / 3))
                guard (try? await clock.sleep(until: beat)) != nil else { return }
                signal.yield()
            }
        }
        defer { beats.cancel() }
        for await _ in ended {
            if stopping.load(ordering: .acquiring) { return }
            guard clock.now < prepared.deadline else {
                await runner.record(.failed(timedOut(prepared)), of: deployment, lease: lease)
                return
            }
            // A renewal that fails means a callback ended the deployment, or another daemon took it over.
            if await !renew(lease, of: deployment) { return }
        }
    }

    private func timedOut(_ prepared: PreparedDeployment) -> String {
        "timed out: no verdict from the provisioner within its timeout of \(prepared.timeoutSeconds)s "
            + "since the first start"
    }

    /// Stops every wait for callbacks: on shutdown the next daemon resumes those deployments.
    private func stopWaitingForCallbacks() {
        stopping.store(true, ordering: .releasing)
        for signal in waiting.withLock({ Array($0.values) }) { signal.finish() }
    }

    /// Waits for in-flight calls up to the grace period.
    private func drain() async {
        let deadline = ContinuousClock.now + shutdownGracePeriod
        while running > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        if running > 0 {
            logger.warning(
                "shutting down with deployments still running; the next daemon resumes them through their leases",
                metadata: ["deployments.running": "\(running)"])
        }
    }
}
