import ConvergeCore
import Foundation
import PostgresNIO

/// The desired state and what the reconciler records of each instance, on PostgreSQL: as SQLiteStore does it.
extension PostgresStore: DesiredStateStore {
    public func replaceDesiredState(_ resources: [DesiredResource], expectedVersion: Int64?, actor: String) async throws
        -> DesiredStateRevision
    {
        let keys = resources.map { ResourceKey($0.kind, $0.id) }
        if let duplicate = Dictionary(grouping: keys, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw ConvergeError(.invalidArgument, "\(duplicate) is given twice")
        }
        return try await transaction { connection in
            var existing: [ResourceKey: (hash: String, source: String?)] = [:]
            for row in try await connection.rows("SELECT kind, id, spec_hash, source FROM resources", logger: logger) {
                guard let kind = ResourceKind(rawValue: try row.value("kind")) else { continue }
                existing[ResourceKey(kind, try row.value("id"))] = (try row.value("spec_hash"), try row.value("source"))
            }
            return try await self.writeDesiredState(
                connection, resources, removing: Set(existing.keys).subtracting(keys).sorted(), existing: existing,
                expectedVersion: expectedVersion, actor: actor)
        }
    }

    public func updateDesiredState(
        _ changed: [DesiredResource], removing removed: [ResourceKey], expectedVersion: Int64, actor: String
    ) async throws -> DesiredStateRevision {
        let keys = changed.map { ResourceKey($0.kind, $0.id) }
        if let duplicate = Dictionary(grouping: keys + removed, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw ConvergeError(.invalidArgument, "\(duplicate) is given twice")
        }
        let all = keys + removed
        return try await transaction { connection in
            var existing: [ResourceKey: (hash: String, source: String?)] = [:]
            let rows = try await connection.rows(
                """
                SELECT r.kind, r.id, r.spec_hash, r.source
                FROM unnest(\(all.map(\.kind.rawValue)), \(all.map(\.id))) AS k (kind, id)
                JOIN resources AS r ON r.kind = k.kind AND r.id = k.id
                """, logger: logger)
            for row in rows {
                guard let kind = ResourceKind(rawValue: try row.value("kind")) else { continue }
                existing[ResourceKey(kind, try row.value("id"))] = (try row.value("spec_hash"), try row.value("source"))
            }
            return try await self.writeDesiredState(
                connection, changed, removing: removed.filter { existing[$0] != nil }, existing: existing,
                expectedVersion: expectedVersion, actor: actor)
        }
    }

    /// Writes `resources` and deletes `removed` given what is recorded of them, checking the desired-state version
    /// first, and bumps the version when anything changed.
    private func writeDesiredState(
        _ connection: PostgresConnection, _ resources: [DesiredResource], removing removed: [ResourceKey],
        existing: [ResourceKey: (hash: String, source: String?)], expectedVersion: Int64?, actor: String
    ) async throws -> DesiredStateRevision {
        let version = try await connection.one(
            "SELECT value FROM counters WHERE name = 'desired_state_version'", Int64.self, logger: logger)!
        if let expectedVersion, expectedVersion != version {
            throw ConvergeError(
                .aborted, "the desired state changed: expected version \(expectedVersion), found \(version)")
        }
        var added: [ResourceKey] = []
        var changed: [ResourceKey] = []
        let now = self.now
        for resource in resources {
            let key = ResourceKey(resource.kind, resource.id)
            let hash = resource.spec.canonicalHash
            let source = resource.source?.description
            if let recorded = existing[key] {
                guard recorded.hash != hash || recorded.source != source else { continue }
                if recorded.hash != hash { changed.append(key) }
                let resourceVersion = try await increment(connection, "resource_version")
                try await connection.query(
                    """
                    UPDATE resources SET spec = \(resource.spec.canonicalJSON), spec_hash = \(hash), source = \(source),
                        resource_version = \(resourceVersion), updated_at = \(now),
                        generation = generation + CASE WHEN spec_hash = \(hash) THEN 0 ELSE 1 END
                    WHERE kind = \(resource.kind.rawValue) AND id = \(resource.id)
                    """, logger: logger)
            } else {
                added.append(key)
                let resourceVersion = try await increment(connection, "resource_version")
                try await connection.query(
                    """
                    INSERT INTO resources (kind, id, spec, spec_hash, generation, resource_version, source, created_at,
                        updated_at)
                    VALUES (\(resource.kind.rawValue), \(resource.id), \(resource.spec.canonicalJSON), \(hash), 1,
                        \(resourceVersion), \(source), \(now), \(now))
                    """, logger: logger)
            }
            if resource.kind == .instance {
                let environment = resource.spec["environment"]?.stringValue ?? ""
                let bundle = resource.spec["bundle"]?.stringValue ?? ""
                try await connection.query(
                    """
                    INSERT INTO instances (id, environment, bundle, status, created_at, updated_at)
                    VALUES (\(resource.id), \(environment), \(bundle), 'INITIALIZED', \(now), \(now))
                    ON CONFLICT (id) DO UPDATE SET bundle = excluded.bundle
                    """, logger: logger)
            }
        }
        if !removed.isEmpty {
            try await connection.query(
                """
                DELETE FROM resources AS r
                USING unnest(\(removed.map(\.kind.rawValue)), \(removed.map(\.id))) AS k (kind, id)
                WHERE r.kind = k.kind AND r.id = k.id
                """, logger: logger)
        }
        guard !(added.isEmpty && changed.isEmpty && removed.isEmpty) else {
            return DesiredStateRevision(version: version, added: [], changed: [], removed: [])
        }
        let revision = DesiredStateRevision(
            version: try await increment(connection, "desired_state_version"), added: added.sorted(),
            changed: changed.sorted(), removed: removed.sorted())
        try await audit(
            connection, actor: actor, action: "desiredState.replace", kind: "DesiredState", id: "desired-state",
            before: ["version": .int(Int(version))], after: revision.auditValue)
        return revision
    }

