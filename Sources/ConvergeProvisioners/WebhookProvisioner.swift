import ConvergeCore
import Crypto
import Foundation
import Logging

/// Applies deployments by POSTing them to an HTTP endpoint through libcurl (DESIGN §5).
///
/// The body is the job's JSON document; `Idempotency-Key` is the same on every resend of an attempt, and
/// `X-Converge-Signature: sha256=<hex HMAC-SHA256 of the body>` is set when the provisioner has a secret.
///
/// A call that never reached the provisioner (no connection: refused, unknown host, a connect or TLS-handshake
/// timeout or failure) is safe to send again and is, with capped, jittered exponential backoff, until the
/// deployment's deadline (the job's `timeLimit`, or the webhook's timeout for a first send): a provisioner that is
/// down for a while fails nothing. A 409 (the provisioner is still applying this key, for a daemon that died) is
/// asked again the same way. Errors after the request may have reached the provisioner (a connection that broke, a
/// 5xx answer) are retried at most `maxAttempts` times in all. A 200 carries the verdict, a 202 means the result
/// will arrive on the callback URL, and an answer that states no verdict the contract knows fails the deployment.
/// Redirects are never followed. Each attempt gets the webhook's timeout, or what is left of the deadline when that
/// is shorter; a cancelled task aborts the call at once and the provisioner throws `CancellationError`.
public struct WebhookProvisioner: DeploymentProvisioner {
    /// Daemon-wide settings of every webhook call.
    public struct Settings: Sendable {
        public var connectTimeout: Duration = .seconds(5)
        public var maxAttempts = 4
        public var initialBackoff: Duration = .milliseconds(250)
        /// The longest wait between two attempts (the ones until the deadline are jittered below it).
        public var maxBackoff: Duration = .seconds(5)
        public var maxResponseBytes = 1 << 20
        /// URL prefixes provisioners may be called at; a URL matching none is refused.
        public var allowedURLPrefixes: [String] = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]

