import Foundation

/// The promises of the reconciler's work queue as a pure state machine (client-go's workqueue):
/// a key is never handed to two workers at once, adding a key that is already waiting collapses into one, a key
/// added while it is being processed is processed again afterwards, failures back off per key (exponential,
/// capped), and every hand-out spends a token of a global rate limit.
struct WorkQueueState<Key: Hashable & Sendable>: Sendable {
    /// What a worker should do next.
    enum Next: Equatable {
        case process(Key)
        /// Nothing is ready; ask again at this moment (nil: only when something is added).
        case wait(until: Date?)
    }

    /// How processing a key ended.
    enum Outcome: Equatable {
        case success
        /// Retry after the key's backoff.
        case retry
        /// Process again after this many seconds.
        case requeue(after: TimeInterval)
    }

    var baseDelay: TimeInterval
    var maxDelay: TimeInterval
    /// Tokens per second and bucket size of the global rate limit.
    var rate: Double
    var burst: Double

    private(set) var ready: [Key] = []
    private var readySet: Set<Key> = []
    private(set) var processing: Set<Key> = []
    private var dirty: Set<Key> = []
    private(set) var delayed: [Key: Date] = [:]
    private(set) var failures: [Key: Int] = [:]
    private var tokens: Double
    private var refilledAt: Date?

    init(baseDelay: TimeInterval = 0.05, maxDelay: TimeInterval = 300, rate: Double = 50, burst: Double = 100) {
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.rate = rate
        self.burst = burst
        self.tokens = burst
    }

    /// Keys waiting now or later (not those being processed).
    var depth: Int { ready.count + delayed.count }

    /// Makes `key` ready now; a key being processed is marked to be processed again when it is done.
    mutating func add(_ key: Key) {
        if processing.contains(key) {
            dirty.insert(key)
        } else if !readySet.contains(key) {
            delayed[key] = nil
            ready.append(key)
            readySet.insert(key)
        }
    }

    /// Makes `key` ready at `moment`, unless it is ready sooner already.
    mutating func add(_ key: Key, at moment: Date) {
        guard !readySet.contains(key), !dirty.contains(key) else { return }
        delayed[key] = min(delayed[key] ?? moment, moment)
    }

    /// The next key to process at `now`, or when to ask again.
    mutating func next(now: Date) -> Next {
        for (key, moment) in delayed where moment <= now && !processing.contains(key) {
            delayed[key] = nil
            if !readySet.contains(key) {
                ready.append(key)
                readySet.insert(key)
            }
        }
        refill(now: now)
        guard let index = ready.firstIndex(where: { !processing.contains($0) }) else {
            return .wait(until: delayed.values.min())
        }
        guard tokens >= 1 else { return .wait(until: now.addingTimeInterval((1 - tokens) / rate)) }
        tokens -= 1
        let key = ready.remove(at: index)
        readySet.remove(key)
        processing.insert(key)
        return .process(key)
    }

    /// Ends processing of `key` at `now`.
    mutating func done(_ key: Key, _ outcome: Outcome, now: Date) {
        processing.remove(key)
        switch outcome {
        case .success:
            failures[key] = nil
        case .retry:
            let count = (failures[key] ?? 0) + 1
            failures[key] = count
            delayed[key] = now.addingTimeInterval(backoff(afterFailures: count))
        case .requeue(let seconds):
            failures[key] = nil
            add(key, at: now.addingTimeInterval(seconds))
        }
        if dirty.remove(key) != nil {
            if outcome == .retry { return }  // A change arrived, but the key is backing off: it retries with it.
            add(key)
        }
    }

    /// The delay before the `count`-th retry: `baseDelay · 2^(count-1)`, capped at `maxDelay`.
    func backoff(afterFailures count: Int) -> TimeInterval {
        min(maxDelay, baseDelay * pow(2, Double(min(count, 40) - 1)))
    }

    private mutating func refill(now: Date) {
        if let refilledAt { tokens = min(burst, tokens + now.timeIntervalSince(refilledAt) * rate) }
        refilledAt = now
    }
}