    public func desiredState() async throws -> (version: Int64, resources: [StoredResource]) {
        try await read { connection in
            let version = try await connection.one(
                "SELECT value FROM counters WHERE name = 'desired_state_version'", Int64.self, logger: logger)!
            let rows = try await connection.rows("SELECT * FROM resources ORDER BY kind, id", logger: logger)
            let resources = try rows.filter { ResourceKind(rawValue: try $0.value("kind")) != nil }.map(
                Self.storedResource(from:))
            return (
                version, resources.sorted { ($0.resource.kind, $0.resource.id) < ($1.resource.kind, $1.resource.id) }
            )
        }
    }

    public func desiredStateVersion() async throws -> Int64 {
        try await read { connection in
            try await connection.one(
                "SELECT value FROM counters WHERE name = 'desired_state_version'", Int64.self, logger: logger)!
        }
    }

    public func generations() async throws -> [ResourceKey: Int64] {
        try await read { connection in
            var generations: [ResourceKey: Int64] = [:]
            for row in try await connection.rows("SELECT kind, id, generation FROM resources", logger: logger) {
                guard let kind = ResourceKind(rawValue: try row.value("kind")) else { continue }
                generations[ResourceKey(kind, try row.value("id"))] = try row.value("generation")
            }
            return generations
        }
    }

    public func instance(_ id: String, details: Bool) async throws -> InstanceRecord {
        guard details else { return try await read { connection in try await self.fetchInstance(connection, id) } }
        return try await read { connection in
            guard
                let row = try await connection.row(
                    "\(unescaped: Self.instanceDetailsSQL) WHERE id = \(id)",
                    logger: logger)
            else { throw ConvergeError(.notFound, "instance \(id) not found") }
            return try Self.instanceRecord(from: row, details: true)
        }
    }

    /// Instances' rows and their details: their declared labels, their bundle's provisioner, their newest deployment;
    /// a `WHERE` clause follows.
    static let instanceDetailsSQL = """
        SELECT instances.*,
            (SELECT (spec::jsonb -> 'labels')::text FROM resources
                WHERE kind = 'Instance' AND resources.id = instances.id) AS labels,
            (SELECT spec::jsonb ->> 'provisioner' FROM resources
                WHERE kind = 'Bundle' AND resources.id = instances.bundle) AS provisioner,
            (SELECT id FROM deployments WHERE instance_id = instances.id ORDER BY seq DESC LIMIT 1) AS last_deployment
        FROM instances
        """

    public func instanceIDs() async throws -> [String] {
        try await read { connection in
            try await connection.column("SELECT id FROM instances ORDER BY id", String.self, logger: logger)
        }
    }

