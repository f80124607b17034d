import ConvergeCore
import Foundation
import GRDB

/// Rollouts (`converge env deploy|decommission`) and the expiry of previews. The database keeps one RUNNING rollout
/// per environment and an ended rollout as it ended; a new rollout replaces the running one in the same transaction
/// that aborts the replaced rollout's deployments that had not started.
extension SQLiteStore {
    static let rolloutsSchema = """
        CREATE TABLE rollouts (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            environment TEXT NOT NULL,
            action TEXT NOT NULL CHECK (action IN ('deploy', 'decommission')),
            status TEXT NOT NULL CHECK (status IN ('RUNNING', 'COMPLETED', 'FAILED', 'REPLACED')),
            wave INTEGER NOT NULL,
            items TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            finished_at INTEGER,
            error TEXT,
            replaced_by TEXT,
            delete_environment INTEGER NOT NULL DEFAULT 0
        );
        CREATE UNIQUE INDEX rollouts_one_running ON rollouts (environment) WHERE status = 'RUNNING';
        CREATE INDEX rollouts_by_environment ON rollouts (environment, seq);
        CREATE TRIGGER rollouts_ended_stay_ended BEFORE UPDATE ON rollouts WHEN OLD.status <> 'RUNNING'
        BEGIN
            SELECT RAISE(ABORT, 'the rollout has ended; it no longer changes');
        END;

        CREATE TABLE preview_expiries (
            environment TEXT PRIMARY KEY,
            expires_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX preview_expiries_by_time ON preview_expiries (expires_at);
        """

