import ConvergeCore
import ConvergeTestSupport
import Foundation
import Synchronization
import Testing

@testable import ConvergeStore

/// What only PostgreSQL has: daemons on their own pools claiming from one queue at once. A row another daemon holds
/// is skipped, never waited for.
@Suite struct PostgresClaimTests {
    @Test func claim_skipsAQueueHeadAnotherTransactionHolds_withoutWaitingForIt() async throws {
        let fixture = try await StoreFixture(.postgres, instances: ["shop-dev-a", "shop-dev-b", "shop-dev-c"])
        let a = try await fixture.create(["v": 1], on: "shop-dev-a").deployment
        let b = try await fixture.create(["v": 1], on: "shop-dev-b").deployment
        let c = try await fixture.create(["v": 1], on: "shop-dev-c").deployment
        let other = try fixture.openStore()
        let claimed = try await fixture.whileTransactionHolds(
            "SELECT id FROM deployments WHERE id = ? FOR UPDATE", [b.id]
        ) {
            try await Self.promptly("a claim while another transaction holds a queue head") {
                try await other.claimNextDeployments(owner: "d2", leaseDuration: 30, limit: 10)
            }
        }
        #expect(claimed.map(\.id) == [a.id, c.id])
        #expect(claimed.allSatisfy { $0.lease?.owner == "d2" && $0.lease?.epoch == 1 })
        // Once nobody holds it, the skipped head is claimed like any other.
        #expect(try await other.claimNextDeployments(owner: "d2", leaseDuration: 30, limit: 10).map(\.id) == [b.id])
    }

    @Test func takeOver_skipsAnExpiredLeaseAnotherTransactionHolds_withoutWaitingForIt() async throws {
        let fixture = try await StoreFixture(.postgres, instances: ["shop-dev-a", "shop-dev-b"])
        let a = try await fixture.create(["v": 1], on: "shop-dev-a").deployment
        let b = try await fixture.create(["v": 1], on: "shop-dev-b").deployment
        #expect(try await fixture.store.claimNextDeployments(owner: "d1", leaseDuration: 10, limit: 10).count == 2)
        fixture.clock.advance(by: 20)
        let other = try fixture.openStore()
        let taken = try await fixture.whileTransactionHolds(
            "SELECT id FROM deployments WHERE id = ? FOR UPDATE", [a.id]
        ) {
            try await Self.promptly("a takeover while another transaction holds an expired lease") {
                try await other.takeOverExpiredLeases(owner: "d2", leaseDuration: 10, limit: 10, excluding: [])
            }
        }
        #expect(taken.map(\.id) == [b.id])
        #expect(taken.first?.lease?.epoch == 2)
        let later = try await other.takeOverExpiredLeases(owner: "d2", leaseDuration: 10, limit: 10, excluding: [])
        #expect(later.map(\.id) == [a.id])
    }

    /// A head that became its queue's head while another daemon's claim took the next one (an older proposal,
    /// approved meanwhile) meets that RUNNING deployment at the unique index: that one head is skipped, and the rest
    /// of the claim goes through.
    @Test func claim_skipsAHeadWhoseInstanceAnotherClaimMadeRunning_andClaimsTheRest() async throws {
        let fixture = try await StoreFixture(.postgres, instances: ["shop-dev-a", "shop-dev-b"])
        let proposal = try await fixture.create(["v": 1], on: "shop-dev-a", mode: .proposal).deployment
        // A plan does not supersede the proposal, which can still be approved after it.
        let newer = try await fixture.create(["v": 2], on: "shop-dev-a", action: .plan).deployment
        let b = try await fixture.create(["v": 1], on: "shop-dev-b").deployment
        _ = try await fixture.store.approve(proposal.id, approver: "bob")
        let other = try fixture.openStore()
        let claim = try await fixture.whileTransactionHolds(
            "UPDATE deployments SET status = 'RUNNING' WHERE id = ?", [newer.id], thenCommit: true
        ) {
            let claim = Self.started { try await other.claimNextDeployments(owner: "d2", leaseDuration: 30, limit: 10) }
            // The claim took the approved proposal as shop-dev-a's head and waits at the unique index.
            try await eventually("the claim waits for the other transaction", timeout: .seconds(5)) {
                try await fixture.integer(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
                        + "AND wait_event_type = 'Lock'") == 1
            }
            return claim
        }
        let claimed = try await claim.value("the claim", within: .seconds(5))
        #expect(claimed.map(\.id) == [b.id])
        #expect(try await fixture.store.deployment(proposal.id).status == .approved)
        #expect(try await fixture.store.deployment(newer.id).status == .running)
    }

    /// The result of `body`, which must return within two seconds; the caller's lock is held until then, so a call
    /// that waits for it fails the test instead of hanging it.
    static func promptly<T: Sendable>(_ what: String, _ body: @escaping @Sendable () async throws -> T) async throws
        -> T
    {
        try await started(body).value(what, within: .seconds(10))
    }

    /// `body`, started beside the caller.
    static func started<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) -> Outcome<T> {
        let outcome = Outcome<T>()
        Task {
            do { outcome.set(.success(try await body())) } catch { outcome.set(.failure(error)) }
        }
        return outcome
    }
}

/// How a call started beside the test ended, once it has.
final class Outcome<T: Sendable>: Sendable {
    private let result = Mutex<Result<T, any Error>?>(nil)

    func set(_ value: Result<T, any Error>) { result.withLock { $0 = value } }

    /// The call's result, once it has returned; `TimedOut` when it has not within `timeout`.
    func value(_ what: String, within timeout: Duration) async throws -> T {
        try await eventually("\(what) returns", timeout: timeout) { result.withLock { $0 != nil } }
        return try result.withLock { $0! }.get()
    }
}
