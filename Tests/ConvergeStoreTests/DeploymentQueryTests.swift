import ConvergeCore
import ConvergeTestSupport
import Foundation
import GRDB
import Testing

@testable import ConvergeStore

/// What the HTTP API reads: filtered deployment listings, the change feed, audit log filters, rollbacks.
@Suite struct DeploymentQueryTests {
    static let environments = ["shop-dev-db": "shop-dev", "shop-dev-app": "shop-dev", "shop-prod-db": "shop-prod"]

    /// A store with three instances in two environments.
    static func fixture(_ engine: StoreEngine) async throws -> StoreFixture {
        let fixture = try await StoreFixture(engine, instances: [])
        _ = try await fixture.store.replaceDesiredState(
            environments.keys.sorted().map { StoreFixture.instance($0, environment: environments[$0]!) },
            expectedVersion: nil, actor: "sync")
        return fixture
    }

    /// Every page of a listing, walked by cursor.
    static func walk(
        _ store: any Store, _ filter: DeploymentFilter, limit: Int
    ) async throws -> [Deployment] {
        var items: [Deployment] = []
        var cursor: String?
        repeat {
            let page = try await store.listDeployments(filter, after: cursor, limit: limit)
            #expect(page.items.count <= limit)
            #expect(page.nextCursor == nil || page.items.count == limit)
            items += page.items
            cursor = page.nextCursor
        } while cursor != nil
        return items
    }

    @Test(arguments: StoreEngine.allCases) func listDeployments_filtersByEachFieldNewestFirst(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await Self.fixture(engine)
        let store = fixture.store
        let d1 = try await fixture.create(["v": 1], on: "shop-dev-db", actor: "alice").deployment
        let d2 = try await fixture.create(["v": 2], on: "shop-dev-app", mode: .proposal, actor: "bob").deployment
        let d3 = try await fixture.create(["v": 3], on: "shop-prod-db", action: .plan, actor: "alice").deployment
        let d4 = try await fixture.create(["v": 4], on: "shop-prod-db", actor: "carol").deployment
        let running = try await store.claimNextDeployments(owner: "w", leaseDuration: 30, limit: 10)
        #expect(running.map(\.id) == [d1.id, d3.id])
        _ = try await store.complete(d1.id, owner: "w", epoch: 1, outputs: [:], planResult: nil)

        func ids(_ filter: DeploymentFilter) async throws -> [String] {
            try await store.listDeployments(filter, after: nil, limit: 100).items.map(\.id)
        }
        #expect(try await ids(DeploymentFilter()) == [d4.id, d3.id, d2.id, d1.id])
        #expect(try await ids(DeploymentFilter(instanceID: "shop-prod-db")) == [d4.id, d3.id])
        #expect(try await ids(DeploymentFilter(environment: "shop-dev")) == [d2.id, d1.id])
        #expect(try await ids(DeploymentFilter(environment: "nowhere")) == [])
        #expect(try await ids(DeploymentFilter(statuses: [.proposed])) == [d2.id])
        #expect(try await ids(DeploymentFilter(statuses: [.running, .completed])) == [d3.id, d1.id])
        #expect(try await ids(DeploymentFilter(statuses: [.completed])) == [d1.id])
        #expect(try await ids(DeploymentFilter(action: .plan)) == [d3.id])
        #expect(try await ids(DeploymentFilter(actor: "alice")) == [d3.id, d1.id])
        #expect(try await ids(DeploymentFilter(environment: "shop-prod", statuses: [.pending])) == [d4.id])
        #expect(try await ids(DeploymentFilter(environment: "shop-dev", statuses: [.completed, .failed])) == [d1.id])
        #expect(
            try await ids(DeploymentFilter(instanceID: "shop-prod-db", statuses: [.running], action: .plan))
                == [d3.id])
        #expect(try await ids(DeploymentFilter(environment: "shop-dev", actor: "carol")) == [])

