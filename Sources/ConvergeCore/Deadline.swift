import Synchronization

/// `body`'s result, or `internal` "no answer within …" once `deadline` has passed: the caller goes on at the deadline
/// even when `body` does not heed the cancellation it then gets (a call waiting on a connection that never answers),
/// which a task group, waiting for all its children, would not.
public func withDeadline<T: Sendable>(_ deadline: Duration, _ body: @escaping @Sendable () async throws -> T)
    async throws -> T
{
    let waiter = Waiter<T>()
    return try await withCheckedThrowingContinuation { continuation in
        waiter.set(continuation)
        let work = Task {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            waiter.resume(with: result)
        }
        Task {
            try? await Task.sleep(for: deadline)
            if waiter.resume(with: .failure(ConvergeError(.internal, "no answer within \(deadline)"))) { work.cancel() }
        }
    }
}

/// A continuation resumed once, by whichever comes first.
private final class Waiter<T: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<T, any Error>?>(nil)

    func set(_ continuation: CheckedContinuation<T, any Error>) {
        self.continuation.withLock { $0 = continuation }
    }

    /// Resumes the continuation with `result` unless it was resumed already; whether it was this call.
    @discardableResult
    func resume(with result: Result<T, any Error>) -> Bool {
        guard let continuation = continuation.withLock({ $0.take() }) else { return false }
        continuation.resume(with: result)
        return true
    }
}
