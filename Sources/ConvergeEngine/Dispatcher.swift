import ConvergeCore
import ConvergeStore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Claims queued deployments (one RUNNING per instance, each instance's queue in creation order) up to a
/// concurrency limit, hands each to its provisioner while renewing its lease, and records the outcome.
///
/// On graceful shutdown it stops claiming and lets in-flight calls finish up to a deadline; whatever is still
/// RUNNING then is resolved through its lease on the next start.
public final class Dispatcher: Service, Sendable {
    let runner: DeploymentRunner
    let store: any Store
    let clock: any EngineClock
    let owner: String
    let maxConcurrent: Int
    let leaseDuration: TimeInterval
    let pollInterval: TimeInterval
    let shutdownGracePeriod: Duration
    let logger: Logger
    private let inFlight = Mutex<Set<String>>([])
    private let wakes: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init(
        runner: DeploymentRunner, clock: any EngineClock, owner: String, maxConcurrent: Int,
        leaseDuration: TimeInterval,
        pollInterval: TimeInterval, shutdownGracePeriod: Duration, logger: Logger
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

    /// Deployments being applied by this dispatcher.
    public var running: Int { inFlight.withLock { $0.count } }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { [clock, pollInterval, wake] in
                while !Task.isCancelled {
                    guard (try? await clock.sleep(until: clock.now.addingTimeInterval(pollInterval))) != nil else {
                        return
                    }
                    wake.yield()
                }
            }
            await withGracefulShutdownHandler {
                for await _ in wakes {
                    for deployment in await claim() {
                        group.addTask { await self.apply(deployment) }
                    }
                }
            } onGracefulShutdown: { [wake] in
                wake.finish()
            }
            await drain()
            group.cancelAll()
        }
    }

    /// Claims as many deployments as there are free slots; each is now RUNNING with this dispatcher's lease.
    func claim() async -> [Deployment] {
        let free = maxConcurrent - running
        guard free > 0 else { return [] }
        do {
            let claimed = try await store.claimNextDeployments(owner: owner, leaseDuration: leaseDuration, limit: free)
            inFlight.withLock { $0.formUnion(claimed.map(\.id)) }
            return claimed
        } catch {
            logger.error("cannot claim deployments", metadata: ["error": "\(error)"])
            return []
        }
    }

    /// Sends a claimed deployment to its provisioner, renewing the lease while the call runs.
    func apply(_ deployment: Deployment) async {
        defer {
            inFlight.withLock { _ = $0.remove(deployment.id) }
            wake.yield()
        }
        let metadata: Logger.Metadata = [
            "deployment.id": "\(deployment.id)", "instance.id": "\(deployment.instanceID)",
        ]
        logger.info("deployment running", metadata: metadata)
        let prepared: (provisioner: any DeploymentProvisioner, canProbe: Bool, job: ProvisionJob)
        do {
            prepared = try await runner.prepare(deployment)
        } catch {
            await runner.record(.failed("\(error)"), of: deployment, owner: owner)
            return
        }
        let heartbeat = Task { [store, clock, owner, leaseDuration] in
            while !Task.isCancelled {
                try await clock.sleep(until: clock.now.addingTimeInterval(leaseDuration / 3))
                _ = try await store.renewLease(deployment.id, owner: owner, leaseDuration: leaseDuration)
            }
        }
        _ = await runner.send(prepared.job, to: prepared.provisioner, owner: owner)
        heartbeat.cancel()
    }

    /// Waits for in-flight deployments up to the grace period.
    private func drain() async {
        let deadline = ContinuousClock.now + shutdownGracePeriod
        while running > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        if running > 0 {
            logger.warning(
                "shutting down with deployments still running; their leases resolve them on the next start",
                metadata: ["deployments.running": "\(running)"])
        }
    }
}
