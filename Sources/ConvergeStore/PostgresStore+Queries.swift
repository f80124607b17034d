import ConvergeCore
import Foundation
import PostgresNIO

/// What the API lists, the change feed and the audit log, on PostgreSQL: each page one range of an index, as on
/// SQLite.
extension PostgresStore {
    public func deploymentChanges(after sequence: Int64, limit: Int) async throws -> [DeploymentChange] {
        try Paging.checkLimit(limit)
        guard sequence >= 0 else {
            throw ConvergeError(.invalidArgument, "a change sequence is not negative, got \(sequence)")
        }
        return try await read { connection in
            try await connection.rows(
                "SELECT * FROM deployment_changes WHERE seq > \(sequence) ORDER BY seq LIMIT \(limit)",
                logger: logger
            ).map { row in
                DeploymentChange(
                    sequence: try row.value("seq"), deploymentID: try row.value("deployment_id"),
                    instanceID: try row.value("instance_id"),
                    status: Deployment.Status(rawValue: try row.value("status"))!, at: date(try row.value("at")))
            }
        }
    }

    public func latestDeploymentChange() async throws -> Int64 {
        try await read { connection in
            try await connection.one(
                "SELECT COALESCE(MAX(seq), 0) FROM deployment_changes", Int64.self, logger: logger) ?? 0
        }
    }

    public func auditLog(_ filter: AuditFilter, after cursor: String?, limit: Int) async throws -> Page<AuditEntry> {
        try Paging.checkLimit(limit)
        let before = try Paging.sequence(of: cursor, default: Int64.max)
        var conditions: [String] = []
        var bindings = PostgresBindings()
        for (column, value) in [
            ("target_id", filter.targetID), ("actor", filter.actor), ("action", filter.action),
            ("target_kind", filter.targetKind),
        ] {
            guard let value else { continue }
            bindings.append(value)
            conditions.append("\(column) = $\(bindings.count)")
        }
        bindings.append(before)
        conditions.append("seq < $\(bindings.count)")
        bindings.append(Int64(limit + 1))
        let query = PostgresQuery(
            unsafeSQL: "SELECT * FROM audit_log WHERE \(conditions.joined(separator: " AND ")) ORDER BY seq DESC "
                + "LIMIT $\(bindings.count)", binds: bindings)
        return try await read { connection in
            let rows = try await connection.rows(query, logger: logger)
            let items = try rows.prefix(limit).map { row in
                AuditEntry(
                    sequence: try row.value("seq"), at: date(try row.value("at")), actor: try row.value("actor"),
                    action: try row.value("action"), targetKind: try row.value("target_kind"),
                    targetID: try row.value("target_id"),
                    before: try row.value("before", as: String?.self).map(Value.init(json:)),
                    after: try row.value("after", as: String?.self).map(Value.init(json:)))
            }
            return Page(items: items, nextCursor: rows.count > limit ? String(items[limit - 1].sequence) : nil)
        }
    }

    public func instances(environment: String?, drifted: Bool?, after cursor: String?, limit: Int) async throws
        -> Page<InstanceRecord>
    {
        try Paging.checkLimit(limit)
        return try await read { connection in
            let rows = try await connection.rows(
                """
                SELECT * FROM instances
                WHERE id > \(cursor ?? "") AND (\(environment)::text IS NULL OR environment = \(environment))
                    AND (\(drifted)::boolean IS NULL OR drifted = \(drifted))
                ORDER BY id LIMIT \(limit + 1)
                """, logger: logger)
            let records = try rows.prefix(limit).map { try Self.instanceRecord(from: $0) }
            return Page(items: records, nextCursor: rows.count > limit ? records.last?.id : nil)
        }
    }

    public func resources(of kind: ResourceKind, after cursor: String?, limit: Int) async throws
        -> Page<StoredResource>
    {
        try Paging.checkLimit(limit)
        return try await read { connection in
            let rows = try await connection.rows(
                """
                SELECT * FROM resources WHERE kind = \(kind.rawValue) AND id > \(cursor ?? "") ORDER BY id
                LIMIT \(limit + 1)
                """, logger: logger)
            let items = try rows.prefix(limit).map(Self.storedResource(from:))
            return Page(items: items, nextCursor: rows.count > limit ? items.last?.resource.id : nil)
        }
    }

    public func resource(_ key: ResourceKey) async throws -> StoredResource {
        try await read { connection in
            guard
                let row = try await connection.row(
                    "SELECT * FROM resources WHERE kind = \(key.kind.rawValue) AND id = \(key.id)", logger: logger)
            else {
                throw ConvergeError(.notFound, "\(key.kind.rawValue.lowercased()) \(key.id) not found")
            }
            return try Self.storedResource(from: row)
        }
    }
}

