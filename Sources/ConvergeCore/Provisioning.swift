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

    public init(deployment: Deployment, artifacts: [String: String], secrets: [String: String], callback: Callback?) {
        self.deployment = deployment
        self.artifacts = artifacts
        self.secrets = secrets
        self.callback = callback
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
    /// Applied; outputs (artifact name → data) and, for a plan, its result.
    case completed(outputs: Value, planResult: Value?)
    /// Not applied, with an error for people.
    case failed(String)
    /// Accepted for asynchronous work: progress and the result arrive on the callback URL.
    case accepted

    /// Reads a provisioner's JSON answer: `{"status": "completed"|"failed", "outputs", "planResult", "error"}`.
    public init(answer: Value) {
        switch answer["status"]?.stringValue {
        case "failed":
            self = .failed(answer["error"]?.stringValue ?? "the provisioner reported a failure")
        case "accepted":
            self = .accepted
        default:
            self = .completed(outputs: answer["outputs"] ?? [:], planResult: answer["planResult"])
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
