import ConvergeCore
import Foundation
import GRDB
import Testing

@testable import ConvergeStore

/// Each invariant of the schema, attacked with raw SQL that skips the store's own code.
@Suite struct StoreInvariantTests {
    static let insert = """
        INSERT INTO deployments (id, instance_id, action, params, connection_params, version, md_metadata,
            desired_hash, status, created_by, created_at, updated_at, environment)
        VALUES (?, ?, 'provision', '{}', '{}', '1', '{}', ?, ?, 'test', 0, 0,
            (SELECT environment FROM instances WHERE id = ?2))
        """

    @Test func atMostOneRunningDeploymentPerInstance() async throws {
        let fixture = try await StoreFixture()
        let store = fixture.store
        _ = try await fixture.create(["v": 1])
        let second = try await fixture.create(["v": 2]).deployment
        _ = try await store.claimNextDeployments(owner: "w", leaseDuration: 30, limit: 10)
        let update = await refusal(store, "UPDATE deployments SET status = 'RUNNING' WHERE id = ?", [second.id])
        #expect(update?.contains("UNIQUE constraint failed") == true)
        let insert = await refusal(store, Self.insert, ["dx", "shop-dev-db", "h-new", "RUNNING"])
        #expect(insert?.contains("UNIQUE constraint failed") == true)
        #expect(try await store.deployment(second.id).status == .pending)
    }

    @Test func atMostOneOpenDeploymentPerInstanceAndHash() async throws {
        let fixture = try await StoreFixture()
        let store = fixture.store
        let open = try await fixture.create(["v": 1]).deployment
        for status in ["PROPOSED", "APPROVED", "PENDING"] {
            let refused = await refusal(store, Self.insert, ["d\(status)", "shop-dev-db", open.desiredHash, status])
            #expect(refused?.contains("UNIQUE constraint failed") == true, "\(status)")
        }
        // Terminal deployments of the same hash are history, not open work.
        #expect(await refusal(store, Self.insert, ["dold", "shop-dev-db", open.desiredHash, "COMPLETED"]) == nil)
        // Once the open one ends, the same desired state can be enqueued again.
        _ = try await store.abort(open.id, actor: "alice", reason: nil)
        #expect(try await fixture.create(["v": 1]).created)
    }

    @Test(arguments: [
        "params", "connection_params", "version", "md_metadata", "action", "desired_hash", "instance_id", "environment",
        "retry_of", "rollback_of",
    ])
    func snapshotColumnsNeverChange(column: String) async throws {
        let fixture = try await StoreFixture()
        let deployment = try await fixture.create(["v": 1]).deployment
        let value = column == "action" ? "decommission" : column == "instance_id" ? "shop-dev-app" : "{\"x\":1}"
        let refused = await refusal(
            fixture.store, "UPDATE deployments SET \(column) = ? WHERE id = ?", [value, deployment.id])
        #expect(refused == "deployment snapshot is immutable")
        #expect(try await fixture.store.deployment(deployment.id) == deployment)
    }

    @Test func aDeploymentsEnvironmentIsItsInstances() async throws {
        let fixture = try await StoreFixture()
        let wrong = Self.insert.replacingOccurrences(
            of: "(SELECT environment FROM instances WHERE id = ?2)", with: "'shop-prod'")
        let refused = await refusal(fixture.store, wrong, ["dx", "shop-dev-db", "h", "PENDING"])
        #expect(refused == "a deployment's environment must be its instance's")
        #expect(await refusal(fixture.store, Self.insert, ["dx", "shop-dev-db", "h", "PENDING"]) == nil)
    }

    @Test func statusChangesOnlyAsTransitionAllows() async throws {
        let fixture = try await StoreFixture(instances: [])
        let store = fixture.store
        for (index, from) in Deployment.Status.allCases.enumerated() {
            for to in Deployment.Status.allCases where to != from {
                let id = "d\(index)\(to.rawValue.lowercased())"
                try await store.pool.write { db in
                    try db.execute(
                        sql:
                            "INSERT INTO instances (id, environment, bundle, status, created_at, updated_at) VALUES (?, 'e', 'b', 'INITIALIZED', 0, 0)",
                        arguments: [id])
                    try db.execute(sql: Self.insert, arguments: [id, id, id, from.rawValue])
                }
                let refused = await refusal(store, "UPDATE deployments SET status = ? WHERE id = ?", [to.rawValue, id])
                let allowed = (try? transition(from: from, to: to)) != nil
                #expect(
                    refused == (allowed ? nil : "deployment status transition not allowed"),
                    "\(from.rawValue) -> \(to.rawValue)")
            }
        }
    }

    @Test func historyIsNeverRewritten() async throws {
        let fixture = try await StoreFixture()
        let store = fixture.store
        let deployment = try await fixture.create(["v": 1]).deployment
        #expect(await refusal(store, "DELETE FROM deployments") == "deployments are never deleted")
        #expect(
            await refusal(store, "UPDATE deployment_events SET message = 'x'") == "deployment events are append-only")
        #expect(await refusal(store, "DELETE FROM deployment_events") == "deployment events are append-only")
        #expect(await refusal(store, "UPDATE audit_log SET actor = 'mallory'") == "the audit log is append-only")
        #expect(await refusal(store, "DELETE FROM audit_log") == "the audit log is append-only")
        #expect(try await store.deployment(deployment.id) == deployment)
    }

    @Test func compareAndSet_refusesAStaleRead() async throws {
        let fixture = try await StoreFixture()
        let store = fixture.store
        let stale = try await fixture.create(["v": 1]).deployment
        _ = try await store.abort(stale.id, actor: "alice", reason: nil)
        // A writer that read PENDING before the abort must not move the deployment on.
        let error = await convergeError {
            try await store.transaction { db in try store.move(db, stale, to: .running, actor: "w") }
        }
        #expect(error == ConvergeError(.aborted, "deployment \(stale.id) changed concurrently; retry"))
        #expect(try await store.deployment(stale.id).status == .aborted)
    }
}
