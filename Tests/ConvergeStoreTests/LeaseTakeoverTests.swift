import ConvergeCore
import Foundation
import Testing

@testable import ConvergeStore

/// Issue 13: the takeover of expired leases spares the deployments the caller is still applying.
@Suite struct LeaseTakeoverTests {
    @Test(arguments: StoreEngine.allCases) func takeOver_sparesTheCallersInFlightDeployments_whoseHolderStillRenewsThem(
        _ engine: StoreEngine
    ) async throws {
        let fixture = try await StoreFixture(engine, instances: ["shop-dev-db", "shop-dev-app"])
        let store = fixture.store
        let applying = try await fixture.create(["v": 1]).deployment
        let idle = try await fixture.create(["v": 1], on: "shop-dev-app").deployment
        #expect(try await store.claimNextDeployments(owner: "w", leaseDuration: 10, limit: 2).count == 2)
        // `w` was paused for longer than its lease, with the call of `applying` in flight.
        fixture.clock.advance(by: 20)
        let taken = try await store.takeOverExpiredLeases(
            owner: "w", leaseDuration: 10, limit: 10, excluding: [applying.id])
        #expect(taken.map(\.id) == [idle.id])
        #expect(taken.first?.lease?.epoch == 2)
        let renewed = try await store.renewLease(applying.id, owner: "w", epoch: 1, leaseDuration: 10)
        #expect(renewed.lease == Deployment.Lease(owner: "w", epoch: 1, expiresAt: fixture.clock.now + 10))
        // Once its call has ended and the lease expired, it can be taken over like any other.
        fixture.clock.advance(by: 20)
        let later = try await store.takeOverExpiredLeases(owner: "w", leaseDuration: 10, limit: 10, excluding: [])
        #expect(Set(later.map(\.id)) == [applying.id, idle.id])
    }
}
