import ConvergeCore
import GRDB

/// What the API lists of the recorded state: instances and desired resources, by id, by cursor. Each page is one
/// range of a primary key or an index, whatever the table's size.
extension SQLiteStore {
    public func instances(
        environment: String?, drifted: Bool?, labels: LabelSelector?, after cursor: String?, limit: Int
    ) async throws -> Page<InstanceRecord> {
        try Paging.checkLimit(limit)
        return try await read { db in
            var conditions = ["id > ?"]
            var arguments: StatementArguments = [cursor ?? ""]
            if let environment {
                conditions.append("environment = ?")
                arguments += [environment]
            }
            if let drifted { conditions.append(drifted ? "drifted = 1" : "drifted = 0") }
            let selected = Self.labelConditions(
                labels, of: "(SELECT spec FROM resources WHERE kind = 'Instance' AND resources.id = instances.id)")
            conditions += selected.conditions
            arguments += selected.arguments
            // The drifted are few: their partial index drives, whatever else is asked.
            let index = drifted == true ? " INDEXED BY instances_drifted" : ""
            let ids = try String.fetchAll(
                db,
                sql: "SELECT id FROM instances\(index) WHERE \(conditions.joined(separator: " AND ")) ORDER BY id "
                    + "LIMIT ?",
                arguments: arguments + [limit + 1])
            let records = try ids.prefix(limit).compactMap { try Self.fetchInstanceIfAny(db, $0, details: true) }
            return Page(items: records, nextCursor: ids.count > limit ? records.last?.id : nil)
        }
    }

    public func resources(of kind: ResourceKind, labels: LabelSelector?, after cursor: String?, limit: Int)
        async throws -> Page<StoredResource>
    {
        try Paging.checkLimit(limit)
        let selected = Self.labelConditions(labels, of: "spec")
        return try await read { db in
            let rows = try db.fetchRows(
                sql: "SELECT * FROM resources WHERE "
                    + (["kind = ?", "id > ?"] + selected.conditions).joined(separator: " AND ")
                    + " ORDER BY id LIMIT ?",
                arguments: StatementArguments([kind.rawValue, cursor ?? ""]) + selected.arguments + [limit + 1])
            let items = try rows.prefix(limit).map(Self.storedResource(from:))
            return Page(items: items, nextCursor: rows.count > limit ? items.last?.resource.id : nil)
        }
    }

    public func resource(_ key: ResourceKey) async throws -> StoredResource {
        try readInPlace { db in
            guard
                let row = try db.fetchRow(
                    sql: "SELECT * FROM resources WHERE kind = ? AND id = ?", arguments: [key.kind.rawValue, key.id])
            else {
                throw ConvergeError(.notFound, "\(key.kind.rawValue.lowercased()) \(key.id) not found")
            }
            return try Self.storedResource(from: row)
        }
    }

    static func storedResource(from row: Row) throws -> StoredResource {
        StoredResource(
            resource: DesiredResource(
                kind: ResourceKind(rawValue: row["kind"])!, id: row["id"], spec: try Value(json: row["spec"]),
                source: (row["source"] as String?).flatMap(SourceLocation.init(parsing:))),
            generation: row["generation"], resourceVersion: row["resource_version"], createdAt: date(row["created_at"]))
    }

    /// The conditions under which the `labels` member of the JSON document `spec` (a column or a subquery) meets
    /// `selector`, each requirement one `EXISTS` over `json_each` (a missing document has no labels), with their
    /// arguments; none for no selector.
    static func labelConditions(_ selector: LabelSelector?, of spec: String) -> (
        conditions: [String], arguments: StatementArguments
    ) {
        var conditions: [String] = []
        var arguments: StatementArguments = []
        let label = "SELECT 1 FROM json_each(\(spec), '$.labels') WHERE key = ?"
        for requirement in selector?.requirements ?? [] {
            switch requirement {
            case .equals(let key, let value), .notEquals(let key, let value):
                let negation = if case .notEquals = requirement { "NOT " } else { "" }
                conditions.append("\(negation)EXISTS (\(label) AND value = ?)")
                arguments += [key, value]
            case .exists(let key), .notExists(let key):
                let negation = if case .notExists = requirement { "NOT " } else { "" }
                conditions.append("\(negation)EXISTS (\(label))")
                arguments += [key]
            }
        }
        return (conditions, arguments)
    }
}
