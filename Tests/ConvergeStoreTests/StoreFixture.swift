import ConvergeCore
import ConvergeTestSupport
import Foundation
import GRDB
import Logging
import PostgresNIO
import Testing

@testable import ConvergeStore

/// The store engines every store test runs on, unchanged (DESIGN §3: both run the same store tests).
enum StoreEngine: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }
}

/// A store on a fresh database of `engine` — a SQLite file in a temporary directory, or a new database on the test
/// run's PostgreSQL — removed when the fixture goes.
final class StoreFixture: @unchecked Sendable {
    let engine: StoreEngine
    let clock = ManualClock()
    let store: any Store
    /// The SQLite file's directory, or the PostgreSQL database.
    private let location: String
    private var opened: [PostgresStore] = []

    init(_ engine: StoreEngine = .sqlite, instances: [String] = ["shop-dev-db", "shop-dev-app"]) async throws {
        self.engine = engine
        switch engine {
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "converge-store-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            location = directory.path
            store = try Self.open(path: directory.appendingPathComponent("converge.sqlite").path, clock: clock)
        case .postgres:
            location = try TestPostgres.createDatabase()
            let store = try Self.openPostgres(database: location, clock: clock)
            try await store.migrate()
            opened.append(store)
            self.store = store
        }
        _ = try await store.replaceDesiredState(
            instances.map { Self.instance($0) }, expectedVersion: nil, actor: "test")
    }

    deinit {
        let (engine, location, opened) = (engine, location, opened)
        switch engine {
        case .sqlite:
            try? FileManager.default.removeItem(atPath: location)
        case .postgres:
            Task {
                for store in opened { await store.close() }
                TestPostgres.dropDatabase(location)
            }
        }
    }

    /// The SQLite store, for tests of what only SQLite has (its file, its pragmas, its query plans).
    var sqlite: SQLiteStore { store as! SQLiteStore }

    var path: String { URL(fileURLWithPath: location).appendingPathComponent("converge.sqlite").path }

    /// Another store on the same database, as a second process would have.
    func openStore() throws -> any Store {
        switch engine {
        case .sqlite:
            return try Self.open(path: path, clock: clock)
        case .postgres:
            let store = try Self.openPostgres(database: location, clock: clock)
            opened.append(store)
            return store
        }
    }

    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    static func open(path: String, clock: ManualClock) throws -> SQLiteStore {
        try SQLiteStore(path: path, clock: { clock.now }, logger: logger)
    }

    static func openPostgres(database: String, clock: ManualClock) throws -> PostgresStore {
        try PostgresStore(url: try TestPostgres.url(of: database), password: nil, clock: { clock.now }, logger: logger)
    }

    static func instance(_ id: String, environment: String = "shop-dev") -> DesiredResource {
        DesiredResource(
            kind: .instance, id: id,
            spec: ["id": .string(id), "environment": .string(environment), "bundle": "database", "params": [:]],
            source: nil)
    }

    static func snapshot(_ params: Value, action: Deployment.Action = .provision, version: String = "1.0.0")
        -> DeploymentSnapshot
    {
        DeploymentSnapshot(
            action: action, params: params, connectionParams: ["network": ["vpc": "vpc-1"]], version: version,
            metadata: ["actor": "test"])
    }

    func create(
        _ params: Value, on instance: String = "shop-dev-db", mode: DeploymentRequest.Mode = .direct,
        action: Deployment.Action = .provision, actor: String = "alice", rollbackOf: String? = nil
    ) async throws -> DeploymentCreation {
        try await store.createDeployment(
            DeploymentRequest(
                instanceID: instance, snapshot: Self.snapshot(params, action: action), mode: mode, actor: actor,
                rollbackOf: rollbackOf))
    }

    /// Runs raw SQL past the store's own code, in SQLite's spelling (`?` and `?N` placeholders; PostgreSQL gets them
    /// as `$N`), and returns the message of the database error it raises, or nil when it succeeds.
    func refusal(_ sql: String, _ arguments: [any Sendable] = []) async -> String? {
        do {
            try await execute(sql, arguments)
            return nil
        } catch let error as DatabaseError {
            return error.message
        } catch let error as PSQLError {
            return error.serverInfo?[.message] ?? "\(error)"
        } catch {
            return "\(error)"
        }
    }