        public init() {}
    }

    let webhook: Provisioner.Webhook
    let settings: Settings
    let environment: @Sendable (String) -> String?
    let logger: Logger
    let client = CurlHTTPClient()

    /// A provisioner for `webhook`; `environment` reads the signing secret's variable at each dispatch.
    public init(
        _ webhook: Provisioner.Webhook, settings: Settings, logger: Logger,
        environment: @escaping @Sendable (String) -> String? = { ProcessInfo.processInfo.environment[$0] }
    ) {
        self.webhook = webhook
        self.settings = settings
        self.environment = environment
        self.logger = logger
    }

    public func provision(
        _ job: ProvisionJob, events: @escaping @Sendable ([DeploymentEventDraft]) async -> Void
    ) async throws -> ProvisionOutcome {
        guard settings.allowedURLPrefixes.contains(where: { webhook.url.hasPrefix($0) }) else {
            return .failed("provisioner url \(webhook.url) is not allowed by the daemon's configuration")
        }
        let body = Array(job.document.canonicalJSON.utf8)
        var headers: [(name: String, value: String)] = [
            ("Content-Type", "application/json"), ("Accept", "application/json"),
            ("Idempotency-Key", job.idempotencyKey), ("X-Converge-Deployment", job.deployment.id),
            ("User-Agent", "converge"), ("Expect", ""),
        ]
        if let variable = webhook.secretEnv {
            guard let secret = environment(variable), !secret.isEmpty else {
                return .failed("the signing secret variable \(variable) is not set")
            }
            let signature = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8)))
            headers.append(("X-Converge-Signature", "sha256=" + signature.hexString))
        }
        let ownTimeout = Duration.seconds(webhook.timeoutSeconds)
        let timeLimit = job.timeLimit.map { Duration.seconds($0) } ?? ownTimeout
        // The deployment's deadline, counted from its first start: it caps every attempt and every retry.
        let deadline = ContinuousClock.now + timeLimit
        var metadata: Logger.Metadata = ["deployment.id": "\(job.deployment.id)", "provisioner.url": "\(webhook.url)"]
        var backoff = settings.initialBackoff
        var attempt = 0
        // Attempts that may have reached the provisioner: only these count against `maxAttempts`.
        var delivered = 0
        while true {
            try Task.checkCancellation()
            let left = attempt == 0 ? timeLimit : deadline - .now
            guard left > .zero else { return .timeLimitPassed }
            attempt += 1
            metadata["webhook.attempt"] = "\(attempt)"
            let request = HTTPRequest(
                url: webhook.url, headers: headers, body: body, connectTimeout: settings.connectTimeout,
                timeout: min(ownTimeout, left), maxResponseBytes: settings.maxResponseBytes)
            let problem: String
            var applied = true
            do {
                let response = try await client.post(request)
                switch response.status {
                case 200..<300:
                    return Self.outcome(status: response.status, body: response.body)
                case 409:
                    problem = "the provisioner answered 409: \(Self.excerpt(response.body))"
                    applied = false
                case 500..<600:
                    problem = "the provisioner answered \(response.status)"
                case 300..<400:
                    return .failed("the provisioner answered \(response.status); redirects are not followed")
                default:
                    return .failed(
                        "the provisioner answered \(response.status): \(Self.excerpt(response.body))")
                }
            } catch .unreachable(let message) {
                problem = "connection failed: \(message)"
                applied = false
            } catch .connection(let message) {
                problem = "connection failed: \(message)"
            } catch .cancelled {
                throw CancellationError()
            } catch .timeout(let duration) where duration < ownTimeout {
                return .failed(
                    "webhook call failed: no response within \(duration.secondsText), what was left of the"
                        + " deployment's time limit")
            } catch {
                return .failed("webhook call failed: \(error)")
            }
            if applied {
                delivered += 1
                guard delivered < max(1, settings.maxAttempts) else {
                    return .failed("\(problem) (gave up after \(attempt) attempts)")
                }
            }
            // Attempts that cannot have applied anything wait a jittered backoff, so that the calls of many
            // deployments to a provisioner that comes back do not arrive all at once.
            let wait = applied ? backoff : backoff * Double.random(in: 0.5...1)
            if deadline - .now <= wait {
                return .failed("\(problem) (no time left to retry within the deployment's time limit)")
            }
            logger.info("webhook call will be retried", metadata: metadata.merging(["error": "\(problem)"]) { $1 })
            await events([DeploymentEventDraft(kind: .log, message: "\(problem); retrying in \(wait.secondsText)")])
            try await Task.sleep(for: wait)
            backoff = min(backoff * 2, settings.maxBackoff)
        }
    }

    /// The verdict a 2xx answer states (DESIGN §5): a 200 must carry `"status": "completed"` or `"failed"`; a 202
    /// is accepted, and its body, if it states a status at all, must say `accepted`. Any other answer, an empty or
    /// cut-off body included, is a failure that says what was wrong.
    static func outcome(status: Int, body: [UInt8]) -> ProvisionOutcome {
        let source = "the provisioner answered \(status)"
        let answer = try? Value(json: String(decoding: body, as: UTF8.self))
        if status == 202 {
            guard let stated = answer?["status"], stated != "accepted" else { return .accepted }
            return .failed("\(source) with \"status\": \(stated.canonicalJSON) (expected accepted)")
        }
        guard body.contains(where: { !Self.whitespace.contains($0) }) else {
            return .failed("\(source) with an empty body (expected a JSON object with a \"status\")")
        }
        guard let answer else { return .failed("\(source) with a body that is not JSON: \(excerpt(body))") }
        return ProvisionOutcome(answer: answer, source: source, allowsAccepted: false)
    }

    private static let whitespace: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D]

    /// The start of a body for an error message, one line.
    static func excerpt(_ body: [UInt8]) -> String {
        let text = String(decoding: body.prefix(200), as: UTF8.self)
        return text.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}
