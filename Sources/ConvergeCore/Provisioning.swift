import Foundation

/// An event to append to a deployment's log: a log line, a phase, a heartbeat or a status change.
public struct DeploymentEventDraft: Equatable, Sendable {
    /// What the event is.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case log
        case phase
        case heartbeat
        case status
    }

    public var kind: Kind
    public var message: String
    public var data: Value?

    public init(kind: Kind, message: String, data: Value? = nil) {
        self.kind = kind
        self.message = message
        self.data = data
    }
}

/// Everything a provisioner is given to apply one deployment (DESIGN §5).
public struct ProvisionJob: Sendable {
    /// Where and how an asynchronous provisioner reports progress.
    public struct Callback: Sendable, Equatable {
        public var url: String
        public var token: String

        public init(url: String, token: String) {
            self.url = url
            self.token = token
        }
    }

    public var deployment: Deployment
    /// The bundle's artifacts (name → type), which the outputs should carry.
    public var artifacts: [String: String]
    /// Secrets read fresh at dispatch; never logged, never snapshotted.
    public var secrets: [String: String]
    public var callback: Callback?
    /// Seconds the provisioner has left for this deployment: its timeout counted from the deployment's first start,
    /// so a call resumed after a lease takeover gets what remains. Nil: the provisioner's own timeout.
    public var timeLimit: TimeInterval?
    /// The cloud driver of the bundle (`spec.cloud.resource`), for a cloud provisioner.
    public var cloudResource: String?

    public init(
        deployment: Deployment, artifacts: [String: String], secrets: [String: String], callback: Callback?,
        timeLimit: TimeInterval? = nil, cloudResource: String? = nil
    ) {
        self.cloudResource = cloudResource
        self.deployment = deployment
        self.artifacts = artifacts
        self.secrets = secrets
        self.callback = callback
        self.timeLimit = timeLimit
    }

    /// The idempotency key of this attempt: the same on every resend of it, after a restart too.
    public var idempotencyKey: String { "\(deployment.id)/\(deployment.attempt)" }

    /// The JSON document a provisioner receives, on a webhook's body or an exec command's stdin.
    public var document: Value {
        let snapshot = deployment.snapshot
        var document: [String: Value] = [
            "apiVersion": "converge/v1",
            "deployment": [
                "id": .string(deployment.id), "attempt": .int(deployment.attempt),
                "action": .string(snapshot.action.rawValue), "instance": .string(deployment.instanceID),
                "version": .string(snapshot.version), "params": snapshot.params,
                "connectionParams": snapshot.connectionParams, "metadata": snapshot.metadata,
            ],
            "artifacts": .object(artifacts.mapValues { .string($0) }),
            "secrets": .object(secrets.mapValues { .string($0) }),
        ]
        if let callback { document["callback"] = ["url": .string(callback.url), "token": .string(callback.token)] }
        return .object(document)
    }
}

/// How a provisioner call ended.
public enum ProvisionOutcome: Sendable, Equatable {
    /// Applied; outputs (artifact name → data) and, for a plan, its result. A plan's result reports changes with a
    /// non-empty `changes` (an array of what differs, or an object keyed by it), or `changed: true` /
    /// `drifted: true`; anything else reports none. Drift checks read it so (`Drifted`).
    case completed(outputs: Value, planResult: Value?)
    /// Not applied, with an error for people.
    case failed(String)
    /// Accepted for asynchronous work: progress and the result arrive on the callback URL.
    case accepted

    /// Reads the verdict a provisioner's JSON answer states, as the webhook contract defines it (DESIGN §5):
    /// `{"status": "completed", "outputs": {…}, "planResult": …}`, `{"status": "failed", "error": "…"}` or
    /// `{"status": "accepted"}`.
    ///
    /// Anything else states no verdict and is a failure whose reason names what was wrong: not an object, no
    /// `status`, an unknown one, `outputs` that is not an object, or `accepted` where it is not allowed. `source`
    /// starts that reason ("the provisioner answered 200"); `allowsAccepted` is false where the answer must be final
    /// (a 200 answer, a command's last line).
    public init(answer: Value, source: String = "the provisioner answered", allowsAccepted: Bool = true) {
        let expected = allowsAccepted ? "completed, failed or accepted" : "completed or failed"
        guard answer.objectValue != nil else {
            self = .failed(
                "\(source) with a JSON \(answer.typeName), not an object (expected a \"status\": \(expected))")
            return
        }
        guard let status = answer["status"] else {
            self = .failed("\(source) without a \"status\" (expected \(expected))")
            return
        }
        switch status.stringValue {
        case "completed":
            // A null member is an absent one, as JSON encoders of optionals write it.
            func member(_ key: String) -> Value? {
                if case .null? = answer[key] { return nil }
                return answer[key]
            }
            let outputs = member("outputs") ?? [:]
            guard outputs.objectValue != nil else {
                self = .failed("\(source) with \"outputs\" that is a JSON \(outputs.typeName), not an object")
                return
            }
            self = .completed(outputs: outputs, planResult: member("planResult"))
        case "failed":
            switch answer["error"] {
            case .string(let error) where !error.isEmpty: self = .failed(error)
            case nil, .null, .string: self = .failed("\(source) with \"status\": \"failed\" and no \"error\"")
            case let error?: self = .failed(error.canonicalJSON)
            }
        case "accepted" where allowsAccepted:
            self = .accepted
        case "accepted":
            self = .failed(
                "\(source) with \"status\": \"accepted\" (expected \(expected): only a webhook's 202 answer is accepted)"
            )
        default:
            self = .failed("\(source) with \"status\": \(status.canonicalJSON) (expected \(expected))")
        }
    }
}

/// Applies deployments: a webhook, a local command, a cloud API driver, or a scripted one in tests.
public protocol DeploymentProvisioner: Sendable {
    /// Applies `job`, reporting log lines and phases through `events` as they happen. A thrown error fails the
    /// deployment with its description.
    func provision(_ job: ProvisionJob, events: @escaping @Sendable ([DeploymentEventDraft]) async -> Void) async throws
        -> ProvisionOutcome
}
