import ConvergeCore
import ConvergeTestSupport
import Crypto
import Foundation
import Logging
import Testing

@testable import ConvergeProvisioners

/// A deployment to send, as the dispatcher would.
func job(callback: ProvisionJob.Callback? = nil) -> ProvisionJob {
    let deployment = Deployment(
        id: "d01abc", sequence: 7, instanceID: "shop-dev-db",
        snapshot: DeploymentSnapshot(
            action: .provision, params: ["size": 20], connectionParams: ["network": ["vpc": "vpc-1"]],
            version: "1.4.2", metadata: ["actor": "converge"]),
        desiredHash: "h", status: .running, createdBy: "converge", createdAt: Date(), updatedAt: Date(), attempt: 2)
    return ProvisionJob(
        deployment: deployment, artifacts: ["endpoint": "postgres-endpoint"], secrets: ["password": "s3cret"],
        callback: callback)
}

let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// Collects the events a provisioner reports.
actor EventLog {
    var events: [DeploymentEventDraft] = []

    func append(_ new: [DeploymentEventDraft]) {
        events += new
    }
}

@Suite struct WebhookProvisionerTests {
    func provisioner(url: String, timeout: Int = 5, secretEnv: String? = "HOOK_SECRET") -> WebhookProvisioner {
        var settings = WebhookProvisioner.Settings()
        settings.initialBackoff = .milliseconds(10)
        settings.maxAttempts = 4
        settings.maxResponseBytes = 1024
        return WebhookProvisioner(
            Provisioner.Webhook(url: url, secretEnv: secretEnv, timeoutSeconds: timeout), settings: settings,
            logger: quiet, environment: { $0 == "HOOK_SECRET" ? "topsecret" : nil })
    }

    @Test func ok_completesWithOutputsAndSignsTheBody() async throws {
        let server = try await LoopbackServer.start { _, _ in
            ScriptedResponse(status: 200, body: #"{"status": "completed", "outputs": {"endpoint": {"host": "db"}}}"#)
        }
        defer { Task { await server.stop() } }
        let callback = ProvisionJob.Callback(url: "http://127.0.0.1:1/cb", token: "t0k")
        let outcome = try await provisioner(url: server.url).provision(job(callback: callback)) { _ in }
        #expect(outcome == .completed(outputs: ["endpoint": ["host": "db"]], planResult: nil))
        let request = try #require(await server.requests.first)
        #expect(request.header("Idempotency-Key") == "d01abc/2")
        #expect(request.header("Content-Type") == "application/json")
        let expected = HMAC<SHA256>.authenticationCode(
            for: request.body, using: SymmetricKey(data: Data("topsecret".utf8)))
        #expect(request.header("X-Converge-Signature") == "sha256=" + expected.hexString)
        let body = try #require(request.json)
        let deployment = try #require(body["deployment"] as? [String: Any])
        #expect(deployment["id"] as? String == "d01abc")
        #expect(deployment["action"] as? String == "provision")
        #expect((deployment["params"] as? [String: Any])?["size"] as? Int == 20)
        #expect((body["callback"] as? [String: Any])?["token"] as? String == "t0k")
        #expect((body["secrets"] as? [String: Any])?["password"] as? String == "s3cret")
    }

    @Test func serverErrors_areRetriedWithTheSameIdempotencyKey() async throws {
        let server = try await LoopbackServer.start { index, _ in
            index <= 2 ? ScriptedResponse(status: 500, body: "busy") : ScriptedResponse(status: 200, body: "{}")
        }
        defer { Task { await server.stop() } }
        let events = EventLog()
        let outcome = try await provisioner(url: server.url).provision(job()) { await events.append($0) }
        #expect(outcome == .completed(outputs: [:], planResult: nil))
        let keys = await server.requests.map { $0.header("Idempotency-Key") }
        #expect(keys == ["d01abc/2", "d01abc/2", "d01abc/2"])
        #expect(
            await events.events.map(\.message).allSatisfy { $0.hasPrefix("the provisioner answered 500; retrying in") })
    }

    @Test func persistentServerErrors_failAfterTheLastAttempt() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 503) }
        defer { Task { await server.stop() } }
        let outcome = try await provisioner(url: server.url).provision(job()) { _ in }
        #expect(outcome == .failed("the provisioner answered 503 (gave up after 4 attempts)"))
        #expect(await server.requests.count == 4)
    }

    @Test func accepted_meansTheResultComesByCallback() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 202) }
        defer { Task { await server.stop() } }
        #expect(try await provisioner(url: server.url).provision(job()) { _ in } == .accepted)
    }

    @Test func clientErrors_failAtOnceWithTheAnswer() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 422, body: "bad params\nsize") }
        defer { Task { await server.stop() } }
        #expect(
            try await provisioner(url: server.url).provision(job()) { _ in }
                == .failed("the provisioner answered 422: bad params size"))
        #expect(await server.requests.count == 1)
    }

    @Test func redirects_areNotFollowed() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 302) }
        defer { Task { await server.stop() } }
        #expect(
            try await provisioner(url: server.url).provision(job()) { _ in }
                == .failed("the provisioner answered 302; redirects are not followed"))
    }

    @Test func hangingProvisioner_failsAfterTheTimeout() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200, delay: .seconds(5)) }
        defer { Task { await server.stop() } }
        let outcome = try await provisioner(url: server.url, timeout: 1).provision(job()) { _ in }
        #expect(outcome == .failed("webhook call failed: no response within 1.0 seconds"))
        #expect(await server.requests.count == 1)
    }

    @Test func oversizedAndMalformedAnswers_fail() async throws {
        let big = try await LoopbackServer.start { _, _ in
            ScriptedResponse(status: 200, body: String(repeating: "x", count: 4096))
        }
        defer { Task { await big.stop() } }
        #expect(
            try await provisioner(url: big.url).provision(job()) { _ in }
                == .failed("webhook call failed: response larger than 1024 bytes"))
        let malformed = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200, body: "[1]") }
        defer { Task { await malformed.stop() } }
        #expect(
            try await provisioner(url: malformed.url).provision(job()) { _ in }
                == .failed("the provisioner's answer is not a JSON object: [1]"))
    }

    @Test func refusedConnections_areRetriedThenFail() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200) }
        let url = server.url
        await server.stop()
        let outcome = try await provisioner(url: url).provision(job()) { _ in }
        guard case .failed(let message) = outcome else {
            Issue.record("expected a failure, got \(outcome)")
            return
        }
        #expect(message.hasPrefix("connection failed: "))
        #expect(message.hasSuffix("(gave up after 4 attempts)"))
    }

    @Test func disallowedURLsAndMissingSecrets_areRefusedWithoutACall() async throws {
        #expect(
            try await provisioner(url: "https://example.com/deploy").provision(job()) { _ in }
                == .failed("provisioner url https://example.com/deploy is not allowed by the daemon's configuration"))
        #expect(
            try await provisioner(url: "http://127.0.0.1:1/x", secretEnv: "MISSING").provision(job()) { _ in }
                == .failed("the signing secret variable MISSING is not set"))
    }
}
