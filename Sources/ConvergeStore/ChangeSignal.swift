import Foundation
import Synchronization

/// Tells waiters that the store changed: the dispatchers and the event streams wake on it instead of polling, and
/// poll only as a slow safety net. A SQLite store signals after each of its own commits (one daemon per file); a
/// PostgreSQL store signals on every `NOTIFY` of the database, so a deployment created or approved through one daemon
/// wakes every daemon of the database within milliseconds.
public final class ChangeSignal: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Waiters whose timeout or cancellation came before they started waiting.
        var released: Set<UInt64> = []
        var nextWaiter: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// How many changes were signalled so far: read it before looking at the store, and wait since it after.
    public var generation: UInt64 { state.withLock { $0.generation } }

    /// Signals a change to every waiter.
    public func notify() {
        let waiters = state.withLock { state in
            state.generation += 1
            defer { state.waiters = [:] }
            return state.waiters.values
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once a change was signalled after `generation`, after `timeout`, or when the task is cancelled,
    /// whichever comes first.
    public func wait(since generation: UInt64, timeout: Duration) async {
        let id = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            self?.resume(id)
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state in
                    guard state.generation == generation, state.released.remove(id) == nil else { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            resume(id)
        }
        timer.cancel()
        state.withLock { _ = $0.released.remove(id) }
    }

    /// Ends waiter `id`'s wait, or, when it has not started waiting yet, lets it through when it does.
    private func resume(_ id: UInt64) {
        let waiter = state.withLock { state in
            guard let waiter = state.waiters.removeValue(forKey: id) else {
                state.released.insert(id)
                return nil as CheckedContinuation<Void, Never>?
            }
            return waiter
        }
        waiter?.resume()
    }
}

/// A store that signals its changes.
public protocol ChangeFeed: Sendable {
    var changes: ChangeSignal { get }
}
