import ConvergeCore
import ConvergeStore
import Foundation
import Logging
import ServiceLifecycle

/// Resolves every RUNNING deployment whose lease expired, because its provisioner went silent or the daemon
/// holding it died: it takes the lease over, asks a provisioner that can be probed for the attempt's status
/// (resending it with the same idempotency key), and otherwise fails the deployment with `lease expired`.
/// Nothing stays RUNNING forever.
public final class LeaseMonitor: Service, Sendable {
    let runner: DeploymentRunner
    let clock: any EngineClock
    let owner: String
    let interval: TimeInterval
    let probeLease: TimeInterval
    let logger: Logger

    init(
        runner: DeploymentRunner, clock: any EngineClock, owner: String, interval: TimeInterval,
        probeLease: TimeInterval, logger: Logger
    ) {
        self.runner = runner
        self.clock = clock
        self.owner = owner
        self.interval = interval
        self.probeLease = probeLease
        self.logger = logger
    }

    /// Checks leases every interval until graceful shutdown, which ends it normally.
    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.resolveExpired()
                try await self.clock.sleep(until: self.clock.now.addingTimeInterval(self.interval))
            }
        }
    }

    /// Resolves the deployments whose lease has expired now; returns how many it took over.
    @discardableResult
    func resolveExpired() async -> Int {
        let expired: [Deployment]
        do {
            expired = try await runner.store.expiredLeases(limit: 100)
        } catch {
            logger.error("cannot list expired leases", metadata: ["error": "\(error)"])
            return 0
        }
        var resolved = 0
        for deployment in expired {
            guard
                let taken = try? await runner.store.takeOverLease(
                    deployment.id, owner: owner, leaseDuration: probeLease)
            else { continue }
            resolved += 1
            let reason = "lease expired: no word from the provisioner since \(deployment.lease?.expiresAt ?? clock.now)"
            logger.info(
                "lease expired",
                metadata: ["deployment.id": "\(deployment.id)", "instance.id": "\(deployment.instanceID)"])
            guard let prepared = try? await runner.prepare(taken), prepared.canProbe else {
                await runner.record(.failed(reason), of: taken, owner: owner)
                continue
            }
            try? await runner.store.appendEvents(
                [DeploymentEventDraft(kind: .phase, message: "lease expired; probing the provisioner")], to: taken.id)
            // Resending the attempt under the same idempotency key asks for its status.
            let outcome = await runner.call(prepared.provisioner, with: prepared.job)
            switch outcome {
            case .completed, .failed: await runner.record(outcome, of: taken, owner: owner)
            case .accepted: await runner.record(.failed(reason), of: taken, owner: owner)
            }
        }
        return resolved
    }
}
