import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

/// One fault scenario's daemon and provisioner, its checks, and the evidence it prints when one fails or a wait
/// times out: the provisioner's journal, the deployments of `instances`, and the daemon's log tail.
final class FaultScenario {
    let daemon: DaemonProcess
    let provisioner: RecordingProvisioner
    let instances: [String]
    /// Whether the evidence lists only the deployments that did not complete (for scenarios with many instances).
    let onlyUnfinished: Bool
    private var opened: SQLiteStore?
    private var failures = 0
    private var notes: [String] = []

    init(daemon: DaemonProcess, provisioner: RecordingProvisioner, instances: [String], onlyUnfinished: Bool = false) {
        self.daemon = daemon
        self.provisioner = provisioner
        self.instances = instances
        self.onlyUnfinished = onlyUnfinished
    }

    /// The daemon's database, opened once (after the daemon created it) as a second process would.
    func store() throws -> SQLiteStore {
        if let opened { return opened }
        let store = try daemon.store()
        opened = store
        return store
    }

    /// An instance's deployments, newest first.
    func history(_ instance: String) async throws -> [Deployment] {
        try await store().history(instance)
    }

    /// An instance's newest deployment; nil before the first.
    func latest(_ instance: String) async throws -> Deployment? {
        try await history(instance).first
    }

    /// Starts the daemon for the first time and opens its database once it is ready (so that the test's migration
    /// check never races the daemon's creation of the file).
    func start() async throws {
        try await daemon.start()
        try await waitUntil("the daemon is ready") { await daemon.isReady() }
        _ = try store()
    }

    /// Runs the scenario; prints the evidence if it throws or a check failed.
    func run(_ body: (FaultScenario) async throws -> Void) async throws {
        do {
            try await body(self)
        } catch {
            print("fault scenario stopped: \(error)")
            await printEvidence()
            throw error
        }
        if failures > 0 || ProcessInfo.processInfo.environment["CONVERGE_FAULT_EVIDENCE"] != nil {
            await printEvidence()
        }
    }

    /// Adds a line to the evidence.
    func note(_ line: String) {
        notes.append(line)
    }

    /// Records an issue at the caller's location when `condition` is false.
    func expect(
        _ condition: Bool, _ message: @autoclosure () -> String,
        sourceLocation: Testing.SourceLocation = #_sourceLocation
    ) {
        guard !condition else { return }
        failures += 1
        Issue.record(Comment(rawValue: message()), sourceLocation: sourceLocation)
    }

    /// Records one issue listing (the first few of) `problems`, when there are any.
    func expectNone(
        _ problems: [String], _ what: String, sourceLocation: Testing.SourceLocation = #_sourceLocation
    ) {
        let listed = problems.prefix(10).joined(separator: "; ") + (problems.count > 10 ? "; …" : "")
        expect(problems.isEmpty, "\(what) (\(problems.count)): \(listed)", sourceLocation: sourceLocation)
    }

    /// Waits until `condition` holds, at most `timeout`; throws at once if the daemon exited on its own meanwhile.
    func waitUntil(
        _ what: String, timeout: Duration = .seconds(30), _ condition: () async throws -> Bool
    ) async throws {
        try await eventually(what, timeout: timeout) {
            if let process = daemon.process, !process.isRunning {
                throw TimedOut(
                    description:
                        "the daemon exited with status \(process.terminationStatus) while waiting until \(what)")
            }
            return try await condition()
        }
    }

    func printEvidence() async {
        var lines = ["--- evidence ---", await provisioner.report(), "deployments:"]
        for instance in instances {
            for deployment in (try? await history(instance)) ?? []
            where !onlyUnfinished || deployment.status != .completed {
                lines.append(
                    "  \(instance) \(deployment.id) \(deployment.status.rawValue) attempt \(deployment.attempt) "
                        + "lease \(deployment.lease.map { "\($0.owner)#\($0.epoch) until \($0.expiresAt)" } ?? "-") "
                        + "error \(deployment.error ?? "-")")
            }
        }
        lines += notes
        lines.append("daemon log (tail):")
        lines.append(daemon.logTail(60))
        lines.append("--- end of evidence ---")
        print(lines.joined(separator: "\n"))
    }
}
