import ConvergeCore
import ConvergeTestSupport
import Foundation
import Testing

@testable import ConvergeProvisioners

@Suite struct ExecProvisionerTests {
    func provisioner(_ script: String, timeout: Int = 10) -> ExecProvisioner {
        ExecProvisioner(
            Provisioner.Exec(command: ["/bin/sh", "-c", script], workingDirectory: nil, timeoutSeconds: timeout),
            logger: quiet)
    }

    func run(
        _ script: String, timeout: Int = 10, timeLimit: TimeInterval? = nil
    ) async throws -> (ProvisionOutcome, [DeploymentEventDraft]) {
        let events = EventLog()
        let outcome = try await provisioner(script, timeout: timeout).provision(job(timeLimit: timeLimit)) {
            await events.append($0)
        }
        return (outcome, await events.events)
    }

    /// Whether a process of group `group` is still alive (zombies, which no longer run, do not count).
    static func processGroupIsAlive(_ group: Int32) -> Bool {
        #if os(Linux)
            let processes = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return processes.contains { pid in
                guard Int32(pid) != nil, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                    let nameEnd = stat.lastIndex(of: ")")
                else { return false }
                // After the name: state, parent, process group.
                let fields = stat[stat.index(after: nameEnd)...].split(separator: " ")
                return fields.count > 2 && fields[0] != "Z" && Int32(fields[2]) == group
            }
        #else
            return kill(-group, 0) == 0
        #endif
    }

    @Test func exitZero_completesWithOutputsFromTheFinalJSONLine() async throws {
        let (outcome, events) = try await run(
            """
            read -r document
            echo "applying $CONVERGE_DEPLOYMENT_ACTION of $CONVERGE_INSTANCE_ID ($CONVERGE_DEPLOYMENT_ID, attempt $CONVERGE_DEPLOYMENT_ATTEMPT)"
            echo "warming up" >&2
            case "$document" in *'"size":20'*) echo "saw params";; esac
            echo '{"outputs": {"endpoint": {"host": "db.internal"}}}'
            """)
        #expect(outcome == .completed(outputs: ["endpoint": ["host": "db.internal"]], planResult: nil))
        let lines = events.map(\.message)
        #expect(lines.contains("applying provision of shop-dev-db (d01abc, attempt 2)"))
        #expect(lines.contains("saw params"))
        #expect(events.contains { $0.message == "warming up" && $0.data == ["stream": "stderr"] })
    }

    @Test func exitZeroWithoutJSON_completesWithoutOutputs() async throws {
        #expect(try await run("echo done").0 == .completed(outputs: [:], planResult: nil))
    }

    @Test func nonZeroExit_failsWithTheTailOfStderr() async throws {
        let (outcome, _) = try await run("for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo \"line $i\" >&2; done; exit 3")
        let tail = (3...12).map { "line \($0)" }.joined(separator: "\n")
        #expect(outcome == .failed("exited with status 3: \(tail)"))
    }

    /// Regression (issue 6): the verdict raced the streams' end and was sometimes `killed by signal 9`.
    @Test func timeout_killsTheWholeProcessGroup() async throws {
        let (outcome, events) = try await run("echo $$; sleep 30 & sleep 30; echo never", timeout: 1)
        #expect(outcome == .failed("timed out after 1s; the command was killed"))
        let group = try #require(events.first.flatMap { Int32($0.message) })
        try await eventually("the command's process group is gone", timeout: .seconds(5)) {
            !Self.processGroupIsAlive(group)
        }
    }

    @Test func cancellation_killsTheWholeProcessGroupAndThrows() async throws {
        let events = EventLog()
        let command = provisioner("echo $$; sleep 30 & sleep 30; echo never", timeout: 60)
        let call = Task { try await command.provision(job()) { await events.append($0) } }
        try await eventually("the command started", timeout: .seconds(10)) { await !events.events.isEmpty }
        let group = try #require(await events.events.first.flatMap { Int32($0.message) })
        #expect(Self.processGroupIsAlive(group))
        call.cancel()
        // Within 5 s of a call that would take 30: prompt, however loaded the machine (speed is for benchmarks).
        let ended = try #require(await result(of: call, within: .seconds(5)), "the cancelled call did not end")
        #expect(throws: CancellationError.self) { try ended.get() }
        try await eventually("the command's process group is gone", timeout: .seconds(5)) {
            !Self.processGroupIsAlive(group)
        }
        #expect(await !events.events.contains { $0.message == "never" })
    }

    @Test func timeLimit_capsTheCommandsTimeout() async throws {
        let started = ContinuousClock.now
        let (outcome, _) = try await run("sleep 30", timeout: 30, timeLimit: 0.5)
        #expect(
            outcome
                == .failed(
                    "timed out after 0.5s, what was left of the deployment's time limit; the command was killed"))
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test func aLongerTimeLimit_leavesTheCommandsOwnTimeout() async throws {
        let (outcome, _) = try await run("sleep 30", timeout: 1, timeLimit: 600)
        #expect(outcome == .failed("timed out after 1s; the command was killed"))
    }

    @Test(arguments: [0, -1] as [TimeInterval])
    func noTimeLeft_failsWithoutRunningTheCommand(timeLimit: TimeInterval) async throws {
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("converge-\(UUID().uuidString)")
        let (outcome, _) = try await run("touch '\(marker.path)'", timeLimit: timeLimit)
        #expect(outcome == .failed("timed out: the deployment's time limit, counted from its first start, has passed"))
        #expect(!FileManager.default.fileExists(atPath: marker.path))
    }

    @Test func aFinalLineStatingNoKnownVerdict_fails() async throws {
        #expect(
            try await run(#"echo '{"status": "done", "outputs": {}}'"#).0
                == .failed(#"the command ended with a JSON line with "status": "done" (expected completed or failed)"#))
        #expect(
            try await run(#"echo '{"status": "accepted"}'"#).0
                == .failed(
                    #"the command ended with a JSON line with "status": "accepted" (expected completed or failed: only a webhook's 202 answer is accepted)"#
                ))
    }

    @Test func aFinalLineStatingAVerdict_decidesTheOutcomeOfExitZero() async throws {
        #expect(
            try await run(#"echo '{"status": "completed", "outputs": {"queue": {"url": "q"}}}'"#).0
                == .completed(outputs: ["queue": ["url": "q"]], planResult: nil))
        #expect(try await run(#"echo '{"status": "failed", "error": "no quota"}'"#).0 == .failed("no quota"))
    }

    @Test func missingProgram_fails() async throws {
        let provisioner = ExecProvisioner(
            Provisioner.Exec(command: ["/nonexistent/tofu"], workingDirectory: nil, timeoutSeconds: 5), logger: quiet)
        let outcome = try await provisioner.provision(job()) { _ in }
        guard case .failed(let message) = outcome else {
            Issue.record("expected a failure, got \(outcome)")
            return
        }
        #expect(message.hasPrefix("cannot run /nonexistent/tofu: "))
    }
}