    public func startRollout(_ rollout: Rollout) async throws -> (rollout: Rollout, replaced: Rollout?) {
        try await transaction { db in
            var replaced: Rollout?
            if var running = try Self.fetchRollouts(
                db, where: "environment = ? AND status = 'RUNNING'", arguments: [rollout.environment]
            ).first {
                let before = running
                for item in running.items where item.outcome == .deploying {
                    guard let id = item.deploymentID else { continue }
                    let deployment = try Self.fetchDeployment(db, id)
                    guard [.proposed, .approved, .pending].contains(deployment.status) else { continue }
                    let reason = "rollout \(running.id) was replaced by rollout \(rollout.id)"
                    _ = try self.move(
                        db, deployment, to: .aborted, actor: rollout.createdBy, because: reason,
                        set: ["error": reason, "finished_at": self.now])
                }
                running.status = .replaced
                running.replacedBy = rollout.id
                running.finishedAt = date(self.now)
                try self.save(db, running, actor: rollout.createdBy, before: before)
                replaced = running
            }
            try db.run(
                sql: """
                    INSERT INTO rollouts (id, environment, action, status, wave, items, created_by, created_at,
                        updated_at, delete_environment)
                    VALUES (?, ?, ?, 'RUNNING', ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    rollout.id, rollout.environment, rollout.action.rawValue, rollout.wave,
                    Rollout.itemsValue(rollout.items).canonicalJSON, rollout.createdBy, self.now, self.now,
                    rollout.deleteEnvironment,
                ])
            let started = try Self.fetchRollouts(db, where: "id = ?", arguments: [rollout.id])[0]
            try self.audit(
                db, actor: rollout.createdBy, action: "rollout.started", kind: "Rollout", id: rollout.id, before: nil,
                after: started.auditValue)
            return (started, replaced)
        }
    }

    public func updateRollout(_ rollout: Rollout, from base: Rollout, actor: String) async throws -> Rollout? {
        try await transaction { db in
            guard
                let before = try Self.fetchRollouts(
                    db, where: "id = ? AND status = 'RUNNING'", arguments: [rollout.id]
                ).first, before.wave == base.wave, before.items == base.items
            else { return nil }
            var updated = rollout
            if rollout.status.isTerminal && updated.finishedAt == nil { updated.finishedAt = date(self.now) }
            try self.save(db, updated, actor: actor, before: before)
            return try Self.fetchRollouts(db, where: "id = ?", arguments: [rollout.id])[0]
        }
    }

    /// Writes a RUNNING rollout's progress, auditing its end.
    private func save(_ db: Database, _ rollout: Rollout, actor: String, before: Rollout) throws {
        try db.run(
            sql: """
                UPDATE rollouts SET status = ?, wave = ?, items = ?, updated_at = ?, finished_at = ?, error = ?,
                    replaced_by = ?
                WHERE id = ? AND status = 'RUNNING'
                """,
            arguments: [
                rollout.status.rawValue, rollout.wave, Rollout.itemsValue(rollout.items).canonicalJSON, now,
                rollout.finishedAt.map(unixMillis), rollout.error,
                rollout.replacedBy, rollout.id,
            ])
        if rollout.status.isTerminal {
            try audit(
                db, actor: actor, action: "rollout.\(rollout.status.rawValue.lowercased())", kind: "Rollout",
                id: rollout.id, before: before.auditValue, after: rollout.auditValue)
        }
    }

    public func rollout(_ id: String) async throws -> Rollout {
        try await read { db in
            guard let rollout = try Self.fetchRollouts(db, where: "id = ?", arguments: [id]).first else {
                throw ConvergeError(.notFound, "rollout \(id) not found")
            }
            return rollout
        }
    }

    public func rollouts(environment: String?, limit: Int) async throws -> [Rollout] {
        try Paging.checkLimit(limit)
        return try await read { db in
            if let environment {
                return try Self.fetchRollouts(
                    db, where: "environment = ?", arguments: [environment], order: "seq DESC", limit: limit)
            }
            return try Self.fetchRollouts(db, where: "1", arguments: [], order: "seq DESC", limit: limit)
        }
    }

    public func governingRollouts() async throws -> [Rollout] {
        try await read { db in
            try Self.fetchRollouts(
                db, where: "seq IN (SELECT MAX(seq) FROM rollouts GROUP BY environment)", arguments: [])
        }
    }

    public func setPreviewExpiry(of environment: String, to expiry: Date?) async throws {
        try await transaction { db in
            if let expiry {
                try db.run(
                    sql: """
                        INSERT INTO preview_expiries (environment, expires_at) VALUES (?, ?)
                        ON CONFLICT (environment) DO UPDATE SET expires_at = excluded.expires_at
                        """,
                    arguments: [environment, unixMillis(expiry)])
            } else {
                try db.run(sql: "DELETE FROM preview_expiries WHERE environment = ?", arguments: [environment])
            }
        }
    }

    public func previewExpiries(dueBy deadline: Date?) async throws -> [(environment: String, expiresAt: Date)] {
        try await read { db in
            let rows =
                if let deadline {
                    try db.fetchRows(
                        sql: "SELECT environment, expires_at FROM preview_expiries WHERE expires_at <= ? "
                            + "ORDER BY expires_at",
                        arguments: [unixMillis(deadline)])
                } else {
                    try db.fetchRows(
                        sql: "SELECT environment, expires_at FROM preview_expiries ORDER BY expires_at LIMIT 1")
                }
            return rows.map { row in (row["environment"], date(row["expires_at"])) }
        }
    }

    static func fetchRollouts(
        _ db: Database, where condition: String, arguments: StatementArguments, order: String = "seq",
        limit: Int? = nil
    ) throws -> [Rollout] {
        let sql =
            "SELECT * FROM rollouts WHERE \(condition) ORDER BY \(order)" + (limit.map { " LIMIT \($0)" } ?? "")
        return try db.fetchRows(sql: sql, arguments: arguments).map { row in
            var rollout = Rollout(
                id: row["id"], environment: row["environment"], action: Rollout.Action(rawValue: row["action"])!,
                items: try Rollout.items(from: Value(json: row["items"] as String)), createdBy: row["created_by"],
                createdAt: date(row["created_at"]), deleteEnvironment: row["delete_environment"])
            rollout.status = Rollout.Status(rawValue: row["status"])!
            rollout.wave = row["wave"]
            rollout.updatedAt = date(row["updated_at"])
            rollout.finishedAt = (row["finished_at"] as Int64?).map(date)
            rollout.error = row["error"]
            rollout.replacedBy = row["replaced_by"]
            return rollout
        }
    }
}

extension Rollout {
    /// The items as the store records them (JSON).
    static func itemsValue(_ items: [Rollout.Item]) -> Value {
        .array(
            items.map { item in
                var members: [String: Value] = [
                    "instance": .string(item.instance), "wave": .int(item.wave),
                    "outcome": .string(item.outcome.rawValue),
                ]
                members["deployment"] = item.deploymentID.map { .string($0) }
                members["message"] = item.message.map { .string($0) }
                return .object(members)
            })
    }

    /// Items read back from what `itemsValue` recorded.
    static func items(from value: Value) -> [Rollout.Item] {
        (value.arrayValue ?? []).compactMap { member in
            guard let instance = member["instance"]?.stringValue, case .int(let wave)? = member["wave"],
                let outcome = member["outcome"]?.stringValue.flatMap(Rollout.Outcome.init(rawValue:))
            else { return nil }
            var item = Rollout.Item(
                instance: instance, wave: wave, outcome: outcome, deploymentID: member["deployment"]?.stringValue)
            item.message = member["message"]?.stringValue
            return item
        }
    }

    /// What the audit log records of a rollout.
    var auditValue: Value {
        var members: [String: Value] = [
            "environment": .string(environment), "action": .string(action.rawValue), "status": .string(status.rawValue),
            "wave": .int(wave), "items": Self.itemsValue(items),
        ]
        members["error"] = error.map { .string($0) }
        members["replacedBy"] = replacedBy.map { .string($0) }
        return .object(members)
    }
}
