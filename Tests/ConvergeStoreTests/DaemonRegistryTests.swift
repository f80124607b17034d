import ConvergeCore
import Foundation
import Testing

@testable import ConvergeStore

/// The daemons of a database: each announces itself for a lease's time; one that stops announcing drops off when its
/// announcement expires, and each is listed with the unexpired leases it holds.
@Suite struct DaemonRegistryTests {
    @Test(arguments: StoreEngine.allCases) func daemonsAlive_listsTheAnnounced_withTheLeasesEachHolds(
        _ engine: StoreEngine
    ) async throws {
        let fixture = try await StoreFixture(engine)
        let store = fixture.store
        let start = fixture.clock.now
        func daemon(_ id: String, for seconds: TimeInterval) -> DaemonRecord {
            DaemonRecord(
                id: id, host: "host-\(id)", version: "1.2.3", startedAt: start, heartbeatAt: start,
                expiresAt: fixture.clock.now.addingTimeInterval(seconds))
        }
        try await store.heartbeat(daemon("a", for: 30))
        try await store.heartbeat(daemon("b", for: 10))
        _ = try await fixture.create(["v": 1])
        _ = try await fixture.create(["v": 1], on: "shop-dev-app")
        #expect(try await store.claimNextDeployments(owner: "a", leaseDuration: 30, limit: 1).count == 1)
        #expect(try await store.claimNextDeployments(owner: "b", leaseDuration: 5, limit: 1).count == 1)

        var alive = try await store.daemonsAlive()
        #expect(alive.map(\.id) == ["a", "b"])
        #expect(alive.map(\.leasesHeld) == [1, 1])
        #expect(alive.first?.host == "host-a" && alive.first?.version == "1.2.3")

        // b's lease expires (it was paused): it holds none any more, though it is still announced.
        fixture.clock.advance(by: 6)
        alive = try await store.daemonsAlive()
        #expect(alive.map(\.leasesHeld) == [1, 0])

        // b stops announcing; a announces again and stays.
        fixture.clock.advance(by: 5)
        try await store.heartbeat(daemon("a", for: 30))
        alive = try await store.daemonsAlive()
        #expect(alive.map(\.id) == ["a"])
        #expect(alive.first?.startedAt == start, "a daemon's start is kept from its first announcement")
    }
}
