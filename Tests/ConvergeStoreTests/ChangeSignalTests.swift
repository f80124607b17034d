import ConvergeCore
import Foundation
import Testing

@testable import ConvergeStore

/// The store's change signal: a waiter wakes on a change, never misses one signalled between its look and its wait,
/// and gives up after its timeout; a store signals its changes (PostgreSQL's through LISTEN/NOTIFY, from any pool).
@Suite struct ChangeSignalTests {
    @Test func aWaiter_wakesOnAChange_notOnItsTimeout() async throws {
        let signal = ChangeSignal()
        let seen = signal.generation
        let started = ContinuousClock.now
        async let woken: Void = signal.wait(since: seen, timeout: .seconds(30))
        try await Task.sleep(for: .milliseconds(50))
        signal.notify()
        await woken
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test func aChangeBeforeTheWait_isNotMissed() async {
        let signal = ChangeSignal()
        let seen = signal.generation
        signal.notify()
        let started = ContinuousClock.now
        await signal.wait(since: seen, timeout: .seconds(30))
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test func withoutAChange_theWaitEndsAtItsTimeout() async {
        let signal = ChangeSignal()
        let started = ContinuousClock.now
        await signal.wait(since: signal.generation, timeout: .milliseconds(100))
        #expect(ContinuousClock.now - started >= .milliseconds(100))
    }

    @Test func aCancelledWait_ends() async {
        let signal = ChangeSignal()
        let waiter = Task { await signal.wait(since: signal.generation, timeout: .seconds(60)) }
        waiter.cancel()
        let started = ContinuousClock.now
        await waiter.value
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    /// A deployment created through one store wakes a waiter of another store on the same database: two daemons.
    @Test(arguments: StoreEngine.allCases) func aChangeThroughOneStore_wakesTheStoresOfTheDatabase(
        _ engine: StoreEngine
    ) async throws {
        let fixture = try await StoreFixture(engine)
        let listener = engine == .postgres ? try fixture.openStore() : fixture.store
        let run = Task { try await (listener as? PostgresStore)?.run() }
        defer { run.cancel() }
        // PostgreSQL signals once when its listener starts.
        let started = ContinuousClock.now
        while engine == .postgres && listener.changes.generation == 0 && ContinuousClock.now - started < .seconds(10) {
            try await Task.sleep(for: .milliseconds(20))
        }
        let seen = listener.changes.generation
        _ = try await fixture.create(["v": 1])
        let before = ContinuousClock.now
        await listener.changes.wait(since: seen, timeout: .seconds(20))
        #expect(listener.changes.generation > seen)
        #expect(ContinuousClock.now - before < .seconds(10))
    }
}