/// Rollouts and preview expiries on PostgreSQL, as on SQLite.
extension PostgresStore {
    public func updateRollout(_ rollout: Rollout, from base: Rollout, actor: String) async throws -> Rollout? {
        try await transaction { connection in
            guard
                let before = try await self.fetchRollouts(
                    connection, "SELECT * FROM rollouts WHERE id = \(rollout.id) AND status = 'RUNNING'"
                ).first, before.wave == base.wave, before.items == base.items
            else { return nil }
            var updated = rollout
            if rollout.status.isTerminal && updated.finishedAt == nil { updated.finishedAt = date(self.now) }
            try await self.save(connection, updated, actor: actor, before: before)
            return try await self.fetchRollouts(connection, "SELECT * FROM rollouts WHERE id = \(rollout.id)")[0]
        }
    }

    /// Writes a RUNNING rollout's progress, auditing its end.
    func save(_ connection: PostgresConnection, _ rollout: Rollout, actor: String, before: Rollout) async throws {
        let finishedAt = rollout.finishedAt.map(unixMillis)
        try await connection.query(
            """
            UPDATE rollouts SET status = \(rollout.status.rawValue), wave = \(rollout.wave),
                items = \(Rollout.itemsValue(rollout.items).canonicalJSON), updated_at = \(now),
                finished_at = \(finishedAt), error = \(rollout.error), replaced_by = \(rollout.replacedBy)
            WHERE id = \(rollout.id) AND status = 'RUNNING'
            """, logger: logger)
        if rollout.status.isTerminal {
            try await audit(
                connection, actor: actor, action: "rollout.\(rollout.status.rawValue.lowercased())", kind: "Rollout",
                id: rollout.id, before: before.auditValue, after: rollout.auditValue)
        }
    }

    public func rollout(_ id: String) async throws -> Rollout {
        try await read { connection in
            guard
                let rollout = try await self.fetchRollouts(connection, "SELECT * FROM rollouts WHERE id = \(id)").first
            else {
                throw ConvergeError(.notFound, "rollout \(id) not found")
            }
            return rollout
        }
    }

    public func rollouts(environment: String?, limit: Int) async throws -> [Rollout] {
        try Paging.checkLimit(limit)
        return try await read { connection in
            try await self.fetchRollouts(
                connection,
                """
                SELECT * FROM rollouts WHERE \(environment)::text IS NULL OR environment = \(environment)
                ORDER BY seq DESC LIMIT \(limit)
                """)
        }
    }

    public func governingRollouts() async throws -> [Rollout] {
        try await read { connection in
            try await self.fetchRollouts(
                connection,
                "SELECT DISTINCT ON (environment) * FROM rollouts ORDER BY environment, seq DESC")
        }
    }

    public func setPreviewExpiry(of environment: String, to expiry: Date?) async throws {
        try await transaction { connection in
            if let expiry {
                let millis = unixMillis(expiry)
                try await connection.query(
                    """
                    INSERT INTO preview_expiries (environment, expires_at) VALUES (\(environment), \(millis))
                    ON CONFLICT (environment) DO UPDATE SET expires_at = excluded.expires_at
                    """, logger: logger)
            } else {
                try await connection.query(
                    "DELETE FROM preview_expiries WHERE environment = \(environment)", logger: logger)
            }
        }
    }

    public func previewExpiries(dueBy deadline: Date?) async throws -> [(environment: String, expiresAt: Date)] {
        try await read { connection in
            let rows =
                if let deadline {
                    try await connection.rows(
                        """
                        SELECT environment, expires_at FROM preview_expiries
                        WHERE expires_at <= \(unixMillis(deadline))
                        ORDER BY expires_at
                        """, logger: logger)
                } else {
                    try await connection.rows(
                        "SELECT environment, expires_at FROM preview_expiries ORDER BY expires_at LIMIT 1",
                        logger: logger)
                }
            return try rows.map { row in (try row.value("environment"), date(try row.value("expires_at"))) }
        }
    }

    /// The rollouts `query` selects (whole rows of `rollouts`).
    func fetchRollouts(_ connection: PostgresConnection, _ query: PostgresQuery) async throws -> [Rollout] {
        try await connection.rows(query, logger: logger).map { row in
            var rollout = Rollout(
                id: try row.value("id"), environment: try row.value("environment"),
                action: Rollout.Action(rawValue: try row.value("action"))!,
                items: Rollout.items(from: try Value(json: try row.value("items"))),
                createdBy: try row.value("created_by"), createdAt: date(try row.value("created_at")),
                deleteEnvironment: try row.value("delete_environment"))
            rollout.status = Rollout.Status(rawValue: try row.value("status"))!
            rollout.wave = Int(try row.value("wave", as: Int32.self))
            rollout.updatedAt = date(try row.value("updated_at"))
            rollout.finishedAt = try row.value("finished_at", as: Int64?.self).map(date)
            rollout.error = try row.value("error")
            rollout.replacedBy = try row.value("replaced_by")
            return rollout
        }
    }
}
