import ConvergeCore
import PostgresNIO

extension PostgresStore {
    /// Why `error`, thrown by a write, says the database cannot write: a full disk (53100), an I/O error (58030), or
    /// a read-only database such as a standby after a failover (25006); nil for any other error.
    static func storageFailure(_ error: any Error) -> String? {
        if let error = error as? PostgresTransactionError {
            return storageFailure(error.closureError ?? error.beginError ?? error.commitError ?? error)
        }
        guard let error = error as? PSQLError, let state = error.serverInfo?[.sqlState],
            ["53100", "58030", "25006"].contains(state)
        else { return nil }
        return error.serverInfo?[.message] ?? state
    }

    public func checkWritable() async throws {
        try await writeHealth.check(at: clock()) {
            // A row of its own in the counters table, rewritten: the outcome is recorded like any write's.
            _ = try? await transaction { connection in
                try await connection.query(
                    """
                    INSERT INTO counters (name, value) VALUES ('write_probes', 1)
                    ON CONFLICT (name) DO UPDATE SET value = counters.value + 1
                    """, logger: logger)
            }
        }
    }
}
