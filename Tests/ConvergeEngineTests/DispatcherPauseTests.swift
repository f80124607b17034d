import ConvergeCore
import ConvergeTestSupport
import Foundation
import Testing

@testable import ConvergeEngine

/// Issue 13: a dispatcher that was paused for longer than its lease keeps the deployments it is still applying.
@Suite struct DispatcherPauseTests {
    @Test func pausedLongerThanTheLease_neverTakesOverItsOwnCall_andRenewsItsLease() async throws {
        let fixture = try await EngineFixture()
        fixture.provisioner.hanging.withLock { _ = $0.insert("p-dev-db") }
        #expect(await fixture.engine.manifests.load())
        try await fixture.engine.reconciler.reconcile("p-dev-db")
        let dispatcher = fixture.engine.dispatcher
        let deployment = try #require(await dispatcher.claim().first)
        let apply = Task { await dispatcher.apply(deployment) }
        try await eventually("the provisioner was called") { fixture.provisioner.jobs.withLock { $0.count } == 1 }
        try await eventually("the renewal waits for the clock") { fixture.clock.sleepers > 0 }
        // Paused past the 30-second lease: on waking, the takeover scan runs beside the renewal.
        fixture.clock.advance(by: 31)
        #expect(await dispatcher.takeOverExpired().isEmpty)
        try await eventually("the lease was renewed") {
            try await fixture.store.deployment(deployment.id).lease?.expiresAt == fixture.clock.now + 30
        }
        let lease = try await fixture.store.deployment(deployment.id).lease
        #expect(lease?.owner == "engine-test" && lease?.epoch == 1)
        #expect(fixture.provisioner.jobs.withLock { $0.count } == 1)
        #expect(fixture.provisioner.cancelled.withLock { $0.isEmpty })
        apply.cancel()
        await apply.value
    }
}
