import Foundation
import Testing

@testable import ConvergeEngine

@Suite struct WorkQueueStateTests {
    let start = Date(timeIntervalSince1970: 1_000)

    func queue() -> WorkQueueState<String> {
        WorkQueueState(baseDelay: 1, maxDelay: 8, rate: 1000, burst: 1000)
    }

    @Test func addingAWaitingKey_collapsesIntoOne() {
        var state = queue()
        state.add("a")
        state.add("b")
        state.add("a")
        #expect(state.next(now: start) == .process("a"))
        #expect(state.next(now: start) == .process("b"))
        #expect(state.next(now: start) == .wait(until: nil))
    }

    @Test func aKeyIsNeverHandedToTwoWorkers_andIsProcessedAgainIfChangedMeanwhile() {
        var state = queue()
        state.add("a")
        #expect(state.next(now: start) == .process("a"))
        state.add("a")
        #expect(state.next(now: start) == .wait(until: nil))
        state.done("a", .success, now: start)
        #expect(state.next(now: start) == .process("a"))
        state.done("a", .success, now: start)
        #expect(state.next(now: start) == .wait(until: nil))
    }

    @Test func failures_backOffExponentiallyUpToTheCap_andSuccessResets() {
        var state = queue()
        #expect((1...6).map { state.backoff(afterFailures: $0) } == [1, 2, 4, 8, 8, 8])
        state.add("a")
        var now = start
        for expected in [1.0, 2, 4, 8, 8] {
            #expect(state.next(now: now) == .process("a"))
            state.done("a", .retry, now: now)
            #expect(state.next(now: now) == .wait(until: now.addingTimeInterval(expected)))
            #expect(
                state.next(now: now.addingTimeInterval(expected - 0.01))
                    == .wait(until: now.addingTimeInterval(expected)))
            now = now.addingTimeInterval(expected)
        }
        #expect(state.next(now: now) == .process("a"))
        state.done("a", .success, now: now)
        #expect(state.failures["a"] == nil)
    }

    @Test func requeueAfter_waitsButAnEarlierAddWins() {
        var state = queue()
        state.add("a")
        _ = state.next(now: start)
        state.done("a", .requeue(after: 30), now: start)
        #expect(state.next(now: start) == .wait(until: start.addingTimeInterval(30)))
        state.add("a")
        #expect(state.next(now: start) == .process("a"))
    }

    @Test func theGlobalRateLimit_spacesHandOuts() {
        var state = WorkQueueState<String>(baseDelay: 1, maxDelay: 8, rate: 2, burst: 1)
        state.add("a")
        state.add("b")
        #expect(state.next(now: start) == .process("a"))
        #expect(state.next(now: start) == .wait(until: start.addingTimeInterval(0.5)))
        #expect(state.next(now: start.addingTimeInterval(0.5)) == .process("b"))
    }

    @Test func depth_countsWaitingKeysNowAndLater() {
        var state = queue()
        state.add("a")
        state.add("b", at: start.addingTimeInterval(5))
        #expect(state.depth == 2)
        _ = state.next(now: start)
        #expect(state.depth == 1)
    }
}
