import ConvergeCore
import ConvergeTestSupport
import Foundation
import GRDB
import Logging

@testable import ConvergeStore

/// A store on a fresh SQLite file in a temporary directory, removed when the fixture goes.
final class StoreFixture {
    let directory: URL
    let clock = ManualClock()
    let store: SQLiteStore

    init(instances: [String] = ["shop-dev-db", "shop-dev-app"]) async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("converge-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        store = try Self.open(path: directory.appendingPathComponent("converge.sqlite").path, clock: clock)
        _ = try await store.replaceDesiredState(
            instances.map { Self.instance($0) }, expectedVersion: nil, actor: "test")
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }

    var path: String { directory.appendingPathComponent("converge.sqlite").path }

    /// Another connection pool on the same file, as a second process would have.
    func openStore() throws -> SQLiteStore {
        try Self.open(path: path, clock: clock)
    }

    static func open(path: String, clock: ManualClock) throws -> SQLiteStore {
        try SQLiteStore(
            path: path, clock: { clock.now }, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
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

/// The message of the database error `sql` raises, or nil when it succeeds.
func refusal(_ store: SQLiteStore, _ sql: String, _ arguments: StatementArguments = []) async -> String? {
    do {
        try await store.pool.write { db in try db.execute(sql: sql, arguments: arguments) }
        return nil
    } catch let error as DatabaseError {
        return error.message
    } catch {
        return "\(error)"
    }
}