    /// Runs raw SQL (SQLite's spelling, as for `refusal`).
    func execute(_ sql: String, _ arguments: [any Sendable] = []) async throws {
        switch engine {
        case .sqlite:
            let arguments = StatementArguments(arguments.map { $0 as? (any DatabaseValueConvertible) })
            try await sqlite.pool.write { db in try db.execute(sql: sql, arguments: arguments) }
        case .postgres:
            _ = try await (store as! PostgresStore).client.query(Self.postgresQuery(sql, arguments))
        }
    }

    /// Runs raw SQL (SQLite's spelling, as for `refusal`) in a transaction that is then rolled back.
    func executeThenRollBack(_ sql: String, _ arguments: [any Sendable] = []) async throws {
        struct RolledBack: Error {}
        do {
            switch engine {
            case .sqlite:
                let arguments = StatementArguments(arguments.map { $0 as? (any DatabaseValueConvertible) })
                try await sqlite.pool.write { db in
                    try db.execute(sql: sql, arguments: arguments)
                    throw RolledBack()
                }
            case .postgres:
                try await (store as! PostgresStore).client.withTransaction(logger: Self.logger) { connection in
                    _ = try await connection.query(Self.postgresQuery(sql, arguments), logger: Self.logger)
                    throw RolledBack()
                }
            }
        } catch is RolledBack {
        } catch let error as PostgresTransactionError where error.closureError is RolledBack {
        }
    }

    /// Runs `body` while another connection of the store holds a transaction open that has run raw SQL (SQLite's
    /// spelling, as for `refusal`), such as a lock another store's calls must not wait for; PostgreSQL only. The
    /// transaction is rolled back when `body` returns (committed with `thenCommit`) or throws.
    func whileTransactionHolds<T: Sendable>(
        _ sql: String, _ arguments: [any Sendable] = [], thenCommit: Bool = false, _ body: () async throws -> T
    ) async throws -> T {
        try await (store as! PostgresStore).client.withConnection { connection in
            try await connection.query("BEGIN", logger: Self.logger)
            do {
                try await connection.query(Self.postgresQuery(sql, arguments), logger: Self.logger)
                let result = try await body()
                try await connection.query(
                    PostgresQuery(unsafeSQL: thenCommit ? "COMMIT" : "ROLLBACK"), logger: Self.logger)
                return result
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: Self.logger)
                throw error
            }
        }
    }

    /// The first column of the first row of a raw query, as an integer (SQLite's spelling, as for `refusal`).
    func integer(_ sql: String, _ arguments: [any Sendable] = []) async throws -> Int {
        switch engine {
        case .sqlite:
            let arguments = StatementArguments(arguments.map { $0 as? (any DatabaseValueConvertible) })
            return try await sqlite.pool.read { db in try Int.fetchOne(db, sql: sql, arguments: arguments) ?? 0 }
        case .postgres:
            for try await row in try await (store as! PostgresStore).client.query(Self.postgresQuery(sql, arguments)) {
                return Int(try row.decode(Int64.self))
            }
            return 0
        }
    }

    /// `sql` with SQLite's placeholders as PostgreSQL's, and its arguments bound.
    static func postgresQuery(_ sql: String, _ arguments: [any Sendable]) -> PostgresQuery {
        var text = ""
        var next = 0
        var characters = sql[...]
        while let character = characters.popFirst() {
            guard character == "?" else {
                text.append(character)
                continue
            }
            let digits = characters.prefix { $0.isNumber }
            characters = characters.dropFirst(digits.count)
            next += 1
            text += "$" + (digits.isEmpty ? String(next) : String(digits))
        }
        var bindings = PostgresBindings()
        for argument in arguments {
            switch argument {
            case let value as String: bindings.append(value)
            case let value as Int: bindings.append(Int64(value))
            case let value as Int64: bindings.append(value)
            case let value as Bool: bindings.append(value)
            default: bindings.appendNull()
            }
        }
        return PostgresQuery(unsafeSQL: text, binds: bindings)
    }
}

/// The error an async call threw, or nil.
func convergeError(_ body: () async throws -> some Any) async -> ConvergeError? {
    do {
        _ = try await body()
        return nil
    } catch {
        return error as? ConvergeError ?? ConvergeError(.internal, "\(error)")
    }
}

/// Whether a database error message is a unique constraint's, in either engine's words.
func isUniqueViolation(_ message: String) -> Bool {
    message.contains("UNIQUE constraint failed") || message.contains("duplicate key value violates unique constraint")
}
