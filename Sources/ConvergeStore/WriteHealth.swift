import ConvergeCore
import Foundation
import Logging
import Synchronization

/// Whether a store's writes go through: the outcome of its latest write, kept by the store's `transaction`. A write
/// that failed for want of space or storage (a full disk or database, an I/O error, a read-only database) marks the
/// store unwritable; the next write that commits clears it.
final class WriteHealth: Sendable {
    private let state = Mutex<(failure: String?, at: Date?)>((nil, nil))

    /// How long a store may go without a write before `check` tries one.
    static let probeInterval: TimeInterval = 2

    /// Records the outcome of a write at `at`: nil when it committed, else why it failed for want of storage; the
    /// first failure after a commit is logged.
    func record(failure: String?, at: Date, logger: Logger) {
        let previous = state.withLock { state in
            defer { state = (failure, at) }
            return state.failure
        }
        if let failure, previous == nil {
            logger.warning("the store cannot write", metadata: ["error": "\(failure)"])
        }
    }

    /// Throws (`cannot write: …`) while the latest write failed for want of storage; when no write was tried for
    /// `probeInterval` before `now` it runs `probe` (a write of the store's own) first, so the answer is current.
    func check(at now: Date, probe: () async -> Void) async throws {
        if state.withLock({ $0.at.map { now.timeIntervalSince($0) >= Self.probeInterval } ?? true }) {
            await probe()
        }
        if let failure = state.withLock({ $0.failure }) {
            throw ConvergeError(.internal, "cannot write: \(failure)")
        }
    }
}
