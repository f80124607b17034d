import ConvergeCore
import Foundation
import PostgresNIO

/// The daemons sharing the database and the leases each holds (`converge status` lists them).
extension PostgresStore {
    public func heartbeat(_ daemon: DaemonRecord) async throws {
        // READ COMMITTED: each daemon writes its own row; announcing never conflicts with another daemon's.
        try await transaction(isolation: "READ COMMITTED") { connection in
            let now = self.now
            try await connection.query("DELETE FROM daemons WHERE expires_at < \(now - 86_400_000)", logger: logger)
            try await connection.query(
                """
                INSERT INTO daemons (id, host, version, started_at, heartbeat_at, expires_at)
                VALUES (\(daemon.id), \(daemon.host), \(daemon.version), \(unixMillis(daemon.startedAt)), \(now),
                    \(unixMillis(daemon.expiresAt)))
                ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at
                """, logger: logger)
        }
    }

    public func daemonsAlive() async throws -> [DaemonRecord] {
        try await read { connection in
            let now = self.now
            return try await connection.rows(
                """
                SELECT d.*, (SELECT COUNT(*) FROM deployments AS r
                    WHERE r.status = 'RUNNING' AND r.lease_owner = d.id AND r.lease_expires_at > \(now)) AS leases
                FROM daemons AS d WHERE d.expires_at > \(now) ORDER BY d.started_at, d.id
                """, logger: logger
            ).map { row in
                DaemonRecord(
                    id: try row.value("id"), host: try row.value("host"), version: try row.value("version"),
                    startedAt: date(try row.value("started_at")), heartbeatAt: date(try row.value("heartbeat_at")),
                    expiresAt: date(try row.value("expires_at")),
                    leasesHeld: Int(try row.value("leases", as: Int64.self)))
            }
        }
    }
}
