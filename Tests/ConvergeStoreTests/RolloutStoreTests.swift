import ConvergeCore
import Foundation
import Testing

@testable import ConvergeStore

/// Rollouts as the store keeps them: one RUNNING per environment (a new one replaces it), progress written only over
/// the view it was computed from, and an ended rollout never changes.
@Suite struct RolloutStoreTests {
    static func rollout(_ id: String, at date: Date) -> Rollout {
        Rollout(
            id: id, environment: "shop-dev",
            action: .deploy,
            items: [Rollout.Item(instance: "shop-dev-db", wave: 0), Rollout.Item(instance: "shop-dev-app", wave: 1)],
            createdBy: "alice", createdAt: date)
    }

    @Test(arguments: StoreEngine.allCases) func progress_isWrittenOnlyOverTheViewItWasComputedFrom(
        _ engine: StoreEngine
    ) async throws {
        let fixture = try await StoreFixture(engine)
        let store = fixture.store
        let (started, replaced) = try await store.startRollout(Self.rollout("r1", at: fixture.clock.now))
        #expect(replaced == nil)
        #expect(try await store.governingRollouts().map(\.id) == ["r1"])

        // Two daemons advance the same rollout from the same view: the first writes, the second must not write its
        // (older) view over it.
        var first = started
        first.items[0].outcome = .completed
        first.wave = 1
        var second = started
        second.items[0].outcome = .deploying
        second.items[0].deploymentID = "d-late"
        let written = try #require(try await store.updateRollout(first, from: started, actor: "a"))
        #expect(written.wave == 1 && written.items[0].outcome == .completed)
        #expect(try await store.updateRollout(second, from: started, actor: "b") == nil)
        #expect(try await store.rollout("r1").items[0].outcome == .completed)

        // From the newer view, the write goes through; once ended, nothing changes it.
        var done = written
        done.items[1].outcome = .completed
        done.status = .completed
        let ended = try #require(try await store.updateRollout(done, from: written, actor: "a"))
        #expect(ended.status == .completed && ended.finishedAt != nil)
        #expect(try await store.updateRollout(done, from: ended, actor: "a") == nil)
        #expect(await fixture.refusal("UPDATE rollouts SET wave = 7") == "the rollout has ended; it no longer changes")
    }

    @Test(arguments: StoreEngine.allCases) func aNewRollout_replacesTheRunningOne(_ engine: StoreEngine) async throws {
        let fixture = try await StoreFixture(engine)
        let store = fixture.store
        _ = try await store.startRollout(Self.rollout("r1", at: fixture.clock.now))
        fixture.clock.advance(by: 1)
        let (started, replaced) = try await store.startRollout(Self.rollout("r2", at: fixture.clock.now))
        #expect(started.status == .running)
        #expect(replaced?.id == "r1" && replaced?.status == .replaced && replaced?.replacedBy == "r2")
        #expect(try await store.rollouts(environment: "shop-dev", limit: 10).map(\.id) == ["r2", "r1"])
        #expect(try await store.governingRollouts().map(\.id) == ["r2"])
        #expect(
            await fixture.refusal(
                "INSERT INTO rollouts (id, environment, action, status, wave, items, created_by, created_at, "
                    + "updated_at) VALUES ('r3', 'shop-dev', 'deploy', 'RUNNING', 0, '[]', 'x', 0, 0)"
            ).map(
                isUniqueViolation) == true)
    }
}
