import ConvergeCore
import Foundation
import GRDB

/// A listing query and its arguments.
struct ListingQuery {
    var sql: String
    var arguments: StatementArguments
}

extension SQLiteStore {
    /// The deployments that match `filter` before sequence `before`, newest first, at most `limit`.
    ///
    /// One index drives the read, in `seq` order so nothing is sorted, and the other fields filter what it yields;
    /// the most selective given field drives: the instance, then statuses that are all open (few deployments are),
    /// then the environment, the creator, any statuses, the action. Several statuses on the status index are one
    /// range each, merged newest first, so a page stops reading once it is full. The SQL text depends only on which
    /// fields are given and how many statuses, so the statement cache stays small.
    static func deploymentListing(_ filter: DeploymentFilter, before: Int64, limit: Int) -> ListingQuery {
        let statuses = filter.statuses.map { $0.map(\.rawValue).sorted() }
        let open: Set<Deployment.Status> = [.proposed, .approved, .pending, .running]
        let index: String? =
            if filter.instanceID != nil {
                "deployments_history"
            } else if let given = filter.statuses, given.isSubset(of: open) {
                "deployments_by_status_seq"
            } else if filter.environment != nil {
                "deployments_by_environment"
            } else if filter.actor != nil {
                "deployments_by_creator"
            } else if statuses != nil {
                "deployments_by_status_seq"
            } else if filter.action != nil {
                "deployments_by_action"
            } else {
                nil
            }
        var conditions: [String] = []
        var arguments: StatementArguments = []
        for (column, value) in [
            ("instance_id", filter.instanceID), ("environment", filter.environment),
            ("action", filter.action?.rawValue), ("created_by", filter.actor),
        ] {
            guard let value else { continue }
            conditions.append("\(column) = ?")
            arguments += [value]
        }
        let from = "SELECT * FROM deployments" + (index.map { " INDEXED BY \($0)" } ?? "") + " WHERE "
        let sql: String
        var allArguments: StatementArguments = []
        if let statuses, index == "deployments_by_status_seq" {
            sql = statuses.map { _ in from + (conditions + ["status = ?", "seq < ?"]).joined(separator: " AND ") }
                .joined(separator: " UNION ALL ")
            for status in statuses { allArguments += arguments + [status, before] }
        } else {
            if let statuses {
                conditions.append("status IN (" + statuses.map { _ in "?" }.joined(separator: ", ") + ")")
                arguments += StatementArguments(statuses)
            }
            sql = from + (conditions + ["seq < ?"]).joined(separator: " AND ")
            allArguments = arguments + [before]
        }
        return ListingQuery(sql: sql + " ORDER BY seq DESC LIMIT ?", arguments: allArguments + [limit])
    }

    /// The audit log entries that match `filter` before sequence `before`, newest first, at most `limit`; driven by
    /// the index of the most selective given field (the target id, the actor, the action, the target kind), each on
    /// `(column, seq)`, so the order needs no sort.
    static func auditListing(_ filter: AuditFilter, before: Int64, limit: Int) -> ListingQuery {
        let index: String? =
            if filter.targetID != nil {
                "audit_log_by_target"
            } else if filter.actor != nil {
                "audit_log_by_actor"
            } else if filter.action != nil {
                "audit_log_by_action"
            } else if filter.targetKind != nil {
                "audit_log_by_target_kind"
            } else {
                nil
            }
        var conditions: [String] = []
        var arguments: StatementArguments = []
        for (column, value) in [
            ("target_id", filter.targetID), ("actor", filter.actor), ("action", filter.action),
            ("target_kind", filter.targetKind),
        ] {
            guard let value else { continue }
            conditions.append("\(column) = ?")
            arguments += [value]
        }
        let sql =
            "SELECT * FROM audit_log" + (index.map { " INDEXED BY \($0)" } ?? "") + " WHERE "
            + (conditions + ["seq < ?"]).joined(separator: " AND ") + " ORDER BY seq DESC LIMIT ?"
        return ListingQuery(sql: sql, arguments: arguments + [before, limit])
    }

    /// The change feed after a sequence, in order.
    static let changesSQL = "SELECT * FROM deployment_changes WHERE seq > ? ORDER BY seq LIMIT ?"

    /// The newest change's sequence, or 0.
    static let latestChangeSQL = "SELECT COALESCE(MAX(seq), 0) FROM deployment_changes"

    public func listDeployments(_ filter: DeploymentFilter, after cursor: String?, limit: Int) async throws
        -> Page<Deployment>
    {
        try Paging.checkLimit(limit)
        if filter.statuses?.isEmpty == true {
            throw ConvergeError(.invalidArgument, "a status filter must name at least one status")
        }
        let query = Self.deploymentListing(
            filter, before: try Paging.sequence(of: cursor, default: Int64.max), limit: limit + 1)
        return try await read { db in
            let items = try Self.fetchDeployments(db, sql: query.sql, arguments: query.arguments)
            return Page(
                items: Array(items.prefix(limit)),
                nextCursor: items.count > limit ? String(items[limit - 1].sequence) : nil)
        }
    }

    public func deploymentChanges(after sequence: Int64, limit: Int) async throws -> [DeploymentChange] {
        try Paging.checkLimit(limit)
        guard sequence >= 0 else {
            throw ConvergeError(.invalidArgument, "a change sequence is not negative, got \(sequence)")
        }
        return try await read { db in
            try db.fetchRows(sql: Self.changesSQL, arguments: [sequence, limit]).map { row in
                DeploymentChange(
                    sequence: row["seq"], deploymentID: row["deployment_id"], instanceID: row["instance_id"],
                    status: Deployment.Status(rawValue: row["status"])!, at: date(row["at"]))
            }
        }
    }

    public func latestDeploymentChange() async throws -> Int64 {
        try await read { db in try db.fetchValue(Int64.self, sql: Self.latestChangeSQL) ?? 0 }
    }

    public func auditLog(_ filter: AuditFilter, after cursor: String?, limit: Int) async throws -> Page<AuditEntry> {
        try Paging.checkLimit(limit)
        let query = Self.auditListing(
            filter, before: try Paging.sequence(of: cursor, default: Int64.max), limit: limit + 1)
        return try await read { db in
            let rows = try db.fetchRows(sql: query.sql, arguments: query.arguments)
            let items = try rows.prefix(limit).map { row in
                AuditEntry(
                    sequence: row["seq"], at: date(row["at"]), actor: row["actor"], action: row["action"],
                    targetKind: row["target_kind"], targetID: row["target_id"],
                    before: try (row["before"] as String?).map(Value.init(json:)),
                    after: try (row["after"] as String?).map(Value.init(json:)))
            }
            return Page(items: items, nextCursor: rows.count > limit ? String(items[limit - 1].sequence) : nil)
        }
    }
}