    public func updateInstanceStatus(_ id: String, observedGeneration: Int64, conditions: [InstanceCondition])
        async throws
    {
        let json = Value.array(conditions.map(\.value)).canonicalJSON
        let drifted = conditions.contains { $0.type == .drifted && $0.status }
        try await transaction { connection in
            let changed = try await connection.count(
                """
                UPDATE instances SET observed_generation = \(observedGeneration), conditions = \(json),
                    drifted = \(drifted)
                WHERE id = \(id) RETURNING 1
                """, logger: logger)
            guard changed == 1 else { throw ConvergeError(.notFound, "instance \(id) not found") }
        }
    }

    public func driftCheckCandidate(_ id: String) async throws -> InstanceRecord? {
        try await read { connection in
            let checkable = try await connection.one(
                """
                SELECT EXISTS (SELECT 1 FROM instances AS i
                    WHERE i.id = \(id) AND i.status = 'PROVISIONED' AND i.orphaned_by IS NULL
                      AND NOT EXISTS (SELECT 1 FROM deployments AS d
                          WHERE d.instance_id = i.id AND d.status IN ('PROPOSED', 'APPROVED', 'PENDING', 'RUNNING')))
                """, Bool.self, logger: logger)
            guard checkable == true else { return nil }
            return try await self.fetchInstanceIfAny(connection, id, outputs: false)
        }
    }

    public func driftedInstanceCount() async throws -> Int {
        try await read { connection in
            Int(
                try await connection.one(
                    "SELECT COUNT(*) FROM instances WHERE drifted", Int64.self, logger: logger) ?? 0)
        }
    }

    public func orphanInstance(_ id: String, actor: String) async throws -> InstanceRecord {
        try await transaction { connection in
            let before = try await self.fetchInstance(connection, id)
            if before.orphanedBy != nil { return before }
            if let open = try await connection.row(
                """
                SELECT id, status FROM deployments
                WHERE instance_id = \(id) AND status IN ('PROPOSED', 'APPROVED', 'PENDING', 'RUNNING') LIMIT 1
                """, logger: logger)
            {
                let deployment: String = try open.value("id")
                let status: String = try open.value("status")
                throw ConvergeError(
                    .failedPrecondition,
                    "instance \(id) has the \(status) deployment \(deployment); abort it or let it end first")
            }
            let now = self.now
            try await connection.query(
                "UPDATE instances SET orphaned_by = \(actor), orphaned_at = \(now), updated_at = \(now) WHERE id = \(id)",
                logger: logger)
            try await self.audit(
                connection, actor: actor, action: "instance.orphaned", kind: "Instance", id: id,
                before: ["status": .string(before.status.rawValue)],
                after: ["status": .string(before.status.rawValue), "orphanedBy": .string(actor)])
            return try await self.fetchInstance(connection, id)
        }
    }

    public func apiDocuments() async throws -> [APIResourceDocument] {
        try await read { connection in
            try await connection.rows("SELECT kind, id, document FROM api_resources ORDER BY kind, id", logger: logger)
                .compactMap { row in
                    guard let kind = ResourceKind(rawValue: try row.value("kind")) else { return nil }
                    return APIResourceDocument(
                        key: ResourceKey(kind, try row.value("id")), document: try row.value("document"))
                }
        }
    }

    public func putAPIDocuments(
        _ documents: [APIResourceDocument], expectedVersions: [ResourceKey: Int64], actor: String
    ) async throws -> Set<ResourceKey> {
        try await transaction { connection in
            var created: Set<ResourceKey> = []
            for document in documents {
                let key = document.key
                try await self.checkVersion(connection, key, expected: expectedVersions[key])
                let before = try await connection.one(
                    "SELECT document FROM api_resources WHERE kind = \(key.kind.rawValue) AND id = \(key.id)",
                    String.self, logger: logger)
                let now = self.now
                try await connection.query(
                    """
                    INSERT INTO api_resources (kind, id, document, created_by, created_at, updated_at)
                    VALUES (\(key.kind.rawValue), \(key.id), \(document.document), \(actor), \(now), \(now))
                    ON CONFLICT (kind, id) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at
                    """, logger: logger)
                try await self.audit(
                    connection, actor: actor, action: "resource.applied", kind: key.kind.rawValue, id: key.id,
                    before: try before.map(Value.init(json:)), after: try Value(json: document.document))
                if before == nil { created.insert(key) }
            }
            return created
        }
    }

