import ConvergeCore
import Foundation
import GRDB
import Testing

@testable import ConvergeStore

@Suite struct SQLiteStoreTests {
    @Test(arguments: StoreEngine.allCases) func replaceDesiredState_tracksGenerationsAndVersions(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await StoreFixture(engine, instances: [])
        let store = fixture.store
        let project = DesiredResource(kind: .project, id: "shop", spec: ["id": "shop"], source: nil)
        let first = try await store.replaceDesiredState(
            [project, StoreFixture.instance("shop-dev-db")], expectedVersion: 0, actor: "sync")
        #expect(first.version == 1)
        #expect(first.added == [ResourceKey(.project, "shop"), ResourceKey(.instance, "shop-dev-db")])

        let unchanged = try await store.replaceDesiredState(
            [project, StoreFixture.instance("shop-dev-db")], expectedVersion: 1, actor: "sync")
        #expect(unchanged.version == 1)
        #expect(unchanged.added.isEmpty && unchanged.changed.isEmpty && unchanged.removed.isEmpty)

        var edited = project
        edited.spec = ["id": "shop", "description": "the shop"]
        let second = try await store.replaceDesiredState([edited], expectedVersion: 1, actor: "sync")
        #expect(second.version == 2)
        #expect(second.changed == [ResourceKey(.project, "shop")])
        #expect(second.removed == [ResourceKey(.instance, "shop-dev-db")])

        let (version, resources) = try await store.desiredState()
        #expect(version == 2)
        #expect(resources.map(\.resource) == [edited])
        #expect(resources[0].generation == 2)
        // A removed instance keeps its recorded state: the reconciler decides to decommission or orphan it.
        #expect(try await store.instance("shop-dev-db").status == .initialized)
    }

    @Test(arguments: StoreEngine.allCases) func updateDesiredState_writesOnlyTheDelta_underTheExpectedVersion(
        _ engine: StoreEngine
    ) async throws {
        let fixture = try await StoreFixture(engine, instances: [])
        let store = fixture.store
        let project = DesiredResource(kind: .project, id: "shop", spec: ["id": "shop"], source: nil)
        _ = try await store.replaceDesiredState(
            [project, StoreFixture.instance("shop-dev-db"), StoreFixture.instance("shop-dev-app")], expectedVersion: 0,
            actor: "sync")
        var edited = StoreFixture.instance("shop-dev-db")
        edited.spec = edited.spec.merged(with: ["params": ["size": 2]])
        let revision = try await store.updateDesiredState(
            [edited, StoreFixture.instance("shop-dev-queue")], removing: [ResourceKey(.instance, "shop-dev-app")],
            expectedVersion: 1, actor: "sync")
        #expect(revision.version == 2)
        #expect(revision.changed == [ResourceKey(.instance, "shop-dev-db")])
        #expect(revision.added == [ResourceKey(.instance, "shop-dev-queue")])
        #expect(revision.removed == [ResourceKey(.instance, "shop-dev-app")])
        let generations = try await store.generations()
        #expect(
            generations == [
                ResourceKey(.project, "shop"): 1, ResourceKey(.instance, "shop-dev-db"): 2,
                ResourceKey(.instance, "shop-dev-queue"): 1,
            ])
        #expect(try await store.instanceIDs() == ["shop-dev-app", "shop-dev-db", "shop-dev-queue"])
        // Somebody else moved the desired state on: a stale delta changes nothing.
        let stale = await convergeError {
            try await store.updateDesiredState([project], removing: [], expectedVersion: 1, actor: "sync")
        }
        #expect(stale?.code == .aborted)
        #expect(try await store.desiredState().version == 2)
    }

    @Test(arguments: StoreEngine.allCases) func replaceDesiredState_withAStaleVersionIsAbortedAndChangesNothing(
        _ engine: StoreEngine
    ) async throws {
        let fixture = try await StoreFixture(engine)
        let error = await convergeError {
            try await fixture.store.replaceDesiredState([], expectedVersion: 0, actor: "sync")
        }
        #expect(error == ConvergeError(.aborted, "the desired state changed: expected version 0, found 1"))
        #expect(try await fixture.store.desiredState().resources.count == 2)
        let duplicate = await convergeError {
            try await fixture.store.replaceDesiredState(
                [StoreFixture.instance("shop-dev-x"), StoreFixture.instance("shop-dev-x")], expectedVersion: nil,
                actor: "sync")
        }
        #expect(duplicate == ConvergeError(.invalidArgument, "Instance shop-dev-x is given twice"))
    }

    @Test(arguments: StoreEngine.allCases) func sourceLocations_roundTrip(_ engine: StoreEngine) async throws {
        let fixture = try await StoreFixture(engine, instances: [])
        let located = DesiredResource(
            kind: .project, id: "shop", spec: [:], source: SourceLocation(file: "dir:x/p.yaml", line: 3, column: 1))
        _ = try await fixture.store.replaceDesiredState([located], expectedVersion: nil, actor: "sync")
        #expect(try await fixture.store.desiredState().resources.first?.resource == located)
    }

    @Test func database_isInWALMode() async throws {
        let fixture = try await StoreFixture()
        let mode = try await fixture.sqlite.pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
    }

    @Test(arguments: StoreEngine.allCases) func migrations_areIdempotentAcrossReopen(_ engine: StoreEngine) async throws
    {
        let fixture = try await StoreFixture(engine)
        _ = try await fixture.create(["size": 20])
        let reopened = try fixture.openStore()
        #expect(try await reopened.history(of: "shop-dev-db", after: nil, limit: 10).items.count == 1)
    }

    @Test(arguments: StoreEngine.allCases) func auditLog_recordsEveryMutationWithBeforeAndAfter(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await StoreFixture(engine)
        let store = fixture.store
        let created = try await fixture.create(["size": 20], mode: .proposal, actor: "alice").deployment
        _ = try await store.approve(created.id, approver: "bob")
        let page = try await store.auditLog(AuditFilter(), after: nil, limit: 100)
        #expect(page.items.map(\.action) == ["deployment.approved", "deployment.create", "desiredState.replace"])
        let approval = page.items[0]
        #expect(approval.actor == "bob")
        #expect(approval.targetID == created.id)
        #expect(approval.before?["status"] == "PROPOSED")
        #expect(approval.after?["status"] == "APPROVED")
        #expect(approval.at == fixture.clock.now)
        let second = try await store.auditLog(AuditFilter(), after: String(page.items[0].sequence), limit: 1)
        #expect(second.items.map(\.action) == ["deployment.create"])
        #expect(second.nextCursor == String(page.items[1].sequence))
        let last = try await store.auditLog(AuditFilter(), after: second.nextCursor, limit: 1)
        #expect(last.items.map(\.action) == ["desiredState.replace"])
        #expect(last.nextCursor == nil)
    }

    @Test(arguments: StoreEngine.allCases) func listing_refusesBadLimitsAndCursors(_ engine: StoreEngine) async throws {
        let fixture = try await StoreFixture(engine)
        #expect(
            await convergeError { try await fixture.store.auditLog(AuditFilter(), after: nil, limit: 0) }
                == ConvergeError(.invalidArgument, "limit must be between 1 and 1000, got 0"))
        #expect(
            await convergeError { try await fixture.store.history(of: "shop-dev-db", after: "x", limit: 5) }
                == ConvergeError(.invalidArgument, "invalid cursor \"x\""))
        #expect(
            await convergeError { try await fixture.store.instance("nope") }
                == ConvergeError(.notFound, "instance nope not found"))
    }
}
