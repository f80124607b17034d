import ConvergeCore
import GRDB

/// What the API lists of the recorded state: instances and desired resources, by id, by cursor. Each page is one
/// range of a primary key or an index, whatever the table's size.
extension SQLiteStore {
    public func instances(environment: String?, drifted: Bool?, after cursor: String?, limit: Int) async throws
        -> Page<InstanceRecord>
    {
        try Paging.checkLimit(limit)
        return try await read { db in
            var conditions = ["id > ?"]
            var arguments: StatementArguments = [cursor ?? ""]
            if let environment {
                conditions.append("environment = ?")
                arguments += [environment]
            }
            if let drifted { conditions.append(drifted ? "drifted = 1" : "drifted = 0") }
            // The drifted are few: their partial index drives, whatever else is asked.
            let index = drifted == true ? " INDEXED BY instances_drifted" : ""
            let ids = try String.fetchAll(
                db,
                sql: "SELECT id FROM instances\(index) WHERE \(conditions.joined(separator: " AND ")) ORDER BY id "
                    + "LIMIT ?",
                arguments: arguments + [limit + 1])
            let records = try ids.prefix(limit).compactMap { try Self.fetchInstanceIfAny(db, $0) }
            return Page(items: records, nextCursor: ids.count > limit ? records.last?.id : nil)
        }
    }

    public func resources(of kind: ResourceKind, after cursor: String?, limit: Int) async throws
        -> Page<StoredResource>
    {
        try Paging.checkLimit(limit)
        return try await read { db in
            let rows = try db.fetchRows(
                sql: "SELECT * FROM resources WHERE kind = ? AND id > ? ORDER BY id LIMIT ?",
                arguments: [kind.rawValue, cursor ?? "", limit + 1])
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
            generation: row["generation"], resourceVersion: row["resource_version"])
    }
}
