import ConvergeCore
import Foundation
import Logging
import Subprocess

#if canImport(System)
    import System
#else
    import SystemPackage
#endif

/// Applies deployments by running a local command (OpenTofu, Helm, a script) (DESIGN §5).
///
/// The command gets the job's JSON document on stdin and `CONVERGE_DEPLOYMENT_ID`, `CONVERGE_DEPLOYMENT_ACTION`,
/// `CONVERGE_INSTANCE_ID`, `CONVERGE_DEPLOYMENT_ATTEMPT` and `CONVERGE_IDEMPOTENCY_KEY` in its environment. Its
/// stdout and stderr lines are the log; exit 0 completes the deployment, with outputs from a final JSON line
/// (`{"outputs": {...}}`, or the object itself, or a verdict `{"status": "completed"|"failed", ...}`, where any other
/// status fails it); anything else fails it with the tail of stderr. It runs in its own process group, killed whole
/// on timeout (its own, or what is left of the job's `timeLimit` when shorter) and when the calling task is
/// cancelled, which then throws `CancellationError`.
public struct ExecProvisioner: DeploymentProvisioner {
    /// How many lines of stderr a failure quotes.
    static let stderrTailLines = 10

    let exec: Provisioner.Exec
    let logger: Logger

    /// Writing the document to a command that exits without reading it must fail the write, not kill the daemon.
    private static let ignoreBrokenPipes: Void = { signal(SIGPIPE, SIG_IGN) }()

    public init(_ exec: Provisioner.Exec, logger: Logger) {
        _ = Self.ignoreBrokenPipes
        self.exec = exec
        self.logger = logger
    }

    public func provision(
        _ job: ProvisionJob, events: @escaping @Sendable ([DeploymentEventDraft]) async -> Void
    ) async throws -> ProvisionOutcome {
        guard let program = exec.command.first else { return .failed("the exec provisioner has no command") }
        let deployment = job.deployment
        let environment = Environment.inherit.updating([
            "CONVERGE_DEPLOYMENT_ID": deployment.id, "CONVERGE_DEPLOYMENT_ACTION": deployment.action.rawValue,
            "CONVERGE_INSTANCE_ID": deployment.instanceID, "CONVERGE_DEPLOYMENT_ATTEMPT": String(deployment.attempt),
            "CONVERGE_IDEMPOTENCY_KEY": job.idempotencyKey,
        ])
        var options = PlatformOptions()
        options.processGroupID = 0
        let transcript = Transcript()
        // The deployment's time limit, counted from its first start, caps the command's own timeout.
        var timeout = Duration.seconds(exec.timeoutSeconds)
        var limitedByTheDeployment = false
        if let timeLimit = job.timeLimit {
            guard timeLimit > 0 else { return .timeLimitPassed }
            if .seconds(timeLimit) < timeout {
                timeout = .seconds(timeLimit)
                limitedByTheDeployment = true
            }
        }
        try Task.checkCancellation()
        let result: ExecutionResult<Bool, SequenceOutput, SequenceOutput>
        do {
            let document = try Self.unlinkedFile(containing: job.document.canonicalJSON + "\n")
            result = try await run(
                program.contains("/") ? .path(FilePath(program)) : .name(program),
                arguments: Arguments(Array(exec.command.dropFirst())), environment: environment,
                workingDirectory: exec.workingDirectory.map { FilePath($0) }, platformOptions: options,
                input: .fileDescriptor(document, closeAfterSpawningProcess: true), output: .sequence,
                error: .sequence
            ) { execution in
                // A cancelled call kills the whole group at once; its streams then end and the command is reaped.
                try await withTaskCancellationHandler {
                    try await Self.watch(execution, timeout: timeout, transcript: transcript, events: events)
                } onCancel: {
                    try? execution.send(signal: .kill, toProcessGroup: true)
                }
            }
        } catch {
            try Task.checkCancellation()
            return .failed("cannot run \(program): \(error)")
        }
        try Task.checkCancellation()
        if result.closureResult {
            let limit = limitedByTheDeployment ? ", what was left of the deployment's time limit" : ""
            return .failed("timed out after \(timeout.secondsText)\(limit); the command was killed")
        }
        switch result.terminationStatus {
        case .exited(0):
            return await transcript.outcome()
        case .exited(let code):
            return .failed("exited with status \(code)" + (await transcript.stderrTail()))
        case .signaled(let signal):
            return .failed("killed by signal \(signal)" + (await transcript.stderrTail()))
        }
    }

