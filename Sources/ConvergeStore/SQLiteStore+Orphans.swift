import ConvergeCore
import GRDB

/// Instances no longer managed (`converge instance orphan`): their record stays, with who orphaned them; the
/// reconciler leaves them alone and nothing is decommissioned.
extension SQLiteStore {
    static let orphansSchema = """
        ALTER TABLE instances ADD COLUMN orphaned_by TEXT;
        ALTER TABLE instances ADD COLUMN orphaned_at INTEGER;
        """

    public func orphanInstance(_ id: String, actor: String) async throws -> InstanceRecord {
        try await transaction { db in
            let before = try Self.fetchInstance(db, id)
            if before.orphanedBy != nil { return before }
            if let open = try db.fetchRow(
                sql: """
                    SELECT id, status FROM deployments
                    WHERE instance_id = ? AND status IN ('PROPOSED', 'APPROVED', 'PENDING', 'RUNNING') LIMIT 1
                    """, arguments: [id])
            {
                let deployment: String = open["id"]
                let status: String = open["status"]
                throw ConvergeError(
                    .failedPrecondition,
                    "instance \(id) has the \(status) deployment \(deployment); abort it or let it end first")
            }
            try db.run(
                sql: "UPDATE instances SET orphaned_by = ?, orphaned_at = ?, updated_at = ? WHERE id = ?",
                arguments: [actor, self.now, self.now, id])
            try self.audit(
                db, actor: actor, action: "instance.orphaned", kind: "Instance", id: id,
                before: ["status": .string(before.status.rawValue)],
                after: ["status": .string(before.status.rawValue), "orphanedBy": .string(actor)])
            return try Self.fetchInstance(db, id)
        }
    }
}
