import ConvergeStore
import ConvergeTestSupport
import Foundation

extension Store {
    /// Whether the newest deployment of each of `instances` is not RUNNING under a lease that is still valid by the
    /// wall clock: what a daemon that starts or wakes now finds. Tests of a daemon that was away wait for it rather
    /// than sleep for longer than they guess a lease lasts.
    func leasesExpired(of instances: [String]) async throws -> Bool {
        for id in instances {
            guard let newest = try await history(id).first, newest.status == .running else { continue }
            guard let lease = newest.lease, lease.expiresAt < Date() else { return false }
        }
        return true
    }
}
