import Foundation

/// The reconciler's work queue: `WorkQueueState` driven by a clock, with workers waiting for keys.
public actor WorkQueue<Key: Hashable & Sendable> {
    private var state: WorkQueueState<Key>
    private let clock: any EngineClock
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var timer: Task<Void, Never>?
    private var timerDeadline: Date?
    private var shutDown = false

    public init(clock: any EngineClock, baseDelay: TimeInterval = 0.05, maxDelay: TimeInterval = 300, rate: Double = 50)
    {
        self.clock = clock
        self.state = WorkQueueState(baseDelay: baseDelay, maxDelay: maxDelay, rate: rate, burst: max(1, rate * 2))
    }

    /// Keys waiting now or later.
    public var depth: Int { state.depth }

    public func add(_ key: Key) {
        state.add(key)
        wakeAll()
    }

    public func add(_ keys: some Sequence<Key>) {
        for key in keys { state.add(key) }
        wakeAll()
    }

    /// Adds `key` to be processed after `seconds`.
    public func add(_ key: Key, after seconds: TimeInterval) {
        state.add(key, at: clock.now.addingTimeInterval(seconds))
        wakeAll()
    }

    /// The next key to process, waiting until one is ready; nil once the queue is shut down or the waiting task
    /// is cancelled.
    public func next() async -> Key? {
        while !shutDown && !Task.isCancelled {
            switch state.next(now: clock.now) {
            case .process(let key):
                return key
            case .wait(let deadline):
                if let deadline { schedule(wakeAt: deadline) }
                await withTaskCancellationHandler {
                    await withCheckedContinuation { waiters.append($0) }
                } onCancel: {
                    Task { await self.wakeAll() }
                }
            }
        }
        return nil
    }

    /// Ends processing of `key`: succeeded, failed (back off and retry), or to be processed again later.
    public func done(_ key: Key, succeeded: Bool, requeueAfter: TimeInterval? = nil) {
        let outcome: WorkQueueState<Key>.Outcome =
            !succeeded ? .retry : requeueAfter.map { .requeue(after: $0) } ?? .success
        state.done(key, outcome, now: clock.now)
        wakeAll()
    }

    /// Stops handing out keys; every waiting worker gets nil.
    public func shutdown() {
        shutDown = true
        timer?.cancel()
        wakeAll()
    }

    private func wakeAll() {
        let waiting = waiters
        waiters = []
        for waiter in waiting { waiter.resume() }
    }

    private func schedule(wakeAt deadline: Date) {
        if let timerDeadline, timerDeadline <= deadline, timer != nil { return }
        timer?.cancel()
        timerDeadline = deadline
        timer = Task { [clock] in
            guard (try? await clock.sleep(until: deadline)) != nil else { return }
            self.timerFired()
        }
    }

    private func timerFired() {
        timer = nil
        timerDeadline = nil
        wakeAll()
    }
}
