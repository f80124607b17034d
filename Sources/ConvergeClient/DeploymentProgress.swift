import ConvergeAPI
import ConvergeCore
import Foundation

/// How `--wait` ended, and the exit status each ending has (documented in `converge --help` and the README).
public enum WaitOutcome: Int32, Sendable, CaseIterable {
    case completed = 0
    case failed = 3
    case aborted = 4
    case rejected = 5
    case timedOut = 6

    /// The outcome of a terminal status.
    init?(_ status: Components.Schemas.DeploymentStatus) {
        switch status.rawValue {
        case "COMPLETED": self = .completed
        case "FAILED": self = .failed
        case "ABORTED": self = .aborted
        case "REJECTED": self = .rejected
        default: return nil
        }
    }
}

/// Follows a deployment until it is terminal, printing its progress: each status change and log line as it
/// happens, as plain lines (CI logs keep them all), with a spinner line on a terminal while nothing happens.
public struct DeploymentProgress: Sendable {
    let client: ConvergeClient
    /// Where progress goes: standard error, so standard output keeps only the result.
    let write: @Sendable (String) -> Void
    let isTerminal: Bool

    public init(client: ConvergeClient, write: @escaping @Sendable (String) -> Void, isTerminal: Bool) {
        self.client = client
        self.write = write
        self.isTerminal = isTerminal
    }

    /// Streams deployment `id`'s events from the start until it is terminal or `timeout` passes; a broken stream is
    /// resumed after the last event seen. Returns the deployment as it ended (or as it was at the timeout).
    public func wait(for id: String, timeout: Duration) async throws -> (
        deployment: Components.Schemas.Deployment, outcome: WaitOutcome
    ) {
        let spinner = isTerminal ? Spinner(write: write) : nil
        defer { spinner?.stop() }
        let followed = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                var last: String?
                var failures = 0
                while true {
                    do {
                        for try await event in try await client.followEvents(of: id, after: last) {
                            last = String(event.sequence)
                            failures = 0
                            spinner?.clear()
                            write(Self.line(event))
                            if event.kind == "status" { spinner?.status = event.message }
                        }
                        return true
                    } catch let error as APIFailure {
                        throw error
                    } catch {
                        // The connection broke: resume after the last event, a few times.
                        failures += 1
                        if failures > 5 { throw error }
                        try await Task.sleep(for: .seconds(1))
                    }
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return false
            }
            let first = try await group.next()!
            group.cancelAll()
            return first
        }
        let deployment = try await client.api.getDeployment(path: .init(id: id)).ok.body.json
        guard followed, let outcome = WaitOutcome(deployment.status) else { return (deployment, .timedOut) }
        return (deployment, outcome)
    }

    /// One event as a progress line: `12:00:03  RUNNING -> COMPLETED` or `12:00:02  | applying…`.
    public static func line(_ event: Components.Schemas.DeploymentEvent) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss"
        let time = formatter.string(from: event.at)
        switch event.kind {
        case "log": return "\(time)  | \(event.message)"
        case "status": return "\(time)  \(event.message)"
        default: return "\(time)  \(event.kind): \(event.message)"
        }
    }
}

/// A one-line spinner on a terminal, redrawn in place; lines printed through `clear()` first go above it.
final class Spinner: @unchecked Sendable {
    private let lock = NSLock()
    private let write: @Sendable (String) -> Void
    private var task: Task<Void, Never>?
    private var shown = false
    private var _status = "waiting"

    var status: String {
        get { lock.withLock { _status } }
        set { lock.withLock { _status = newValue } }
    }

    init(write: @escaping @Sendable (String) -> Void) {
        self.write = write
        let frames = Array("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")
        task = Task { [weak self] in
            var frame = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(120))
                guard let self else { return }
                self.lock.withLock {
                    self.rawWrite("\r\u{1B}[2K\(frames[frame % frames.count]) \(self._status)")
                    self.shown = true
                }
                frame += 1
            }
        }
    }

    /// Erases the spinner line, so the next line prints in its place.
    func clear() {
        lock.withLock {
            if shown { rawWrite("\r\u{1B}[2K") }
            shown = false
        }
    }

    func stop() {
        task?.cancel()
        clear()
    }

    private func rawWrite(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
