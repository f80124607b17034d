import ConvergeCore
import ConvergeStore
import Foundation
import Testing

@testable import ConvergeEngine

/// A preview's time to live, driven by the engine's clock: nothing happens before it runs out, and then the preview
/// is decommissioned downstream first and its environment deleted.
@Suite struct PreviewExpiryTests {
    /// Reconciles `ids`, runs what is claimable, and moves the rollouts on, until nothing more happens.
    func settle(_ fixture: EngineFixture, _ ids: [String]) async throws {
        for _ in 0..<10 {
            for id in ids { try await fixture.engine.reconciler.reconcile(id) }
            let claimed = await fixture.engine.dispatcher.claim()
            for deployment in claimed { await fixture.engine.dispatcher.apply(deployment) }
            for rollout in fixture.engine.rollouts.running { try await fixture.engine.advance(rollout) }
            if claimed.isEmpty && fixture.engine.rollouts.running.isEmpty { return }
        }
    }

    @Test func ttl_destroysThePreviewWhenItRunsOut_andARerunExtendsIt() async throws {
        let fixture = try await EngineFixture()
        try await fixture.step()
        try await fixture.step()
        #expect(try await fixture.store.instance("p-dev-app").status == .provisioned)
        let preview: [String: Value] = [
            "project": "p", "baseEnvironment": "dev", "ttl": "1h", "instances": ["app": ["params": ["size": 3]]],
        ]
        let started = fixture.clock.now
        let first = try await fixture.engine.preview("pr1", preview, actor: "ci")
        #expect(first.expiresAt == started.addingTimeInterval(3600))
        let ids = ["p-pr1-db", "p-pr1-app"]
        try await settle(fixture, ids)
        #expect(try await fixture.store.rollout(first.rollout.id).status == .completed)
        #expect(try await fixture.history("p-pr1-app").first?.snapshot.params == ["size": 3])

        // Half an hour on, a re-run counts the time to live again from then.
        fixture.clock.advance(by: 1800)
        let second = try await fixture.engine.preview("pr1", preview, actor: "ci")
        #expect(second.expiresAt == started.addingTimeInterval(5400))
        #expect(try await fixture.store.rollout(second.rollout.id).items.map(\.outcome) == [.unchanged, .unchanged])

        // Past the first expiry, before the second: nothing happens.
        fixture.clock.advance(by: 3000)
        await fixture.engine.destroyExpiredPreviews()
        #expect(fixture.engine.rollouts.running.isEmpty)

        // Past the second: destroyed, downstream first, and the environment is gone.
        fixture.clock.advance(by: 700)
        await fixture.engine.destroyExpiredPreviews()
        let destroy = try #require(fixture.engine.rollouts.running.first)
        #expect(destroy.action == .decommission && destroy.deleteEnvironment)
        #expect(destroy.items.map(\.instance) == ["p-pr1-app", "p-pr1-db"])
        try await settle(fixture, ids)
        for id in ids { #expect(try await fixture.store.instance(id).status == .decommissioned) }
        let app = try #require(try await fixture.history("p-pr1-app").first)
        let db = try #require(try await fixture.history("p-pr1-db").first)
        #expect(app.action == .decommission && db.action == .decommission)
        #expect(app.sequence < db.sequence, "the app went first")
        #expect(fixture.engine.manifests.current?.state.environments["p-pr1"] == nil)
        #expect(fixture.engine.manifests.current?.state.previews["p-pr1"] == nil)
        #expect(try await fixture.store.previewExpiries(dueBy: .distantFuture).isEmpty)
    }
}
