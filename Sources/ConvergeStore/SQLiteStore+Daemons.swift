import ConvergeCore
import Foundation
import GRDB

/// The daemons of the database and the leases each holds (one, on SQLite; `converge status` lists them).
extension SQLiteStore {
    static let daemonsSchema = """
        CREATE TABLE daemons (
            id TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            version TEXT NOT NULL,
            started_at INTEGER NOT NULL,
            heartbeat_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX daemons_by_expiry ON daemons (expires_at);
        -- The leases a daemon holds, from the index of RUNNING deployments' owners.
        CREATE INDEX deployments_lease_owners ON deployments (lease_owner, lease_expires_at) WHERE status = 'RUNNING';
        """

    public func heartbeat(_ daemon: DaemonRecord) async throws {
        try await transaction { db in
            let now = self.now
            // Daemons gone for a day are forgotten.
            try db.run(sql: "DELETE FROM daemons WHERE expires_at < ?", arguments: [now - 86_400_000])
            try db.run(
                sql: """
                    INSERT INTO daemons (id, host, version, started_at, heartbeat_at, expires_at)
                    VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at
                    """,
                arguments: [
                    daemon.id, daemon.host, daemon.version, unixMillis(daemon.startedAt), now,
                    unixMillis(daemon.expiresAt),
                ])
        }
    }

    public func daemonsAlive() async throws -> [DaemonRecord] {
        try await read { db in
            let now = self.now
            return try db.fetchRows(
                sql: """
                    SELECT d.*, (SELECT COUNT(*) FROM deployments AS r INDEXED BY deployments_lease_owners
                        WHERE r.status = 'RUNNING' AND r.lease_owner = d.id AND r.lease_expires_at > ?) AS leases
                    FROM daemons AS d WHERE d.expires_at > ? ORDER BY d.started_at, d.id
                    """, arguments: [now, now]
            ).map { row in
                DaemonRecord(
                    id: row["id"], host: row["host"], version: row["version"], startedAt: date(row["started_at"]),
                    heartbeatAt: date(row["heartbeat_at"]), expiresAt: date(row["expires_at"]),
                    leasesHeld: row["leases"])
            }
        }
    }
}
