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

    /// The conditions of a page newest first by `seq`: each given column equal to its value, and `seq` before
    /// `before`; their arguments, then `limit + 1` (the last binding, for the `LIMIT`), appended to `bindings`.
    static func pageConditions(
        _ equalities: [(column: String, value: String?)], before: Int64, limit: Int, bindings: inout PostgresBindings
    ) -> [String] {
        var conditions: [String] = []
        for (column, value) in equalities {
            guard let value else { continue }
            bindings.append(value)
            conditions.append("\(column) = $\(bindings.count)")
        }
        bindings.append(before)
        conditions.append("seq < $\(bindings.count)")
        bindings.append(Int64(limit + 1))
        return conditions
    }

    /// Every deployment that matches `filter`, newest first, by cursor. The planner picks the index of the most
    /// selective given field, each on `(column, seq)`; several statuses are one indexed range each, merged newest
    /// first (`UNION ALL` of limited branches), so a page stops reading once it is full.
    public func listDeployments(_ filter: DeploymentFilter, after cursor: String?, limit: Int) async throws
        -> Page<Deployment>
    {
        try Paging.checkLimit(limit)
        if filter.statuses?.isEmpty == true {
            throw ConvergeError(.invalidArgument, "a status filter must name at least one status")
        }
        let query = Self.deploymentListing(
            filter, before: try Paging.sequence(of: cursor, default: Int64.max), limit: limit)
        return try await read { connection in
            let items = try await self.fetchDeployments(connection, query)
            return Page(
                items: Array(items.prefix(limit)),
                nextCursor: items.count > limit ? String(items[limit - 1].sequence) : nil)
        }
    }

    /// The deployments that match `filter` before sequence `before`, newest first, at most `limit + 1`.
    static func deploymentListing(_ filter: DeploymentFilter, before: Int64, limit: Int) -> PostgresQuery {
        var bindings = PostgresBindings()
        let conditions = Self.pageConditions(
            [
                ("instance_id", filter.instanceID), ("environment", filter.environment),
                ("action", filter.action?.rawValue), ("created_by", filter.actor),
            ], before: before, limit: limit, bindings: &bindings)
        let limitParameter = "$\(bindings.count)"
        let statuses: [String?] = filter.statuses.map { $0.map(\.rawValue).sorted() } ?? [nil]
        let branches = statuses.map { status in
            var branch = conditions
            if let status {
                bindings.append(status)
                branch.append("status = $\(bindings.count)")
            }
            return "(SELECT * FROM deployments WHERE \(branch.joined(separator: " AND ")) ORDER BY seq DESC "
                + "LIMIT \(limitParameter))"
        }
        return PostgresQuery(
            unsafeSQL: "SELECT * FROM (\(branches.joined(separator: " UNION ALL "))) AS listed ORDER BY seq DESC "
                + "LIMIT \(limitParameter)",
            binds: bindings)
    }

    public func latestDeploymentChange() async throws -> Int64 {
        try await read { connection in
            try await connection.one(
                "SELECT COALESCE(MAX(seq), 0) FROM deployment_changes", Int64.self, logger: logger) ?? 0
        }
    }

    public func auditLog(_ filter: AuditFilter, after cursor: String?, limit: Int) async throws -> Page<AuditEntry> {
        try Paging.checkLimit(limit)
        let query = Self.auditListing(
            filter, before: try Paging.sequence(of: cursor, default: Int64.max), limit: limit)
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

    /// The audit log entries that match `filter` before sequence `before`, newest first, at most `limit + 1`.
    static func auditListing(_ filter: AuditFilter, before: Int64, limit: Int) -> PostgresQuery {
        var bindings = PostgresBindings()
        let conditions = Self.pageConditions(
            [
                ("target_id", filter.targetID), ("actor", filter.actor), ("action", filter.action),
                ("target_kind", filter.targetKind),
            ], before: before, limit: limit, bindings: &bindings)
        return PostgresQuery(
            unsafeSQL: "SELECT * FROM audit_log WHERE \(conditions.joined(separator: " AND ")) ORDER BY seq DESC "
                + "LIMIT $\(bindings.count)", binds: bindings)
    }

    public func instances(
        environment: String?, drifted: Bool?, labels: LabelSelector?, after cursor: String?, limit: Int
    ) async throws -> Page<InstanceRecord> {
        try Paging.checkLimit(limit)
        var bindings = PostgresBindings()
        bindings.append(cursor ?? "")
        var conditions = ["id > $1"]
        if let environment {
            bindings.append(environment)
            conditions.append("environment = $\(bindings.count)")
        }
        if let drifted { conditions.append(drifted ? "drifted" : "NOT drifted") }
        conditions += Self.labelConditions(
            labels, of: "(SELECT spec FROM resources WHERE kind = 'Instance' AND resources.id = instances.id)",
            bindings: &bindings)
        bindings.append(Int64(limit + 1))
        let query = PostgresQuery(
            unsafeSQL: Self.instanceDetailsSQL + " WHERE \(conditions.joined(separator: " AND ")) ORDER BY id "
                + "LIMIT $\(bindings.count)", binds: bindings)
        return try await read { connection in
            let rows = try await connection.rows(query, logger: logger)
            let records = try rows.prefix(limit).map { try Self.instanceRecord(from: $0, details: true) }
            return Page(items: records, nextCursor: rows.count > limit ? records.last?.id : nil)
        }
    }

    public func resources(of kind: ResourceKind, labels: LabelSelector?, after cursor: String?, limit: Int)
        async throws -> Page<StoredResource>
    {
        try Paging.checkLimit(limit)
        var bindings = PostgresBindings()
        bindings.append(kind.rawValue)
        bindings.append(cursor ?? "")
        let conditions = ["kind = $1", "id > $2"] + Self.labelConditions(labels, of: "spec", bindings: &bindings)
        bindings.append(Int64(limit + 1))
        let query = PostgresQuery(
            unsafeSQL: "SELECT * FROM resources WHERE \(conditions.joined(separator: " AND ")) ORDER BY id "
                + "LIMIT $\(bindings.count)", binds: bindings)
        return try await read { connection in
            let rows = try await connection.rows(query, logger: logger)
            let items = try rows.prefix(limit).map(Self.storedResource(from:))
            return Page(items: items, nextCursor: rows.count > limit ? items.last?.resource.id : nil)
        }
    }

    /// The conditions under which the `labels` member of the JSON text `spec` (a column or a subquery) meets
    /// `selector`, their arguments appended to `bindings`; none for no selector. A missing document or label is
    /// NULL, so `!=` and `!` hold for it, as in Kubernetes.
    static func labelConditions(_ selector: LabelSelector?, of spec: String, bindings: inout PostgresBindings)
        -> [String]
    {
        (selector?.requirements ?? []).map { requirement in
            let label = "(\(spec)::jsonb -> 'labels' ->> $\(bindings.count + 1))"
            switch requirement {
            case .equals(let key, let value), .notEquals(let key, let value):
                bindings.append(key)
                bindings.append(value)
                let comparison = if case .equals = requirement { "=" } else { "IS DISTINCT FROM" }
                return "\(label) \(comparison) $\(bindings.count)"
            case .exists(let key), .notExists(let key):
                bindings.append(key)
                let test = if case .exists = requirement { "IS NOT NULL" } else { "IS NULL" }
                return "\(label) \(test)"
            }
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
    public func startRollout(_ rollout: Rollout) async throws -> (rollout: Rollout, replaced: Rollout?) {
        try await transaction { connection in
            var replaced: Rollout?
            if var running = try await self.fetchRollouts(
                connection,
                "SELECT * FROM rollouts WHERE environment = \(rollout.environment) AND status = 'RUNNING' FOR UPDATE"
            ).first {
                let before = running
                for item in running.items where item.outcome == .deploying {
                    guard let id = item.deploymentID else { continue }
                    let deployment = try await self.fetchDeployment(connection, id)
                    guard [.proposed, .approved, .pending].contains(deployment.status) else { continue }
                    let reason = "rollout \(running.id) was replaced by rollout \(rollout.id)"
                    _ = try await self.move(
                        connection, deployment, to: .aborted, actor: rollout.createdBy, because: reason,
                        set: ["error": reason, "finished_at": self.now])
                }
                running.status = .replaced
                running.replacedBy = rollout.id
                running.finishedAt = date(self.now)
                try await self.save(connection, running, actor: rollout.createdBy, before: before)
                replaced = running
            }
            try await connection.query(
                """
                INSERT INTO rollouts (id, environment, action, status, wave, items, created_by, created_at, updated_at,
                    delete_environment)
                VALUES (\(rollout.id), \(rollout.environment), \(rollout.action.rawValue), 'RUNNING', \(rollout.wave),
                    \(Rollout.itemsValue(rollout.items).canonicalJSON), \(rollout.createdBy), \(self.now), \(self.now),
                    \(rollout.deleteEnvironment))
                """, logger: self.logger)
            let started = try await self.fetchRollouts(connection, "SELECT * FROM rollouts WHERE id = \(rollout.id)")[0]
            try await self.audit(
                connection, actor: rollout.createdBy, action: "rollout.started", kind: "Rollout", id: rollout.id,
                before: nil, after: started.auditValue)
            return (started, replaced)
        }
    }

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
