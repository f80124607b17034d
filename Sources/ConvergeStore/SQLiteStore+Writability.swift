import ConvergeCore
import Foundation
import GRDB
import Synchronization

/// Whether the store's writes go through: the outcome of its latest write, kept by `SQLiteStore.transaction`. A
/// write that failed for want of space or storage (a full disk or database, an I/O error, a read-only file) marks
/// the store unwritable; the next write that commits clears it.
final class WriteHealth: Sendable {
    private let state = Mutex<(failure: String?, at: Date?)>((nil, nil))

    /// Records the outcome of a write at `at`: nil when it committed, else why it failed.
    func record(failure: String?, at: Date) {
        state.withLock { $0 = (failure, at) }
    }

    /// Why the latest write failed; nil when it committed (or none was tried).
    var failure: String? { state.withLock { $0.failure } }

    /// Whether no write was tried since `interval` before `now`.
    func isStale(at now: Date, interval: TimeInterval) -> Bool {
        state.withLock { $0.at.map { now.timeIntervalSince($0) >= interval } ?? true }
    }

    /// Why `error`, thrown by a write, says the store cannot write; nil for any other error (a constraint, a busy
    /// database), which says nothing of the storage.
    static func storageFailure(_ error: any Error) -> String? {
        guard let error = error as? DatabaseError,
            [.SQLITE_FULL, .SQLITE_IOERR, .SQLITE_READONLY, .SQLITE_CANTOPEN].contains(error.resultCode)
        else { return nil }
        return error.message ?? "\(error.resultCode)"
    }
}

extension SQLiteStore {
    /// How long the store may go without a write before `checkWritable` tries one.
    static let writeProbeInterval: TimeInterval = 2

    public func checkWritable() async throws {
        if writeHealth.isStale(at: clock(), interval: Self.writeProbeInterval) {
            // A row of its own in the counters table, rewritten: the outcome is recorded like any write's.
            _ = try? await transaction { db in
                try db.run(
                    sql: """
                        INSERT INTO counters (name, value) VALUES ('write_probes', 1)
                        ON CONFLICT (name) DO UPDATE SET value = value + 1
                        """)
            }
        }
        if let failure = writeHealth.failure {
            throw ConvergeError(.internal, "cannot write: \(failure)")
        }
    }
}
