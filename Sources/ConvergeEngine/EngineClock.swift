import Foundation

/// The engine's source of time: what time it is, and waiting until a moment. Tests use a manual clock.
public protocol EngineClock: Sendable {
    var now: Date { get }
    /// Returns at `deadline`, or throws `CancellationError` when the task is cancelled first.
    func sleep(until deadline: Date) async throws
}

/// The wall clock.
public struct SystemClock: EngineClock {
    public init() {}

    public var now: Date { Date() }

    public func sleep(until deadline: Date) async throws {
        let seconds = deadline.timeIntervalSinceNow
        if seconds > 0 { try await Task.sleep(for: .milliseconds(Int64((seconds * 1000).rounded(.up)))) }
    }
}
