import ConvergeCore
import Foundation
import Testing

/// How a rollout moves on from its current wave's observed outcomes (DESIGN §6), one row per case: a rollout of
/// instances a and b in wave 0 and c in wave 1.
@Suite struct RolloutSettledTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var wave = 0
        /// The outcomes of a, b and c.
        var outcomes: [Rollout.Outcome]
        var status: Rollout.Status = .running
        var expectedStatus: Rollout.Status
        var expectedWave: Int
        var expectedReleased: [String] = []
        var expectedError: String? = nil

        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "a wave still deploying waits", outcomes: [.completed, .deploying, .waiting],
            expectedStatus: .running, expectedWave: 0),
        Case(
            name: "a wave not started waits", outcomes: [.waiting, .waiting, .waiting], expectedStatus: .running,
            expectedWave: 0),
        Case(
            name: "a done wave releases the next", outcomes: [.completed, .unchanged, .waiting],
            expectedStatus: .running, expectedWave: 1, expectedReleased: ["c"]),
        Case(
            name: "skipped instances count as done", outcomes: [.skipped, .skipped, .waiting],
            expectedStatus: .running, expectedWave: 1, expectedReleased: ["c"]),
        Case(
            name: "the first failure fails it, naming the instance", outcomes: [.completed, .failed, .waiting],
            expectedStatus: .failed, expectedWave: 0, expectedError: "instance b: deployment d-b failed: boom"),
        Case(
            name: "a failure wins over an instance still deploying", outcomes: [.deploying, .aborted, .waiting],
            expectedStatus: .failed, expectedWave: 0, expectedError: "instance b: deployment d-b aborted: boom"),
        Case(
            name: "a rejected proposal fails it", outcomes: [.rejected, .completed, .waiting],
            expectedStatus: .failed, expectedWave: 0, expectedError: "instance a: deployment d-a rejected: boom"),
        Case(
            name: "the last wave done completes it", wave: 1, outcomes: [.completed, .completed, .completed],
            expectedStatus: .completed, expectedWave: 1),
        Case(
            name: "the last wave deploying waits", wave: 1, outcomes: [.completed, .completed, .deploying],
            expectedStatus: .running, expectedWave: 1),
        Case(
            name: "a later wave's failure does not count yet", outcomes: [.completed, .deploying, .failed],
            expectedStatus: .running, expectedWave: 0),
        Case(
            name: "a rollout that ended stays as it is", outcomes: [.completed, .completed, .waiting],
            status: .replaced, expectedStatus: .replaced, expectedWave: 0),
    ]

    @Test(arguments: cases)
    func settled_movesOnAsTheWaveAllows(_ row: Case) {
        let items = zip(["a", "b", "c"], row.outcomes).map { instance, outcome in
            var item = Rollout.Item(
                instance: instance, wave: instance == "c" ? 1 : 0, outcome: outcome,
                deploymentID: outcome == .waiting || outcome == .skipped ? nil : "d-\(instance)")
            if outcome.isFailure { item.message = "boom" }
            return item
        }
        var rollout = Rollout(
            id: "r1", environment: "shop-dev", action: .deploy, items: items, createdBy: "bob",
            createdAt: Date(timeIntervalSince1970: 0))
        rollout.wave = row.wave
        rollout.status = row.status

        let (settled, released) = rollout.settled()

        #expect(settled.status == row.expectedStatus)
        #expect(settled.wave == row.expectedWave)
        #expect(released == row.expectedReleased)
        #expect(settled.error == row.expectedError)
        #expect(settled.items == rollout.items)
    }
}
