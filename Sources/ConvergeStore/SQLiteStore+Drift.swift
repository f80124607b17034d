import ConvergeCore
import GRDB

/// Drift checks: which instances a check may plan, and which instances are drifted, read from indexes.
extension SQLiteStore {
    /// `instances.drifted` mirrors the instance's `Drifted` condition; `updateInstanceStatus` writes it with the
    /// conditions, so listing and counting drifted instances read a partial index of the few that are, never every
    /// instance's conditions. A drift check's plan (metadata `driftCheck: true`) is refused unless it plans exactly
    /// the recorded configuration of a PROVISIONED, managed instance that has no open deployment: a change created
    /// between the checker's read and its insert can neither be planned behind nor raced.
    static let driftSchema = """
        ALTER TABLE instances ADD COLUMN drifted INTEGER NOT NULL DEFAULT 0 CHECK (drifted IN (0, 1));
        CREATE INDEX instances_drifted ON instances (id) WHERE drifted = 1;
        CREATE TRIGGER deployments_drift_check_plans_what_is_applied BEFORE INSERT ON deployments
        WHEN NEW.action = 'plan' AND json_valid(NEW.md_metadata)
            AND json_extract(NEW.md_metadata, '$.driftCheck') IS 1
            AND (NOT EXISTS (
                    SELECT 1 FROM instances AS i
                    WHERE i.id = NEW.instance_id AND i.status = 'PROVISIONED' AND i.orphaned_by IS NULL
                        AND i.params IS NEW.params AND i.connection_params IS NEW.connection_params
                        AND i.version IS NEW.version)
                OR EXISTS (
                    SELECT 1 FROM deployments AS d
                    WHERE d.instance_id = NEW.instance_id AND d.status IN \(openStatuses)))
        BEGIN
            SELECT RAISE(ABORT, 'a drift check plans what a provisioned, managed instance without open deployments applied');
        END;
        """

    /// Whether an instance may be drift-checked now: PROVISIONED, managed, and without an open deployment (read from
    /// the partial index of open deployments).
    static let driftCheckableSQL = """
        SELECT EXISTS (SELECT 1 FROM instances AS i
            WHERE i.id = ? AND i.status = 'PROVISIONED' AND i.orphaned_by IS NULL
              AND NOT EXISTS (SELECT 1 FROM deployments AS d INDEXED BY deployments_one_open_per_hash
                  WHERE d.instance_id = i.id AND d.status IN \(openStatuses)))
        """

    /// How many instances are drifted, from the partial index.
    static let driftedCountSQL = "SELECT COUNT(*) FROM instances INDEXED BY instances_drifted WHERE drifted = 1"

    public func driftCheckCandidate(_ id: String) async throws -> InstanceRecord? {
        try await read { db in
            guard try db.fetchValue(Bool.self, sql: Self.driftCheckableSQL, arguments: [id]) == true else {
                return nil
            }
            return try Self.fetchInstanceIfAny(db, id, outputs: false)
        }
    }

    public func driftedInstanceCount() async throws -> Int {
        try await read { db in try db.fetchValue(Int.self, sql: Self.driftedCountSQL) ?? 0 }
    }
}