    public func deleteAPIDocuments(_ keys: [ResourceKey], expectedVersions: [ResourceKey: Int64], actor: String)
        async throws
    {
        try await transaction { connection in
            for key in keys {
                try await self.checkVersion(connection, key, expected: expectedVersions[key])
                guard
                    let before = try await connection.one(
                        """
                        DELETE FROM api_resources WHERE kind = \(key.kind.rawValue) AND id = \(key.id)
                        RETURNING document
                        """, String.self, logger: logger)
                else {
                    throw ConvergeError(
                        .notFound, "\(key.kind.rawValue.lowercased()) \(key.id) was not applied through the API")
                }
                try await self.audit(
                    connection, actor: actor, action: "resource.deleted", kind: key.kind.rawValue, id: key.id,
                    before: try Value(json: before), after: nil)
            }
        }
    }

    /// Refuses a write made against another version of `key` than the recorded one (`aborted`); nil expects
    /// nothing.
    private func checkVersion(_ connection: PostgresConnection, _ key: ResourceKey, expected: Int64?) async throws {
        guard let expected else { return }
        let current = try await connection.one(
            "SELECT resource_version FROM resources WHERE kind = \(key.kind.rawValue) AND id = \(key.id)",
            Int64.self, logger: logger)
        guard current == expected else {
            throw ConvergeError.resourceVersionConflict(key, expected: expected, current: current)
        }
    }

    /// An instance's record; `not_found` when there is none.
    func fetchInstance(_ connection: PostgresConnection, _ id: String) async throws -> InstanceRecord {
        guard let record = try await fetchInstanceIfAny(connection, id) else {
            throw ConvergeError(.notFound, "instance \(id) not found")
        }
        return record
    }

    /// An instance's record, if any; `configuration` and `outputs` false leave those JSON columns undecoded (nil).
    func fetchInstanceIfAny(
        _ connection: PostgresConnection, _ id: String, configuration: Bool = true, outputs: Bool = true
    ) async throws -> InstanceRecord? {
        guard let row = try await connection.row("SELECT * FROM instances WHERE id = \(id)", logger: logger) else {
            return nil
        }
        return try Self.instanceRecord(from: row, configuration: configuration, outputs: outputs)
    }

    /// An instance's record from its row; `details` reads the columns `instanceDetailsSQL` adds.
    static func instanceRecord(
        from row: PostgresRandomAccessRow, configuration: Bool = true, outputs: Bool = true, details: Bool = false
    ) throws -> InstanceRecord {
        var record = InstanceRecord(
            id: try row.value("id"), environment: try row.value("environment"), bundle: try row.value("bundle"),
            status: InstanceStatus(rawValue: try row.value("status")) ?? .initialized,
            params: configuration ? try row.value("params", as: String?.self).map(Value.init(json:)) : nil,
            connectionParams: configuration
                ? try row.value("connection_params", as: String?.self).map(Value.init(json:)) : nil,
            version: try row.value("version"),
            outputs: outputs ? try row.value("outputs", as: String?.self).map(Value.init(json:)) : nil,
            observedGeneration: try row.value("observed_generation"),
            conditions: InstanceCondition.list(fromJSON: try row.value("conditions")),
            updatedAt: date(try row.value("updated_at")), orphanedBy: try row.value("orphaned_by"))
        if details {
            record.details = InstanceRecord.Details(
                createdAt: date(try row.value("created_at")),
                labels: try row.value("labels", as: String?.self).map { try Value(json: $0).stringMembers } ?? [:],
                provisioner: try row.value("provisioner"), lastDeployment: try row.value("last_deployment"))
        }
        return record
    }

    static func storedResource(from row: PostgresRandomAccessRow) throws -> StoredResource {
        StoredResource(
            resource: DesiredResource(
                kind: ResourceKind(rawValue: try row.value("kind"))!, id: try row.value("id"),
                spec: try Value(json: try row.value("spec")),
                source: try row.value("source", as: String?.self).flatMap(SourceLocation.init(parsing:))),
            generation: try row.value("generation"), resourceVersion: try row.value("resource_version"),
            createdAt: date(try row.value("created_at")))
    }
}
