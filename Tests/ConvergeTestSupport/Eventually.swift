import Foundation

/// Why a condition did not come true in time.
public struct TimedOut: Error, CustomStringConvertible {
    public var description: String

    public init(description: String) {
        self.description = description
    }
}

/// Waits until `condition` holds, checking every 100 ms, and throws after `timeout`: no fixed sleeps.
public func eventually(
    _ what: String, timeout: Duration = .seconds(30), _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    let pollInterval = Duration.milliseconds(100)
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: pollInterval)
    }
    throw TimedOut(description: "timed out after \(timeout) waiting until \(what)")
}
