import ConvergeCore
import ConvergeStore
import Foundation
import Logging
import ServiceLifecycle

/// Announces the daemon in the store every third of a lease, so `converge status` on any daemon of the database
/// lists the daemons alive; an announcement lasts one lease, so a daemon killed drops off the list when its leases
/// expire.
public struct DaemonHeartbeat: Service {
    let store: any DispatchStore
    let daemon: DaemonRecord
    let leaseDuration: TimeInterval
    let clock: any EngineClock
    let logger: Logger

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while true {
                var daemon = self.daemon
                daemon.expiresAt = clock.now.addingTimeInterval(leaseDuration)
                do {
                    try await store.heartbeat(daemon)
                } catch {
                    logger.warning("cannot announce the daemon in the store", metadata: ["error": "\(error)"])
                }
                try await clock.sleep(until: clock.now.addingTimeInterval(max(1, leaseDuration / 3)))
            }
        }
    }
}
