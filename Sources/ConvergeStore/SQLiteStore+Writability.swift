import ConvergeCore
import GRDB

extension SQLiteStore {
    /// Why `error`, thrown by a write, says the store cannot write; nil for any other error (a constraint, a busy
    /// database), which says nothing of the storage.
    static func storageFailure(_ error: any Error) -> String? {
        guard let error = error as? DatabaseError,
            [.SQLITE_FULL, .SQLITE_IOERR, .SQLITE_READONLY, .SQLITE_CANTOPEN].contains(error.resultCode)
        else { return nil }
        return error.message ?? "\(error.resultCode)"
    }

    public func checkWritable() async throws {
        try await writeHealth.check(at: clock()) {
            // A row of its own in the counters table, rewritten: the outcome is recorded like any write's.
            _ = try? await transaction { db in
                try db.run(
                    sql: """
                        INSERT INTO counters (name, value) VALUES ('write_probes', 1)
                        ON CONFLICT (name) DO UPDATE SET value = value + 1
                        """)
            }
        }
    }
}
