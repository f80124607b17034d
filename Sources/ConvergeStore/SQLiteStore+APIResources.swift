import ConvergeCore
import GRDB

/// Resources applied through the API: their manifest documents, kept apart from the desired state so that a load of
/// the manifests directory never removes them. The engine loads them with the files; the desired state then records
/// them like any other resource, declared at `api:<Kind>/<id>`.
extension SQLiteStore {
    static let apiResourcesSchema = """
        CREATE TABLE api_resources (
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            document TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (kind, id)
        ) WITHOUT ROWID;
        """

    public func apiDocuments() async throws -> [APIResourceDocument] {
        try await read { db in
            try db.fetchRows(sql: "SELECT kind, id, document FROM api_resources ORDER BY kind, id").compactMap { row in
                guard let kind = ResourceKind(rawValue: row["kind"]) else { return nil }
                return APIResourceDocument(key: ResourceKey(kind, row["id"]), document: row["document"])
            }
        }
    }

    public func putAPIDocuments(
        _ documents: [APIResourceDocument], expectedVersions: [ResourceKey: Int64], actor: String
    ) async throws -> Set<ResourceKey> {
        try await transaction { db in
            var created: Set<ResourceKey> = []
            for document in documents where try self.put(db, document, expectedVersions[document.key], actor: actor) {
                created.insert(document.key)
            }
            return created
        }
    }

    /// Writes one document in the caller's transaction; returns whether it was new.
    private func put(_ db: Database, _ document: APIResourceDocument, _ expectedVersion: Int64?, actor: String) throws
        -> Bool
    {
        try Self.checkVersion(db, document.key, expected: expectedVersion)
        let before = try db.fetchRow(
            sql: "SELECT document FROM api_resources WHERE kind = ? AND id = ?",
            arguments: [document.key.kind.rawValue, document.key.id])
        let now = self.now
        try db.run(
            sql: """
                INSERT INTO api_resources (kind, id, document, created_by, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (kind, id) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at
                """,
            arguments: [document.key.kind.rawValue, document.key.id, document.document, actor, now, now])
        try self.audit(
            db, actor: actor, action: "resource.applied", kind: document.key.kind.rawValue, id: document.key.id,
            before: try (before?["document"] as String?).map(Value.init(json:)),
            after: try Value(json: document.document))
        return before == nil
    }

    public func deleteAPIDocuments(_ keys: [ResourceKey], expectedVersions: [ResourceKey: Int64], actor: String)
        async throws
    {
        try await transaction { db in
            for key in keys { try self.delete(db, key, expectedVersions[key], actor: actor) }
        }
    }

    /// Deletes one document in the caller's transaction.
    private func delete(_ db: Database, _ key: ResourceKey, _ expectedVersion: Int64?, actor: String) throws {
        try Self.checkVersion(db, key, expected: expectedVersion)
        guard
            let before = try db.fetchRow(
                sql: "SELECT document FROM api_resources WHERE kind = ? AND id = ?",
                arguments: [key.kind.rawValue, key.id])
        else {
            throw ConvergeError(
                .notFound, "\(key.kind.rawValue.lowercased()) \(key.id) was not applied through the API")
        }
        try db.run(
            sql: "DELETE FROM api_resources WHERE kind = ? AND id = ?", arguments: [key.kind.rawValue, key.id])
        try self.audit(
            db, actor: actor, action: "resource.deleted", kind: key.kind.rawValue, id: key.id,
            before: try Value(json: before["document"]), after: nil)
    }

    /// Refuses a write made against another version of `key` than the recorded one (`aborted`); nil expects
    /// nothing.
    static func checkVersion(_ db: Database, _ key: ResourceKey, expected: Int64?) throws {
        guard let expected else { return }
        let current = try db.fetchValue(
            Int64.self, sql: "SELECT resource_version FROM resources WHERE kind = ? AND id = ?",
            arguments: [key.kind.rawValue, key.id])
        guard current == expected else {
            throw ConvergeError.resourceVersionConflict(key, expected: expected, current: current)
        }
    }
}

extension ConvergeError {
    /// A write made against resource version `expected` of `key` while the recorded one is `current` (nil: none).
    static func resourceVersionConflict(_ key: ResourceKey, expected: Int64, current: Int64?) -> ConvergeError {
        ConvergeError(
            .aborted,
            "\(key) changed: resourceVersion \(expected) was given, the current one is "
                + (current.map(String.init) ?? "none (it does not exist)"),
            details: ["resourceVersion": current.map { .string(String($0)) } ?? .null])
    }
}
