import ConvergeCore
import Foundation
import GRDB
import Logging
import ServiceLifecycle

/// The embedded store: one SQLite file in WAL mode, through GRDB.
///
/// Write transactions begin IMMEDIATE so that several processes on one file queue on the busy timeout instead of
/// failing on a lock upgrade. Times are Unix milliseconds from the injected clock.
public final class SQLiteStore: Store, Service {
    let pool: DatabasePool
    let clock: @Sendable () -> Date
    let logger: Logger
    /// Signalled after each commit: one daemon per file, so its own commits are every change.
    public let changes = ChangeSignal()
    /// The outcome of the latest write, for readiness.
    let writeHealth = WriteHealth()

    /// Opens (creating if needed) the database at `path` and runs pending migrations.
    public init(path: String, clock: @escaping @Sendable () -> Date = { Date() }, logger: Logger) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.label = "converge"
        do {
            try Self.restrictPermissions(ofDatabaseAt: path)
            pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(pool)
        } catch {
            throw ConvergeError(.internal, "cannot open database \(path): \(error)")
        }
        self.clock = clock
        self.logger = logger
        logger.info("store opened", metadata: ["store.path": "\(path)"])
    }

    /// Creates the database file readable by its owner only (it holds the daemon's callback key), and takes group
    /// and other access away from an existing one and its WAL files; SQLite gives new WAL and shared-memory files
    /// the database file's permissions.
    static func restrictPermissions(ofDatabaseAt path: String) throws {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw ConvergeError(.internal, "cannot open database \(path): \(String(cString: strerror(errno)))")
        }
        close(descriptor)
        for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
            guard chmod(file, 0o600) == 0 else {
                throw ConvergeError(
                    .internal, "cannot restrict \(file) to its owner: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Holds the database open until graceful shutdown, then closes it; first in the daemon's service group, so
    /// the last to stop.
    public func run() async throws {
        try? await gracefulShutdown()
        do {
            try pool.close()
            logger.info("store closed")
        } catch {
            logger.warning("cannot close the store", metadata: ["error": "\(error)"])
        }
    }

    /// The current time in Unix milliseconds.
    var now: Int64 { unixMillis(clock()) }

    /// Runs `body` in one IMMEDIATE transaction, mapping database errors to `ConvergeError`s. Whether it committed,
    /// or failed for want of storage, is recorded in `writeHealth`.
    func transaction<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            let result = try await pool.writeWithoutTransaction { db in
                var result: T?
                try db.inTransaction(.immediate) {
                    result = try body(db)
                    return .commit
                }
                changes.notify()
                return result!
            }
            writeHealth.record(failure: nil, at: clock(), logger: logger)
            return result
        } catch {
            if let failure = Self.storageFailure(error) {
                writeHealth.record(failure: failure, at: clock(), logger: logger)
            }
            throw Self.mapped(error)
        }
    }

    /// Runs a read-only `body` on a snapshot of the database.
    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read(body)
        } catch {
            throw Self.mapped(error)
        }
    }

    /// Runs a short read-only `body` on a snapshot of the database on the calling thread: for small indexed reads on
    /// the hot path (a reconcile's inputs), where the two thread hops of an asynchronous read cost more than the
    /// read itself. Never for a read whose size the caller does not bound.
    func readInPlace<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.read(body)
        } catch {
            throw Self.mapped(error)
        }
    }

    static func mapped(_ error: any Error) -> ConvergeError {
        if let error = error as? ConvergeError { return error }
        guard let error = error as? DatabaseError else { return ConvergeError(.internal, "\(error)") }
        let message = error.message ?? "\(error)"
        switch error.resultCode {
        case .SQLITE_CONSTRAINT:
            if message.contains("deployments.instance_id") && !message.contains("desired_hash") {
                return ConvergeError(.failedPrecondition, "the instance already has a RUNNING deployment")
            }
            return ConvergeError(.failedPrecondition, message.lowercased())
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return ConvergeError(.aborted, "the database is busy; retry")
        default:
            return ConvergeError(.internal, "database error: \(message)")
        }
    }

    /// Records a mutation in the audit log, in the mutation's transaction.
    func audit(
        _ db: Database, actor: String, action: String, kind: String, id: String, before: Value?, after: Value?
    ) throws {
        try db.run(
            sql: """
                INSERT INTO audit_log (at, actor, action, target_kind, target_id, before, after)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [now, actor, action, kind, id, before?.canonicalJSON, after?.canonicalJSON])
    }

    /// Reads and advances a named counter.
    func increment(_ db: Database, _ counter: String) throws -> Int64 {
        try db.run(sql: "UPDATE counters SET value = value + 1 WHERE name = ?", arguments: [counter])
        return try db.fetchValue(Int64.self, sql: "SELECT value FROM counters WHERE name = ?", arguments: [counter])!
    }
}

extension SQLiteStore {
    public func replaceDesiredState(_ resources: [DesiredResource], expectedVersion: Int64?, actor: String) async throws
        -> DesiredStateRevision
    {
        let keys = resources.map { ResourceKey($0.kind, $0.id) }
        if let duplicate = Dictionary(grouping: keys, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw ConvergeError(.invalidArgument, "\(duplicate) is given twice")
        }
        return try await transaction { db in
            var existing: [ResourceKey: (hash: String, source: String?)] = [:]
            for row in try db.fetchRows(sql: "SELECT kind, id, spec_hash, source FROM resources") {
                guard let kind = ResourceKind(rawValue: row["kind"]) else { continue }
                existing[ResourceKey(kind, row["id"])] = (row["spec_hash"], row["source"])
            }
            return try self.writeDesiredState(
                db, resources, removing: Set(existing.keys).subtracting(keys).sorted(), existing: existing,
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
        return try await transaction { db in
            var existing: [ResourceKey: (hash: String, source: String?)] = [:]
            let lookup = try db.makeStatement(sql: "SELECT spec_hash, source FROM resources WHERE kind = ? AND id = ?")
            for key in keys + removed {
                if let row = try Row.fetchOne(lookup, arguments: [key.kind.rawValue, key.id]) {
                    existing[key] = (row["spec_hash"], row["source"])
                }
            }
            return try self.writeDesiredState(
                db, changed, removing: removed.filter { existing[$0] != nil }, existing: existing,
                expectedVersion: expectedVersion, actor: actor)
        }
    }

    /// Writes `resources` and deletes `removed` given what is recorded of them, checking the desired-state version
    /// first, and bumps the version when anything changed.
    private func writeDesiredState(
        _ db: Database, _ resources: [DesiredResource], removing removed: [ResourceKey],
        existing: [ResourceKey: (hash: String, source: String?)], expectedVersion: Int64?, actor: String
    ) throws -> DesiredStateRevision {
        let version = try db.fetchValue(
            Int64.self, sql: "SELECT value FROM counters WHERE name = 'desired_state_version'")!
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
                try db.run(
                    sql: """
                        UPDATE resources SET spec = ?, spec_hash = ?, source = ?, resource_version = ?, updated_at = ?,
                            generation = generation + CASE WHEN spec_hash = ? THEN 0 ELSE 1 END
                        WHERE kind = ? AND id = ?
                        """,
                    arguments: [
                        resource.spec.canonicalJSON, hash, source, try increment(db, "resource_version"), now, hash,
                        resource.kind.rawValue, resource.id,
                    ])
            } else {
                added.append(key)
                try db.run(
                    sql: """
                        INSERT INTO resources (kind, id, spec, spec_hash, generation, resource_version, source,
                            created_at, updated_at)
                        VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?)
                        """,
                    arguments: [
                        resource.kind.rawValue, resource.id, resource.spec.canonicalJSON, hash,
                        try increment(db, "resource_version"), source, now, now,
                    ])
            }
            if resource.kind == .instance {
                try db.run(
                    sql: """
                        INSERT INTO instances (id, environment, bundle, status, created_at, updated_at)
                        VALUES (?, ?, ?, 'INITIALIZED', ?, ?)
                        ON CONFLICT (id) DO UPDATE SET bundle = excluded.bundle
                        """,
                    arguments: [
                        resource.id, resource.spec["environment"]?.stringValue ?? "",
                        resource.spec["bundle"]?.stringValue ?? "", now, now,
                    ])
            }
        }
        for key in removed {
            try db.run(
                sql: "DELETE FROM resources WHERE kind = ? AND id = ?", arguments: [key.kind.rawValue, key.id])
        }
        guard !(added.isEmpty && changed.isEmpty && removed.isEmpty) else {
            return DesiredStateRevision(version: version, added: [], changed: [], removed: [])
        }
        let revision = DesiredStateRevision(
            version: try increment(db, "desired_state_version"), added: added.sorted(), changed: changed.sorted(),
            removed: removed.sorted())
        try audit(
            db, actor: actor, action: "desiredState.replace", kind: "DesiredState", id: "desired-state",
            before: ["version": .int(Int(version))], after: revision.auditValue)
        return revision
    }

    public func desiredState() async throws -> (version: Int64, resources: [StoredResource]) {
        try await read { db in
            let version = try Int64.fetchOne(
                db, sql: "SELECT value FROM counters WHERE name = 'desired_state_version'")!
            let rows = try db.fetchRows(sql: "SELECT * FROM resources ORDER BY kind, id")
            let resources = try rows.filter { ResourceKind(rawValue: $0["kind"]) != nil }.map(
                Self.storedResource(from:))
            return (
                version, resources.sorted { ($0.resource.kind, $0.resource.id) < ($1.resource.kind, $1.resource.id) }
            )
        }
    }

    public func desiredStateVersion() async throws -> Int64 {
        try readInPlace { db in
            try Int64.fetchOne(db, sql: "SELECT value FROM counters WHERE name = 'desired_state_version'")!
        }
    }

    public func instance(_ id: String, details: Bool) async throws -> InstanceRecord {
        try readInPlace { db in try Self.fetchInstance(db, id, details: details) }
    }

    static func fetchInstance(_ db: Database, _ id: String, details: Bool = false) throws -> InstanceRecord {
        guard let record = try fetchInstanceIfAny(db, id, details: details) else {
            throw ConvergeError(.notFound, "instance \(id) not found")
        }
        return record
    }

    /// An instance's record, if any; `configuration` and `outputs` false leave those JSON columns undecoded (nil),
    /// `details` true reads its details too.
    static func fetchInstanceIfAny(
        _ db: Database, _ id: String, configuration: Bool = true, outputs: Bool = true, details: Bool = false
    ) throws -> InstanceRecord? {
        guard let row = try db.fetchRow(sql: details ? instanceDetailsSQL : instanceSQL, arguments: [id]) else {
            return nil
        }
        var record = InstanceRecord(
            id: row["id"], environment: row["environment"], bundle: row["bundle"],
            status: InstanceStatus(rawValue: row["status"]) ?? .initialized,
            params: configuration ? try (row["params"] as String?).map(Value.init(json:)) : nil,
            connectionParams: configuration ? try (row["connection_params"] as String?).map(Value.init(json:)) : nil,
            version: row["version"], outputs: outputs ? try (row["outputs"] as String?).map(Value.init(json:)) : nil,
            observedGeneration: row["observed_generation"],
            conditions: InstanceCondition.list(fromJSON: row["conditions"]),
            updatedAt: date(row["updated_at"]), orphanedBy: row["orphaned_by"])
        if details {
            record.details = InstanceRecord.Details(
                createdAt: date(row["created_at"]),
                labels: try (row["labels"] as String?).map { try Value(json: $0).stringMembers } ?? [:],
                provisioner: row["provisioner"], lastDeployment: row["last_deployment"])
        }
        return record
    }

    static let instanceSQL = "SELECT * FROM instances WHERE id = ?"

    /// An instance's row and its details: its declared labels, its bundle's provisioner, its newest deployment.
    static let instanceDetailsSQL = """
        SELECT instances.*,
            (SELECT json_extract(spec, '$.labels') FROM resources
                WHERE kind = 'Instance' AND resources.id = instances.id) AS labels,
            (SELECT json_extract(spec, '$.provisioner') FROM resources
                WHERE kind = 'Bundle' AND resources.id = instances.bundle) AS provisioner,
            (SELECT id FROM deployments INDEXED BY deployments_history
                WHERE instance_id = instances.id ORDER BY seq DESC LIMIT 1) AS last_deployment
        FROM instances WHERE id = ?
        """

    public func ping() async throws {
        _ = try await read { db in try Int.fetchOne(db, sql: "SELECT 1") }
    }

    public func deploymentCounts() async throws -> [Deployment.Status: Int] {
        try await read { db in
            var counts: [Deployment.Status: Int] = [:]
            for row in try db.fetchRows(sql: "SELECT status, count FROM deployment_counts") {
                if let status = Deployment.Status(rawValue: row["status"]) { counts[status] = row["count"] }
            }
            return counts
        }
    }

    public func instanceIDs() async throws -> [String] {
        try await read { db in try db.fetchValues(String.self, sql: "SELECT id FROM instances ORDER BY id") }
    }

    public func generations() async throws -> [ResourceKey: Int64] {
        try await read { db in
            var generations: [ResourceKey: Int64] = [:]
            for row in try db.fetchRows(sql: "SELECT kind, id, generation FROM resources") {
                guard let kind = ResourceKind(rawValue: row["kind"]) else { continue }
                generations[ResourceKey(kind, row["id"])] = row["generation"]
            }
            return generations
        }
    }

    public func updateInstanceStatus(_ id: String, observedGeneration: Int64, conditions: [InstanceCondition])
        async throws
    {
        let json = Value.array(conditions.map(\.value)).canonicalJSON
        let drifted = conditions.contains { $0.type == .drifted && $0.status }
        try await transaction { db in
            try db.run(
                sql: "UPDATE instances SET observed_generation = ?, conditions = ?, drifted = ? WHERE id = ?",
                arguments: [observedGeneration, json, drifted, id])
            guard db.changesCount == 1 else { throw ConvergeError(.notFound, "instance \(id) not found") }
        }
    }

    public func secret(named name: String) async throws -> [UInt8] {
        try await transaction { db in
            if let existing = try Data.fetchOne(db, sql: "SELECT value FROM secrets WHERE name = ?", arguments: [name])
            {
                return Array(existing)
            }
            var generator = SystemRandomNumberGenerator()
            let value = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
            try db.run(
                sql: "INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?)",
                arguments: [name, Data(value), self.now])
            return value
        }
    }
}

extension DesiredStateRevision {
    var auditValue: Value {
        [
            "version": .int(Int(version)), "added": .array(added.map { .string($0.description) }),
            "changed": .array(changed.map { .string($0.description) }),
            "removed": .array(removed.map { .string($0.description) }),
        ]
    }
}

extension InstanceCondition {
    /// An instance's recorded conditions; a column that does not parse has none.
    static func list(fromJSON json: String) -> [InstanceCondition] {
        guard case .array(let items)? = try? Value(json: json) else { return [] }
        return items.compactMap(InstanceCondition.init(value:))
    }
}

extension SourceLocation {
    /// Reads back `file:line:col`.
    init?(parsing text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count >= 3, let line = Int(parts[parts.count - 2]), let column = Int(parts[parts.count - 1]) else {
            return nil
        }
        self.init(file: parts.dropLast(2).joined(separator: ":"), line: line, column: column)
    }
}

/// A date from Unix milliseconds.
func date(_ millis: Int64) -> Date {
    Date(timeIntervalSince1970: TimeInterval(millis) / 1000)
}

/// Unix milliseconds of a date, as the stores record times.
func unixMillis(_ date: Date) -> Int64 {
    Int64((date.timeIntervalSince1970 * 1000).rounded())
}
