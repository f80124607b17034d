import ConvergeCore
import ConvergeTestSupport
import Crypto
import Foundation
import Logging
import Testing

@testable import ConvergeProvisioners

/// A deployment to send, as the dispatcher would.
func job(callback: ProvisionJob.Callback? = nil, timeLimit: TimeInterval? = nil) -> ProvisionJob {
    let deployment = Deployment(
        id: "d01abc", sequence: 7, instanceID: "shop-dev-db",
        snapshot: DeploymentSnapshot(
            action: .provision, params: ["size": 20], connectionParams: ["network": ["vpc": "vpc-1"]],
            version: "1.4.2", metadata: ["actor": "converge"]),
        desiredHash: "h", status: .running, createdBy: "converge", createdAt: Date(), updatedAt: Date(), attempt: 2)
    return ProvisionJob(
        deployment: deployment, artifacts: ["endpoint": "postgres-endpoint"], secrets: ["password": "s3cret"],
        callback: callback, timeLimit: timeLimit)
}

let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// The result of `task`, or nil when it has not ended within `limit`: a hung call fails its test instead of hanging
/// the suite.
func result<Success: Sendable>(
    of task: Task<Success, any Error>, within limit: Duration
) async -> Result<Success, any Error>? {
    let (results, continuation) = AsyncStream.makeStream(of: Result<Success, any Error>?.self)
    let waiter = Task { continuation.yield(await task.result) }
    let timer = Task {
        try? await Task.sleep(for: limit)
        continuation.yield(nil)
    }
    var iterator = results.makeAsyncIterator()
    let first = await iterator.next() ?? nil
    timer.cancel()
    _ = waiter
    return first
}

/// Collects the events a provisioner reports.
actor EventLog {
    var events: [DeploymentEventDraft] = []

    func append(_ new: [DeploymentEventDraft]) {
        events += new
    }
}

@Suite struct WebhookProvisionerTests {
    func provisioner(
        url: String, timeout: Int = 5, secretEnv: String? = "HOOK_SECRET", maxAttempts: Int = 4,
        connectTimeout: Duration = .seconds(5)
    ) -> WebhookProvisioner {
        var settings = WebhookProvisioner.Settings()
        settings.initialBackoff = .milliseconds(10)
        settings.maxAttempts = maxAttempts
        settings.connectTimeout = connectTimeout
        settings.allowedURLPrefixes.append("https://127.0.0.1:")
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
            index <= 2
                ? ScriptedResponse(status: 500, body: "busy")
                : ScriptedResponse(status: 200, body: #"{"status": "completed"}"#)
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
        #expect(outcome == .failed("webhook call failed: no response within 1s"))
        let requests = await server.requests
        #expect(requests.count == 1, "requests: \(requests.map(\.receivedAt))")
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
                == .failed(
                    #"the provisioner answered 200 with a JSON array, not an object (expected a "status": completed or failed)"#
                ))
    }

