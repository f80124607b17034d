import ConvergeAPI
import Foundation

/// Follows a rollout until it ends, printing a line whenever an instance's outcome changes and when a wave starts,
/// so CI logs show the order the instances went in. It reads the rollout every `interval`.
public struct RolloutProgress: Sendable {
    let client: ConvergeClient
    /// Where progress goes: standard error, so standard output keeps only the result.
    let write: @Sendable (String) -> Void
    let interval: Duration

    public init(client: ConvergeClient, write: @escaping @Sendable (String) -> Void, interval: Duration = .seconds(1)) {
        self.client = client
        self.write = write
        self.interval = interval
    }

    /// Follows rollout `id` until it is no longer RUNNING or `timeout` passes; returns it as it was last read and the
    /// exit status of its end: 0 COMPLETED, 3 FAILED, 4 REPLACED, 6 still running at the timeout.
    public func wait(for id: String, timeout: Duration) async throws -> (
        rollout: Components.Schemas.Rollout, outcome: WaitOutcome
    ) {
        let deadline = ContinuousClock.now + timeout
        var seen: [String: String] = [:]
        var wave = -1
        while true {
            let rollout = try await client.api.getRollout(path: .init(id: id)).ok.body.json
            for item in rollout.items where seen[item.instance] != item.outcome.rawValue {
                let first = seen[item.instance] == nil
                seen[item.instance] = item.outcome.rawValue
                if first && item.outcome == .waiting { continue }
                if item.wave > wave {
                    wave = item.wave
                    write("wave \(wave + 1) of \(rollout.waves)")
                }
                write(Self.line(item))
            }
            switch rollout.status {
            case .completed: return (rollout, .completed)
            case .failed: return (rollout, .failed)
            case .replaced: return (rollout, .aborted)
            case .running:
                guard ContinuousClock.now < deadline else { return (rollout, .timedOut) }
                try await Task.sleep(for: interval)
            }
        }
    }

    /// One instance's progress as a line: `  ecomm-pr1-db  completed  d0123…`.
    public static func line(_ item: Components.Schemas.RolloutItem) -> String {
        "  \(item.instance)  \(item.outcome.rawValue)" + (item.deployment.map { "  \($0)" } ?? "")
            + (item.message.map { "  (\($0))" } ?? "")
    }
}