        let completed = try await store.listDeployments(DeploymentFilter(statuses: [.completed]), after: nil, limit: 1)
        #expect(completed.items == [try await store.deployment(d1.id)])
        #expect(completed.nextCursor == nil)
    }

    /// Walks every combination of filters page by page and compares it with filtering the whole listing, so every
    /// index a filter can be driven by (and the merge of several statuses) is exercised.
    @Test(arguments: StoreEngine.allCases) func listDeployments_pagesEveryFilterCombinationWithoutGapsOrRepeats(
        _ engine: StoreEngine
    ) async throws {
        let fixture = try await Self.fixture(engine)
        let store = fixture.store
        let instances = Self.environments.keys.sorted()
        var created: [Deployment] = []
        for index in 0..<30 {
            let proposal = index.isMultiple(of: 4)
            created.append(
                try await fixture.create(
                    ["v": .int(index)], on: instances[index % 3], mode: proposal ? .proposal : .direct,
                    action: !proposal && index.isMultiple(of: 5) ? .plan : .provision,
                    actor: index % 3 == 1 ? "bob" : "alice"
                ).deployment)
        }
        for deployment in created where deployment.sequence % 7 == 3 {
            _ = try await store.abort(deployment.id, actor: "carol", reason: nil)
        }
        _ = try await store.reject(created[4].id, actor: "carol", reason: "no")
        for running in try await store.claimNextDeployments(owner: "w", leaseDuration: 30, limit: 10) {
            if running.instanceID == instances[0] {
                _ = try await store.fail(running.id, owner: "w", epoch: running.leaseEpoch, error: "boom")
            } else if running.instanceID == instances[1] {
                _ = try await store.complete(
                    running.id, owner: "w", epoch: running.leaseEpoch, outputs: [:], planResult: nil)
            }
        }
        _ = try await store.claimNextDeployments(owner: "w", leaseDuration: 30, limit: 10)

        let all = try await Self.walk(store, DeploymentFilter(), limit: 1000)
        #expect(all.count == 30)
        #expect(all.map(\.sequence) == all.map(\.sequence).sorted(by: >))
        #expect(Set(all.map(\.status)).count >= 6, "\(Set(all.map(\.status)))")

        let statusSets: [Set<Deployment.Status>?] = [
            nil, [.pending], [.completed], [.proposed, .running], [.failed, .aborted, .rejected],
            [.pending, .completed],
        ]
        var checked = 0
        for instanceID in [nil, "shop-dev-app"] {
            for environment in [nil, "shop-dev"] {
                for statuses in statusSets {
                    for action in [nil, Deployment.Action.provision] {
                        for actor in [nil, "bob"] {
                            let filter = DeploymentFilter(
                                instanceID: instanceID, environment: environment, statuses: statuses, action: action,
                                actor: actor)
                            let expected = all.filter { deployment in
                                (instanceID.map { deployment.instanceID == $0 } ?? true)
                                    && (environment.map { Self.environments[deployment.instanceID] == $0 } ?? true)
                                    && (statuses.map { $0.contains(deployment.status) } ?? true)
                                    && (action.map { deployment.action == $0 } ?? true)
                                    && (actor.map { deployment.createdBy == $0 } ?? true)
                            }
                            #expect(try await Self.walk(store, filter, limit: 2) == expected, "\(filter)")
                            checked += expected.count
                        }
                    }
                }
            }
        }
        #expect(checked > 100)
    }

    @Test(arguments: StoreEngine.allCases) func listDeployments_refusesAnEmptyStatusSetBadLimitsAndCursors(
        _ engine: StoreEngine
    ) async throws {
        let fixture = try await Self.fixture(engine)
        let store = fixture.store
        #expect(
            await convergeError {
                try await store.listDeployments(DeploymentFilter(statuses: []), after: nil, limit: 5)
            }
                == ConvergeError(.invalidArgument, "a status filter must name at least one status"))
        #expect(
            await convergeError { try await store.listDeployments(DeploymentFilter(), after: nil, limit: 1001) }
                == ConvergeError(.invalidArgument, "limit must be between 1 and 1000, got 1001"))
        #expect(
            await convergeError { try await store.listDeployments(DeploymentFilter(), after: "-1", limit: 5) }
                == ConvergeError(.invalidArgument, "invalid cursor \"-1\""))
    }

    @Test(arguments: StoreEngine.allCases) func changeFeed_recordsCreationAndEveryStatusChangeInOrder(
        _ engine: StoreEngine
    ) async throws {
        let fixture = try await Self.fixture(engine)
        let store = fixture.store
        #expect(try await store.latestDeploymentChange() == 0)
        #expect(try await store.deploymentChanges(after: 0, limit: 10) == [])

        let proposal = try await fixture.create(["v": 1], on: "shop-dev-db", mode: .proposal).deployment
        fixture.clock.advance(by: 1)
        _ = try await store.approve(proposal.id, approver: "bob")
        let direct = try await fixture.create(["v": 2], on: "shop-prod-db").deployment
        fixture.clock.advance(by: 1)
        let claimed = try await store.claimNextDeployments(owner: "w", leaseDuration: 30, limit: 10)
        #expect(claimed.count == 2)
        // Lease renewals and takeovers change attempt and epoch, not status: the feed does not carry them.
        _ = try await store.renewLease(proposal.id, owner: "w", epoch: 1, leaseDuration: 30)
        fixture.clock.advance(by: 60)
        #expect(
            try await store.takeOverExpiredLeases(owner: "w2", leaseDuration: 30, limit: 10, excluding: []).count == 2)
        _ = try await store.complete(proposal.id, owner: "w2", epoch: 2, outputs: [:], planResult: nil)
        _ = try await store.abort(direct.id, actor: "carol", reason: nil)

        let changes = try await store.deploymentChanges(after: 0, limit: 100)
        let start = fixture.clock.now.addingTimeInterval(-62)
        #expect(
            changes.map { [$0.deploymentID, $0.instanceID, $0.status.rawValue] } == [
                [proposal.id, "shop-dev-db", "PROPOSED"], [proposal.id, "shop-dev-db", "APPROVED"],
                [direct.id, "shop-prod-db", "PENDING"], [proposal.id, "shop-dev-db", "RUNNING"],
                [direct.id, "shop-prod-db", "RUNNING"], [proposal.id, "shop-dev-db", "COMPLETED"],
                [direct.id, "shop-prod-db", "ABORTED"],
            ])
        #expect(
            changes.map(\.at) == [
                start, start.addingTimeInterval(1), start.addingTimeInterval(1), start.addingTimeInterval(2),
                start.addingTimeInterval(2), fixture.clock.now, fixture.clock.now,
            ])
        #expect(changes.map(\.sequence) == changes.map(\.sequence).sorted())
        #expect(Set(changes.map(\.sequence)).count == changes.count)
        #expect(try await store.latestDeploymentChange() == changes.last?.sequence)
        #expect(try await store.deploymentChanges(after: changes[2].sequence, limit: 2) == Array(changes[3...4]))
        #expect(try await store.deploymentChanges(after: changes[6].sequence, limit: 2) == [])
        #expect(
            await convergeError { try await store.deploymentChanges(after: -1, limit: 2) }
                == ConvergeError(.invalidArgument, "a change sequence is not negative, got -1"))
        #expect(
            await convergeError { try await store.deploymentChanges(after: 0, limit: 0) }
                == ConvergeError(.invalidArgument, "limit must be between 1 and 1000, got 0"))
    }

    /// The feed is written by triggers: a status change that skips the store's code is still in it, one that does not
    /// change the status or is rolled back is not, and nobody rewrites it.
    @Test(arguments: StoreEngine.allCases) func changeFeed_cannotBeSkippedOrRewritten(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await Self.fixture(engine)
        let store = fixture.store
        let deployment = try await fixture.create(["v": 1]).deployment
        let other = try await fixture.create(["v": 1], on: "shop-prod-db").deployment
        try await fixture.execute("UPDATE deployments SET status = 'ABORTED' WHERE id = ?", [deployment.id])
        try await fixture.execute("UPDATE deployments SET status = 'ABORTED' WHERE id = ?", [deployment.id])
        try await fixture.executeThenRollBack("UPDATE deployments SET status = 'ABORTED' WHERE id = ?", [other.id])
        #expect(
            try await store.deploymentChanges(after: 0, limit: 10).map { "\($0.deploymentID) \($0.status.rawValue)" }
                == [
                    "\(deployment.id) PENDING", "\(other.id) PENDING", "\(deployment.id) ABORTED",
                ])
        for sql in ["UPDATE deployment_changes SET status = 'COMPLETED'", "DELETE FROM deployment_changes"] {
            #expect(await fixture.refusal(sql) == "deployment changes are append-only", "\(sql)")
        }
    }

    @Test(arguments: StoreEngine.allCases) func auditLog_filtersByActorActionAndTargetNewestFirst(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await Self.fixture(engine)
        let store = fixture.store
        let first = try await fixture.create(["v": 1], mode: .proposal, actor: "alice").deployment
        let second = try await fixture.create(["v": 2], on: "shop-prod-db", actor: "bob").deployment
        _ = try await store.approve(first.id, approver: "bob")
        _ = try await store.abort(second.id, actor: "alice", reason: nil)

        func entries(_ filter: AuditFilter) async throws -> [String] {
            try await store.auditLog(filter, after: nil, limit: 100).items.map { "\($0.actor) \($0.action)" }
        }
        #expect(
            try await entries(AuditFilter()) == [
                "alice deployment.aborted", "bob deployment.approved", "bob deployment.create",
                "alice deployment.create", "sync desiredState.replace",
            ])
        #expect(try await entries(AuditFilter(actor: "bob")) == ["bob deployment.approved", "bob deployment.create"])
        #expect(
            try await entries(AuditFilter(action: "deployment.create"))
                == ["bob deployment.create", "alice deployment.create"])
        #expect(try await entries(AuditFilter(targetKind: "DesiredState")) == ["sync desiredState.replace"])
        #expect(
            try await entries(AuditFilter(targetID: first.id)) == [
                "bob deployment.approved", "alice deployment.create",
            ])
        #expect(
            try await entries(AuditFilter(actor: "alice", targetKind: "Deployment", targetID: second.id))
                == ["alice deployment.aborted"])
        #expect(try await entries(AuditFilter(actor: "alice", action: "deployment.approved")) == [])

        let page = try await store.auditLog(AuditFilter(targetKind: "Deployment"), after: nil, limit: 3)
        #expect(page.items.map(\.targetID) == [second.id, first.id, second.id])
        let rest = try await store.auditLog(AuditFilter(targetKind: "Deployment"), after: page.nextCursor, limit: 3)
        #expect(rest.items.map(\.targetID) == [first.id])
        #expect(rest.nextCursor == nil)
    }

    @Test(arguments: StoreEngine.allCases) func rollbackOf_isWrittenReadBackAndFrozen(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await Self.fixture(engine)
        let store = fixture.store
        let good = try await fixture.create(["v": 1]).deployment
        _ = try await store.claimNextDeployments(owner: "w", leaseDuration: 30, limit: 10)
        _ = try await store.complete(good.id, owner: "w", epoch: 1, outputs: [:], planResult: nil)
        _ = try await fixture.create(["v": 2]).deployment
        let rollback = try await fixture.create(["v": 1], actor: "bob", rollbackOf: good.id)
        #expect(rollback.created)
        #expect(rollback.deployment.rollbackOf == good.id)
        #expect(try await store.deployment(rollback.deployment.id).rollbackOf == good.id)
        #expect(try await store.history("shop-dev-db").first?.rollbackOf == good.id)
        #expect(
            try await store.listDeployments(DeploymentFilter(actor: "bob"), after: nil, limit: 1).items.first?
                .rollbackOf == good.id)
        #expect(try await store.deployment(good.id).rollbackOf == nil)
        let creation = try await store.auditLog(
            AuditFilter(action: "deployment.create", targetID: rollback.deployment.id), after: nil, limit: 1)
        #expect(creation.items.first?.after?["rollbackOf"] == .string(good.id))
        let events = try await store.events(of: rollback.deployment.id, after: nil, limit: 1).items
        #expect(events.first?.message == "created as PENDING, rolling back to \(good.id)")

        let otherInstance = await convergeError {
            try await fixture.create(["v": 9], on: "shop-prod-db", rollbackOf: good.id)
        }
        #expect(
            otherInstance
                == ConvergeError(
                    .failedPrecondition, "a rollback must return to an earlier deployment of the same instance"))
        let unknown = await convergeError { try await fixture.create(["v": 9], rollbackOf: "d-nope") }
        #expect(unknown?.code == .failedPrecondition)
        #expect(try await store.history("shop-prod-db").isEmpty)
    }

    /// A database made before the API migration gets its deployments' environments and a feed entry per deployment.
    @Test(arguments: StoreEngine.allCases) func apiMigration_backfillsEnvironmentsAndTheChangeFeed(
        _ engine: StoreEngine
    ) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("converge-store-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("converge.sqlite").path
        let old = try DatabaseQueue(path: path)
        try SQLiteStore.migrator.migrate(old, upTo: "2026-11-25-lease-epochs-retries-counts")
        try await old.write { db in
            for (id, environment) in [("a", "prod"), ("b", "dev")] {
                try db.execute(
                    sql: """
                        INSERT INTO instances (id, environment, bundle, status, created_at, updated_at)
                        VALUES (?, ?, 'b', 'INITIALIZED', 0, 0)
                        """,
                    arguments: [id, environment])
            }
            for (id, instance, status, updatedAt) in [("d1", "a", "COMPLETED", 5), ("d2", "b", "PENDING", 7)] {
                try db.execute(
                    sql: """
                        INSERT INTO deployments (id, instance_id, action, params, connection_params, version,
                            md_metadata, desired_hash, status, created_by, created_at, updated_at)
                        VALUES (?, ?, 'provision', '{}', '{}', '1', '{}', ?, ?, 'old', 0, ?)
                        """,
                    arguments: [id, instance, id, status, updatedAt])
            }
        }
        try old.close()
        let store = try StoreFixture.open(path: path, clock: ManualClock())
        #expect(
            try await store.listDeployments(DeploymentFilter(environment: "prod"), after: nil, limit: 5).items.map(\.id)
                == ["d1"])
        #expect(
            try await store.listDeployments(DeploymentFilter(environment: "dev"), after: nil, limit: 5).items.map(\.id)
                == ["d2"])
        #expect(
            try await store.deploymentChanges(after: 0, limit: 5).map {
                "\($0.sequence) \($0.deploymentID) \($0.status.rawValue) \(Int(($0.at.timeIntervalSince1970 * 1000).rounded()))ms"
            } == ["1 d1 COMPLETED 5ms", "2 d2 PENDING 7ms"])
    }
}
