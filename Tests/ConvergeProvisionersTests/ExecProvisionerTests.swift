import ConvergeCore
import Foundation
import Testing

@testable import ConvergeProvisioners

@Suite struct ExecProvisionerTests {
    func run(_ script: String, timeout: Int = 10) async throws -> (ProvisionOutcome, [DeploymentEventDraft]) {
        let events = EventLog()
        let provisioner = ExecProvisioner(
            Provisioner.Exec(command: ["/bin/sh", "-c", script], workingDirectory: nil, timeoutSeconds: timeout),
            logger: quiet)
        let outcome = try await provisioner.provision(job()) { await events.append($0) }
        return (outcome, await events.events)
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

    @Test func timeout_killsTheWholeProcessGroup() async throws {
        let (outcome, _) = try await run("sleep 30 & sleep 30; echo never", timeout: 1)
        #expect(outcome == .failed("timed out after 1s; the command was killed"))
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
