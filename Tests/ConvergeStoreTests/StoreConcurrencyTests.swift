import ConvergeCore
import Foundation
import Testing

@testable import ConvergeStore

@Suite struct StoreConcurrencyTests {
    static let instances = (0..<6).map { "shop-dev-i\($0)" }
    static let expectedRaceErrors: Set<ConvergeError.Code> = [.failedPrecondition, .aborted]

    /// Two stores on one file (two processes, in effect) race to claim, approve, abort and complete on the same
    /// instances, round after round; the invariants must hold after every round.
    @Test(arguments: StoreEngine.allCases) func racingClaimsApprovalsAndAborts_keepEveryInvariant(_ engine: StoreEngine)
        async throws
    {
        let fixture = try await StoreFixture(engine, instances: Self.instances)
        let stores = [fixture.store, try fixture.openStore()]
        var allClaimed: [String] = []
        for round in 0..<5 {
            var proposals: [String] = []
            var queued: [String] = []
            for (index, instance) in Self.instances.enumerated() {
                for step in 0..<3 {
                    let params: Value = ["round": .int(round), "step": .int(step)]
                    let creation = try await fixture.create(
                        params, on: instance, mode: (index + step).isMultiple(of: 2) ? .proposal : .direct)
                    if creation.deployment.status == .proposed {
                        proposals.append(creation.deployment.id)
                    } else {
                        queued.append(creation.deployment.id)
                    }
                }
            }
            let (proposed, direct) = (proposals, queued)
            let claimed = try await withThrowingTaskGroup(of: [String].self) { group in
                for worker in 0..<12 {
                    let store = stores[worker % 2]
                    group.addTask {
                        var claimed: [String] = []
                        for attempt in 0..<4 {
                            try await Self.tolerating {
                                switch (worker + attempt) % 4 {
                                case 0, 1:
                                    let running = try await store.claimNextDeployments(
                                        owner: "w\(worker)", leaseDuration: 60, limit: 3)
                                    claimed += running.map(\.id)
                                    for deployment in running where (worker + attempt).isMultiple(of: 3) {
                                        _ = try await store.complete(
                                            deployment.id, owner: "w\(worker)", epoch: 1, outputs: [:],
                                            planResult: nil)
                                    }
                                case 2:
                                    let id = proposed[(worker * 7 + attempt) % proposed.count]
                                    _ = try await store.approve(id, approver: "approver\(worker)")
                                default:
                                    let pool = (worker + attempt).isMultiple(of: 2) ? proposed : direct
                                    _ = try await store.abort(
                                        pool[(worker * 5 + attempt) % pool.count], actor: "op", reason: nil)
                                }
                            }
                        }
                        return claimed
                    }
                }
                return try await group.reduce(into: [String]()) { $0 += $1 }
            }
            allClaimed += claimed
            try await Self.checkInvariants(fixture)
        }
        #expect(Set(allClaimed).count == allClaimed.count, "a deployment was claimed twice")
        #expect(!allClaimed.isEmpty)
    }

    /// Runs a racing operation; losing the race is expected, any other error is not.
    static func tolerating(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as ConvergeError where expectedRaceErrors.contains(error.code) {
            return
        }
    }

    static func checkInvariants(_ fixture: StoreFixture) async throws {
        let store = fixture.store
        let rows = try await fixture.integer(
            "SELECT COUNT(*) FROM (SELECT instance_id FROM deployments WHERE status = 'RUNNING' GROUP BY instance_id "
                + "HAVING COUNT(*) > 1) AS doubled")
        #expect(rows == 0, "an instance has two RUNNING deployments")
        for instance in instances {
            var cursor: String?
            for _ in 0..<100 {
                let page = try await store.history(of: instance, after: cursor, limit: 100)
                for deployment in page.items { try await checkStatusChain(store, deployment) }
                cursor = page.nextCursor
                if cursor == nil { break }
            }
        }
    }

    /// The deployment's status events form a chain of allowed transitions that ends at its current status.
    static func checkStatusChain(_ store: any Store, _ deployment: Deployment) async throws {
        let events = try await store.events(of: deployment.id, after: nil, limit: 1000).items.filter {
            $0.kind == .status
        }
        var status: Deployment.Status? = nil
        for event in events {
            if event.message.hasPrefix("created as ") {
                status = Deployment.Status(rawValue: String(event.message.dropFirst("created as ".count)))
                continue
            }
            let parts = event.message.components(separatedBy: " -> ")
            let from = try #require(Deployment.Status(rawValue: parts[0]))
            let to = try #require(Deployment.Status(rawValue: String(parts[1].prefix { $0 != " " })))
            #expect(from == status, "\(deployment.id): \(event.message) after \(String(describing: status))")
            #expect((try? transition(from: from, to: to)) != nil)
            status = to
        }
        #expect(status == deployment.status)
    }
}
