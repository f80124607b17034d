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

    @Test(arguments: StoreEngine.allCases) func atMostOneRunningDeploymentPerInstance(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await StoreFixture(engine)
        let store = fixture.store
        _ = try await fixture.create(["v": 1])
        let second = try await fixture.create(["v": 2]).deployment
        _ = try await store.claimNextDeployments(owner: "w", leaseDuration: 30, limit: 10)
        let update = await fixture.refusal("UPDATE deployments SET status = 'RUNNING' WHERE id = ?", [second.id])
        #expect(update.map(isUniqueViolation) == true)
        let insert = await fixture.refusal(Self.insert, ["dx", "shop-dev-db", "h-new", "RUNNING"])
        #expect(insert.map(isUniqueViolation) == true)
        #expect(try await store.deployment(second.id).status == .pending)
    }

    @Test(arguments: StoreEngine.allCases) func atMostOneOpenDeploymentPerInstanceAndHash(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await StoreFixture(engine)
        let store = fixture.store
        let open = try await fixture.create(["v": 1]).deployment
        for status in ["PROPOSED", "APPROVED", "PENDING"] {
            let refused = await fixture.refusal(Self.insert, ["d\(status)", "shop-dev-db", open.desiredHash, status])
            #expect(refused.map(isUniqueViolation) == true, "\(status)")
        }
        // Terminal deployments of the same hash are history, not open work.
        #expect(await fixture.refusal(Self.insert, ["dold", "shop-dev-db", open.desiredHash, "COMPLETED"]) == nil)
        // Once the open one ends, the same desired state can be enqueued again.
        _ = try await store.abort(open.id, actor: "alice", reason: nil)
        #expect(try await fixture.create(["v": 1]).created)
    }

    @Test(
        arguments: StoreEngine.allCases,
        [
            "params", "connection_params", "version", "md_metadata", "action", "desired_hash", "instance_id",
            "environment", "retry_of", "rollback_of",
        ])
    func snapshotColumnsNeverChange(_ engine: StoreEngine, column: String) async throws {
        let fixture = try await StoreFixture(engine)
        let deployment = try await fixture.create(["v": 1]).deployment
        let value = column == "action" ? "decommission" : column == "instance_id" ? "shop-dev-app" : "{\"x\":1}"
        let refused = await fixture.refusal(
            "UPDATE deployments SET \(column) = ? WHERE id = ?", [value, deployment.id])
        #expect(refused == "deployment snapshot is immutable")
        #expect(try await fixture.store.deployment(deployment.id) == deployment)
    }

    @Test(arguments: StoreEngine.allCases) func aDeploymentsEnvironmentIsItsInstances(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await StoreFixture(engine)
        let wrong = Self.insert.replacingOccurrences(
            of: "(SELECT environment FROM instances WHERE id = ?2)", with: "'shop-prod'")
        let refused = await fixture.refusal(wrong, ["dx", "shop-dev-db", "h", "PENDING"])
        #expect(refused == "a deployment's environment must be its instance's")
        #expect(await fixture.refusal(Self.insert, ["dx", "shop-dev-db", "h", "PENDING"]) == nil)
    }

    @Test(arguments: StoreEngine.allCases) func statusChangesOnlyAsTransitionAllows(_ engine: StoreEngine) async throws
    {
        let fixture = try await StoreFixture(engine, instances: [])
        for (index, from) in Deployment.Status.allCases.enumerated() {
            for to in Deployment.Status.allCases where to != from {
                let id = "d\(index)\(to.rawValue.lowercased())"
                try await fixture.execute(
                    "INSERT INTO instances (id, environment, bundle, status, created_at, updated_at) "
                        + "VALUES (?, 'e', 'b', 'INITIALIZED', 0, 0)", [id])
                try await fixture.execute(Self.insert, [id, id, id, from.rawValue])
                let refused = await fixture.refusal(
                    "UPDATE deployments SET status = ? WHERE id = ?", [to.rawValue, id])
                let allowed = (try? transition(from: from, to: to)) != nil
                #expect(
                    refused == (allowed ? nil : "deployment status transition not allowed"),
                    "\(from.rawValue) -> \(to.rawValue)")
            }
        }
    }

    @Test(arguments: StoreEngine.allCases) func historyIsNeverRewritten(_ engine: StoreEngine) async throws {
        let fixture = try await StoreFixture(engine)
        let store = fixture.store
        let deployment = try await fixture.create(["v": 1]).deployment
        #expect(await fixture.refusal("DELETE FROM deployments") == "deployments are never deleted")
        #expect(
            await fixture.refusal("UPDATE deployment_events SET message = 'x'") == "deployment events are append-only")
        #expect(await fixture.refusal("DELETE FROM deployment_events") == "deployment events are append-only")
        #expect(await fixture.refusal("UPDATE audit_log SET actor = 'mallory'") == "the audit log is append-only")
        #expect(await fixture.refusal("DELETE FROM audit_log") == "the audit log is append-only")
        #expect(try await store.deployment(deployment.id) == deployment)
    }

    @Test func compareAndSet_refusesAStaleRead() async throws {
        let fixture = try await StoreFixture()
        let store = fixture.sqlite
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
