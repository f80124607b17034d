import ConvergeCore
import Foundation
import GRDB

/// Instances' secrets, sealed before they reach the store: it keeps opaque bytes by instance and name, never the
/// plaintext, and audits every change with the name only.
extension SQLiteStore {
    /// Sealed secrets by instance and name. The name rule (an environment-like name of at most 64 characters) and a
    /// cap on the sealed size (a 64 KiB value and the seal's overhead) hold in the schema too.
    static let instanceSecretsSchema = """
        CREATE TABLE instance_secrets (
            instance_id TEXT NOT NULL REFERENCES instances (id),
            name TEXT NOT NULL CHECK (
                length(name) BETWEEN 1 AND 64 AND name GLOB '[A-Za-z_]*' AND name NOT GLOB '*[^A-Za-z0-9_]*'),
            sealed BLOB NOT NULL CHECK (length(sealed) BETWEEN 1 AND 65600),
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (instance_id, name)
        ) WITHOUT ROWID;
        """

    public func setSecret(instanceID: String, name: String, sealed: [UInt8], actor: String) async throws {
        try await transaction { db in
            try Self.requireInstance(db, instanceID)
            let now = self.now
            try db.run(
                sql: """
                    INSERT INTO instance_secrets (instance_id, name, sealed, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (instance_id, name)
                    DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at
                    """,
                arguments: [instanceID, name, Data(sealed), now, now])
            try self.audit(
                db, actor: actor, action: "secret.set", kind: "Instance", id: instanceID, before: nil,
                after: ["secret": .string(name)])
        }
    }

    public func secretNames(of instanceID: String) async throws -> [String] {
        try readInPlace { db in
            try Self.requireInstance(db, instanceID)
            return try String.fetchAll(
                db, sql: "SELECT name FROM instance_secrets WHERE instance_id = ? ORDER BY name",
                arguments: [instanceID])
        }
    }

    public func secretNames(ofInstances instanceIDs: [String]) async throws -> [String: [String]] {
        guard !instanceIDs.isEmpty else { return [:] }
        return try await read { db in
            let placeholders = Array(repeating: "?", count: instanceIDs.count).joined(separator: ", ")
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT instance_id, name FROM instance_secrets WHERE instance_id IN (\(placeholders))
                    ORDER BY instance_id, name
                    """,
                arguments: StatementArguments(instanceIDs))
            var names: [String: [String]] = [:]
            for row in rows { names[row["instance_id"], default: []].append(row["name"]) }
            return names
        }
    }

    public func deleteSecret(instanceID: String, name: String, actor: String) async throws {
        try await transaction { db in
            try Self.requireInstance(db, instanceID)
            try db.run(
                sql: "DELETE FROM instance_secrets WHERE instance_id = ? AND name = ?", arguments: [instanceID, name])
            guard db.changesCount == 1 else {
                throw ConvergeError(.notFound, "instance \(instanceID) has no secret \(name)")
            }
            try self.audit(
                db, actor: actor, action: "secret.delete", kind: "Instance", id: instanceID,
                before: ["secret": .string(name)], after: nil)
        }
    }

    // In place, like the instance read beside it at dispatch: an asynchronous read holds a reader until a cooperative
    // thread resumes it, and with every cooperative thread blocked in an in-place read waiting for a reader, the
    // daemon deadlocked (a burst of resumed deployments after a restart did).
    public func sealedSecrets(of instanceID: String) async throws -> [String: [UInt8]] {
        try readInPlace { db in
            var sealed: [String: [UInt8]] = [:]
            let rows = try Row.fetchAll(
                db, sql: "SELECT name, sealed FROM instance_secrets WHERE instance_id = ?", arguments: [instanceID])
            for row in rows { sealed[row["name"]] = Array(row["sealed"] as Data) }
            return sealed
        }
    }

    /// Fails with `not_found` unless the instance is recorded.
    private static func requireInstance(_ db: Database, _ id: String) throws {
        guard try Bool.fetchOne(db, sql: "SELECT 1 FROM instances WHERE id = ?", arguments: [id]) != nil else {
            throw ConvergeError(.notFound, "instance \(id) not found")
        }
    }
}
