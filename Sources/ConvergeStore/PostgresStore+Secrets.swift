import ConvergeCore
import Foundation
import PostgresNIO

/// Sealed secrets of instances and of the daemons, on PostgreSQL: as SQLiteStore keeps them.
extension PostgresStore: SecretStore {
    public func secret(named name: String) async throws -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        let candidate = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        // Every daemon of the database shares one: the first to ask creates it, the others read it.
        return try await transaction { connection in
            try await connection.query(
                """
                INSERT INTO secrets (name, value, created_at) VALUES (\(name), \(Data(candidate)), \(self.now))
                ON CONFLICT (name) DO NOTHING
                """, logger: logger)
            return try await connection.one(
                "SELECT value FROM secrets WHERE name = \(name)", Data.self, logger: logger
            ).map(Array.init)!
        }
    }

    public func setSecret(instanceID: String, name: String, sealed: [UInt8], actor: String) async throws {
        try await transaction { connection in
            try await self.requireInstance(connection, instanceID)
            let now = self.now
            try await connection.query(
                """
                INSERT INTO instance_secrets (instance_id, name, sealed, created_at, updated_at)
                VALUES (\(instanceID), \(name), \(Data(sealed)), \(now), \(now))
                ON CONFLICT (instance_id, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at
                """, logger: logger)
            try await self.audit(
                connection, actor: actor, action: "secret.set", kind: "Instance", id: instanceID, before: nil,
                after: ["secret": .string(name)])
        }
    }

    public func secretNames(of instanceID: String) async throws -> [String] {
        try await read { connection in
            try await self.requireInstance(connection, instanceID)
            return try await connection.column(
                "SELECT name FROM instance_secrets WHERE instance_id = \(instanceID) ORDER BY name", String.self,
                logger: logger)
        }
    }

    public func secretNames(ofInstances instanceIDs: [String]) async throws -> [String: [String]] {
        guard !instanceIDs.isEmpty else { return [:] }
        return try await read { connection in
            var names: [String: [String]] = [:]
            let rows = try await connection.rows(
                """
                SELECT instance_id, name FROM instance_secrets WHERE instance_id = ANY(\(instanceIDs))
                ORDER BY instance_id, name
                """, logger: logger)
            for row in rows { names[try row.value("instance_id"), default: []].append(try row.value("name")) }
            return names
        }
    }

    public func deleteSecret(instanceID: String, name: String, actor: String) async throws {
        try await transaction { connection in
            try await self.requireInstance(connection, instanceID)
            let deleted = try await connection.count(
                "DELETE FROM instance_secrets WHERE instance_id = \(instanceID) AND name = \(name) RETURNING 1",
                logger: logger)
            guard deleted == 1 else { throw ConvergeError(.notFound, "instance \(instanceID) has no secret \(name)") }
            try await self.audit(
                connection, actor: actor, action: "secret.delete", kind: "Instance", id: instanceID,
                before: ["secret": .string(name)], after: nil)
        }
    }

    public func sealedSecrets(of instanceID: String) async throws -> [String: [UInt8]] {
        try await read { connection in
            var sealed: [String: [UInt8]] = [:]
            let rows = try await connection.rows(
                "SELECT name, sealed FROM instance_secrets WHERE instance_id = \(instanceID)", logger: logger)
            for row in rows { sealed[try row.value("name")] = Array(try row.value("sealed", as: Data.self)) }
            return sealed
        }
    }

    /// Fails with `not_found` unless the instance is recorded.
    private func requireInstance(_ connection: PostgresConnection, _ id: String) async throws {
        guard try await connection.count("SELECT 1 FROM instances WHERE id = \(id)", logger: logger) == 1 else {
            throw ConvergeError(.notFound, "instance \(id) not found")
        }
    }
}

extension PostgresStore {
    public func ping() async throws {
        _ = try await read { connection in try await connection.one("SELECT 1", Int32.self, logger: logger) }
    }

    /// Folds the deltas the triggers appended into the counts, then reads them: one row per status, however many
    /// deployments there are.
    public func deploymentCounts() async throws -> [Deployment.Status: Int] {
        // READ COMMITTED: folding never conflicts with the deployments' writers, and two folds at once each take
        // the rows the other did not.
        try await transaction(isolation: "READ COMMITTED") { connection in
            try await connection.query(
                """
                WITH folded AS (
                    DELETE FROM deployment_count_deltas RETURNING status, delta
                ), sums AS (
                    SELECT status, SUM(delta) AS delta FROM folded GROUP BY status
                )
                INSERT INTO deployment_counts (status, count) SELECT status, delta FROM sums
                ON CONFLICT (status) DO UPDATE SET count = deployment_counts.count + excluded.count
                """, logger: logger)
            var counts: [Deployment.Status: Int] = [:]
            for row in try await connection.rows("SELECT status, count FROM deployment_counts", logger: logger) {
                if let status = Deployment.Status(rawValue: try row.value("status")) {
                    counts[status] = Int(try row.value("count", as: Int64.self))
                }
            }
            return counts
        }
    }
}