    /// Reads the command's stdout and stderr to their end as log events, and kills its whole process group when
    /// `timeout` passes first; returns whether it did.
    ///
    /// The answer does not depend on which ends first, the streams or the timer: every child task is awaited, so a
    /// kill that was sent is always seen, even when the streams it closed ended before the timer task returned.
    private static func watch(
        _ execution: Execution<some InputProtocol, SequenceOutput, SequenceOutput>, timeout: Duration,
        transcript: Transcript,
        events: @escaping @Sendable ([DeploymentEventDraft]) async -> Void
    ) async throws -> Bool {
        try await withThrowingTaskGroup(of: StreamEnd.self) { group in
            group.addTask {
                for try await line in execution.standardOutput.strings() {
                    await transcript.stdout(line)
                    // The last line may carry outputs marked sensitive: they are logged by name only.
                    let logged = SensitiveValue.showingByName(inLine: line)
                    await events([DeploymentEventDraft(kind: .log, message: logged, data: ["stream": "stdout"])])
                }
                return .drained
            }
            group.addTask {
                for try await line in execution.standardError.strings() {
                    await transcript.stderr(line)
                    await events([DeploymentEventDraft(kind: .log, message: line, data: ["stream": "stderr"])])
                }
                return .drained
            }
            group.addTask {
                do {
                    try await Task.sleep(for: timeout)
                } catch {
                    return .finishedInTime
                }
                try? execution.send(signal: .kill, toProcessGroup: true)
                return .timedOut
            }
            var drained = 0
            var timedOut = false
            while let end = try await group.next() {
                switch end {
                case .drained:
                    drained += 1
                    // Both streams ended: stop the timer, then still wait for its answer.
                    if drained == 2 { group.cancelAll() }
                case .timedOut: timedOut = true
                case .finishedInTime: break
                }
            }
            return timedOut
        }
    }
}

extension ExecProvisioner {
    /// A readable descriptor, at offset 0, of a file holding `text` that no longer has a name.
    ///
    /// The document goes to stdin from a file, not a pipe: a command that exits without reading stdin must not
    /// break the write (swift-subprocess traps when a `.string` input's reader goes away early,
    /// swiftlang/swift-subprocess#367). The file is 0600 and unlinked at once, so the secrets in it never stay on
    /// disk under a name.
    static func unlinkedFile(containing text: String) throws -> FileDescriptor {
        let path = FilePath(
            FileManager.default.temporaryDirectory.appendingPathComponent("converge-\(UUID().uuidString)").path)
        let descriptor = try FileDescriptor.open(
            path, .readWrite, options: [.create, .exclusiveCreate], permissions: [.ownerReadWrite])
        do {
            path.withPlatformString { _ = unlink($0) }
            _ = try descriptor.writeAll(Array(text.utf8))
            _ = try descriptor.seek(offset: 0, from: .start)
            return descriptor
        } catch {
            try? descriptor.close()
            throw error
        }
    }
}

/// How one of the tasks watching a command ended.
private enum StreamEnd: Sendable {
    case drained
    case timedOut
    case finishedInTime
}

/// What a command printed that decides its outcome: its last stdout line and the tail of its stderr.
private actor Transcript {
    var lastStdout: String?
    var stderrLines: [String] = []

    func stdout(_ line: String) {
        if !line.trimmingCharacters(in: .whitespaces).isEmpty { lastStdout = line }
    }

    func stderr(_ line: String) {
        stderrLines.append(line)
        if stderrLines.count > ExecProvisioner.stderrTailLines { stderrLines.removeFirst() }
    }

    func stderrTail() -> String {
        stderrLines.isEmpty ? "" : ": " + stderrLines.joined(separator: "\n")
    }

    /// Completed, with outputs from the last stdout line when it is a JSON object.
    func outcome() -> ProvisionOutcome {
        guard let lastStdout, let answer = try? Value(json: lastStdout), answer.objectValue != nil else {
            return .completed(outputs: [:], planResult: nil)
        }
        if answer["status"] != nil {
            return ProvisionOutcome(answer: answer, source: "the command ended with a JSON line", allowsAccepted: false)
        }
        return .completed(outputs: answer["outputs"] ?? answer, planResult: answer["planResult"])
    }
}
