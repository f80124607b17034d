import ConvergeCore
import ConvergeTestSupport
import Foundation
import Testing

@testable import ConvergeProvisioners

/// Issue 13: a call that never reached the provisioner is sent again until the deployment's deadline, so a
/// provisioner that restarts fails nothing and applies the deployment once.
@Suite struct WebhookUnreachableTests {
    let completed = #"{"status": "completed", "outputs": {"endpoint": {"host": "db"}}}"#

    func provisioner(url: String) -> WebhookProvisioner {
        var settings = WebhookProvisioner.Settings()
        settings.initialBackoff = .milliseconds(50)
        settings.maxBackoff = .milliseconds(400)
        return WebhookProvisioner(
            Provisioner.Webhook(url: url, secretEnv: nil, timeoutSeconds: 30), settings: settings, logger: quiet)
    }

    @Test func provisionerDownThenUp_completesWithOneAppliedCall() async throws {
        let port = try freeLoopbackPort()
        let webhook = provisioner(url: "http://127.0.0.1:\(port)/deploy")
        let events = EventLog()
        let call = Task { try await webhook.provision(job()) { await events.append($0) } }
        // Down (the port is closed) for more refused attempts than a call that reached it would get.
        try await eventually("five refused attempts", timeout: .seconds(20)) {
            await events.events.filter { $0.message.hasPrefix("connection failed: connection refused") }.count >= 5
        }
        let server = try await LoopbackServer.start(port: port) { [completed] _, _ in
            ScriptedResponse(status: 200, body: completed)
        }
        defer { Task { await server.stop() } }
        let ended = try #require(await result(of: call, within: .seconds(20)), "the call did not end")
        #expect(try ended.get() == .completed(outputs: ["endpoint": ["host": "db"]], planResult: nil))
        let requests = await server.requests
        #expect(requests.count == 1)
        #expect(requests.first?.header("Idempotency-Key") == "d01abc/2")
    }

    @Test func keyInFlightAnswered409_isAskedAgainUntilItsAnswer() async throws {
        let server = try await LoopbackServer.start { [completed] index, _ in
            index <= 2
                ? ScriptedResponse(status: 409, body: #"{"error": "d01abc/2 is being applied"}"#)
                : ScriptedResponse(status: 200, body: completed)
        }
        defer { Task { await server.stop() } }
        let outcome = try await provisioner(url: server.url).provision(job()) { _ in }
        #expect(outcome == .completed(outputs: ["endpoint": ["host": "db"]], planResult: nil))
        #expect(await server.requests.map { $0.header("Idempotency-Key") } == Array(repeating: "d01abc/2", count: 3))
    }
}