    @Test func refusedConnections_areRetriedUntilTheDeadlineThenFail() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200) }
        let url = server.url
        await server.stop()
        let events = EventLog()
        // Time for five attempts even at the longest jittered backoff (0.25 + 0.5 + 1 + 2 s), on a loaded machine.
        let outcome = try await provisioner(url: url, timeout: 5).provision(job()) { await events.append($0) }
        guard case .failed(let message) = outcome else {
            Issue.record("expected a failure, got \(outcome)")
            return
        }
        #expect(message.hasPrefix("connection failed: connection refused"))
        #expect(message.hasSuffix("(no time left to retry within the deployment's time limit)"))
        // Never sent, so not bounded by the 4 attempts of a call that may have reached the provisioner.
        #expect(await events.events.count > 4)
    }

    @Test func disallowedURLsAndMissingSecrets_areRefusedWithoutACall() async throws {
        #expect(
            try await provisioner(url: "https://example.com/deploy").provision(job()) { _ in }
                == .failed("provisioner url https://example.com/deploy is not allowed by the daemon's configuration"))
        #expect(
            try await provisioner(url: "http://127.0.0.1:1/x", secretEnv: "MISSING").provision(job()) { _ in }
                == .failed("the signing secret variable MISSING is not set"))
    }

    /// A 2xx answer and the failure it must be recorded as (issue 6: these were recorded COMPLETED).
    struct UnstatedVerdict: Sendable, CustomTestStringConvertible {
        var status: Int
        var body: String
        var reason: String
        var testDescription: String { "\(status) \(body)" }
    }

    @Test(arguments: [
        UnstatedVerdict(
            status: 200, body: "{}",
            reason: #"the provisioner answered 200 without a "status" (expected completed or failed)"#),
        UnstatedVerdict(
            status: 200, body: #"{"error": "boom"}"#,
            reason: #"the provisioner answered 200 without a "status" (expected completed or failed)"#),
        UnstatedVerdict(
            status: 200, body: #"{"status": "done"}"#,
            reason: #"the provisioner answered 200 with "status": "done" (expected completed or failed)"#),
        UnstatedVerdict(
            status: 201, body: #"{"status": 1}"#,
            reason: #"the provisioner answered 201 with "status": 1 (expected completed or failed)"#),
        UnstatedVerdict(
            status: 200, body: "ok",
            reason: "the provisioner answered 200 with a body that is not JSON: ok"),
        UnstatedVerdict(
            status: 200, body: #"{"status": "completed""#,
            reason: #"the provisioner answered 200 with a body that is not JSON: {"status": "completed""#),
        UnstatedVerdict(
            status: 200, body: "",
            reason: #"the provisioner answered 200 with an empty body (expected a JSON object with a "status")"#),
        UnstatedVerdict(
            status: 204, body: "",
            reason: #"the provisioner answered 204 with an empty body (expected a JSON object with a "status")"#),
        UnstatedVerdict(
            status: 200, body: #"{"status": "accepted"}"#,
            reason:
                #"the provisioner answered 200 with "status": "accepted" (expected completed or failed: only a webhook's 202 answer is accepted)"#
        ),
        UnstatedVerdict(
            status: 200, body: #"{"status": "completed", "outputs": [1]}"#,
            reason: #"the provisioner answered 200 with "outputs" that is a JSON array, not an object"#),
        UnstatedVerdict(
            status: 200, body: #"{"status": "failed"}"#,
            reason: #"the provisioner answered 200 with "status": "failed" and no "error""#),
        UnstatedVerdict(
            status: 202, body: #"{"status": "completed"}"#,
            reason: #"the provisioner answered 202 with "status": "completed" (expected accepted)"#),
    ])
    func answersStatingNoVerdict_failWithTheReason(_ answer: UnstatedVerdict) async throws {
        let server = try await LoopbackServer.start { _, _ in
            ScriptedResponse(status: answer.status, body: answer.body)
        }
        defer { Task { await server.stop() } }
        #expect(try await provisioner(url: server.url).provision(job()) { _ in } == .failed(answer.reason))
        #expect(await server.requests.count == 1)
    }

    @Test func statedVerdicts_areRecordedAsStated() async throws {
        let answers: [(Int, String, ProvisionOutcome)] = [
            (200, #"{"status": "failed", "error": "quota exceeded"}"#, .failed("quota exceeded")),
            (
                200, #"{"status": "completed", "planResult": {"changes": ["size"]}, "outputs": null}"#,
                .completed(outputs: [:], planResult: ["changes": ["size"]])
            ),
            (202, #"{"status": "accepted"}"#, .accepted),
            (202, #"{"job": "j-1"}"#, .accepted),
        ]
        for (status, body, expected) in answers {
            let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: status, body: body) }
            let outcome = try await provisioner(url: server.url).provision(job()) { _ in }
            await server.stop()
            #expect(outcome == expected, "answer \(status) \(body)")
        }
    }

    @Test func answerShorterThanItsContentLength_isRetriedThenFails() async throws {
        let server = try await RawLoopbackServer.start(
            answer: Array("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"status\"".utf8))
        defer { Task { await server.stop() } }
        // Each attempt is capped by the deployment's deadline: a long one, so a loaded machine still makes both.
        let outcome = try await provisioner(url: server.url(), timeout: 30, maxAttempts: 2).provision(job()) { _ in }
        #expect(
            outcome
                == .failed(
                    "connection failed: the answer ended after 9 of the 50 bytes its Content-Length announced"
                        + " (gave up after 2 attempts)"))
        #expect(server.connections == 2)
    }

    @Test func answerCutOffAfterTheStatusLine_fails() async throws {
        for answer in ["HTTP/1.1 200 OK\r\n", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"] {
            let server = try await RawLoopbackServer.start(answer: Array(answer.utf8))
            let outcome = try await provisioner(url: server.url(), maxAttempts: 1).provision(job()) { _ in }
            await server.stop()
            #expect(
                outcome
                    == .failed(
                        #"the provisioner answered 200 with an empty body (expected a JSON object with a "status")"#),
                "answer \(answer.debugDescription)")
        }
    }

    @Test func httpsToAPortThatNeverSpeaksTLS_failsOnTheConnectTimeoutAndIsRetriedUntilTheDeadline() async throws {
        let server = try await RawLoopbackServer.start(answer: nil)
        defer { Task { await server.stop() } }
        let started = ContinuousClock.now
        let outcome = try await provisioner(
            url: server.url(scheme: "https"), timeout: 6, maxAttempts: 2, connectTimeout: .milliseconds(300)
        ).provision(job()) { _ in }
        guard case .failed(let message) = outcome else {
            Issue.record("expected a failure, got \(outcome)")
            return
        }
        #expect(message.hasPrefix("connection failed: connect timed out after "))
        #expect(
            message.hasSuffix(
                "(TLS handshake with 127.0.0.1:\(server.port) did not finish) (no time left to retry within the"
                    + " deployment's time limit)"))
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(server.connections > 2)
    }

    @Test func cancellation_abortsTheCallAtOnceAndThrows() async throws {
        let server = try await RawLoopbackServer.start(answer: nil)
        defer { Task { await server.stop() } }
        let webhook = provisioner(url: server.url(), timeout: 30)
        let call = Task { try await webhook.provision(job()) { _ in } }
        try await eventually("the call reached the server", timeout: .seconds(10)) { server.connections == 1 }
        call.cancel()
        // Within 5 s of a call that would take 30: prompt, however loaded the machine (speed is for benchmarks).
        let ended = try #require(await result(of: call, within: .seconds(5)), "the cancelled call did not end")
        #expect(throws: CancellationError.self) { try ended.get() }
    }

    @Test func timeLimit_capsTheWebhooksTimeout() async throws {
        let server = try await RawLoopbackServer.start(answer: nil)
        defer { Task { await server.stop() } }
        let started = ContinuousClock.now
        let outcome = try await provisioner(url: server.url(), timeout: 30).provision(job(timeLimit: 0.5)) { _ in }
        #expect(
            outcome
                == .failed(
                    "webhook call failed: no response within 0.5s, what was left of the deployment's time limit"))
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(server.connections == 1)
    }

    @Test(arguments: [0, -3] as [TimeInterval])
    func noTimeLeft_failsAtOnceWithoutACall(timeLimit: TimeInterval) async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200) }
        defer { Task { await server.stop() } }
        #expect(
            try await provisioner(url: server.url).provision(job(timeLimit: timeLimit)) { _ in }
                == .failed("timed out: the deployment's time limit, counted from its first start, has passed"))
        #expect(await server.requests.isEmpty)
    }
}
