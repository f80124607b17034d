/// Where a manifest value was written: file (relative to the loaded directory), line and column, 1-based.
public struct SourceLocation: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }

    /// The pseudo-file of a resource applied through the API, `api:<Kind>/<id>`, where its errors point.
    public static func apiFile(of key: ResourceKey) -> String {
        "api:\(key.kind.rawValue)/\(key.id)"
    }

    /// Whether this is where an API-applied resource was declared rather than a manifest file.
    public var isAPI: Bool { file.hasPrefix("api:") }

    public static func < (lhs: SourceLocation, rhs: SourceLocation) -> Bool {
        (lhs.file, lhs.line, lhs.column) < (rhs.file, rhs.line, rhs.column)
    }
}

/// The seven kinds of manifest (DESIGN §2).
public enum ResourceKind: String, Sendable, CaseIterable, Codable, Comparable {
    case project = "Project"
    case environment = "Environment"
    case resource = "Resource"
    case bundle = "Bundle"
    case provisioner = "Provisioner"
    case instance = "Instance"
    case preview = "Preview"

    public static func < (lhs: ResourceKind, rhs: ResourceKind) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// How changes to an environment's instances are approved.
public enum ApprovalPolicy: String, Sendable, CaseIterable, Codable {
    /// Changes deploy at once.
    case auto
    /// Changes are proposed and wait for an approver.
    case review
    /// Changes run a plan first, then need a plan approval and an apply approval.
    case twoPhase = "two-phase"
}

/// A namespace for environments.
public struct Project: Equatable, Sendable, Codable {
    public var id: String
    public var description: String?
    public var labels: [String: String]

    public init(id: String, description: String?, labels: [String: String]) {
        self.id = id
        self.description = description
        self.labels = labels
    }
}

/// A set of instances that deploy together, with defaults and an approval policy.
public struct Environment: Equatable, Sendable, Codable {
    public var id: String
    public var project: String
    public var name: String
    public var description: String?
    public var policy: ApprovalPolicy
    /// Whether instances removed from the manifests are decommissioned (else reported as orphaned).
    public var prune: Bool
    /// Connection type → id of the imported resource every instance gets for a slot of that type.
    public var defaults: [String: String]
    public var labels: [String: String]
    /// How deployments that FAILED on the provisioner's verdict are retried; nil: never automatically.
    public var retry: RetryPolicy?
    /// Who may approve or reject its proposals; nil: anyone with the approver role.
    public var approvers: ApproverRule?
    /// Instances whose labels it selects need review even where the policy is `auto`.
    public var reviewSelector: LabelSelector?
    /// The environment it was forked from (`converge env fork`), by id; nil for one declared on its own.
    public var forkOf: String?
    /// How often the daemon plans each provisioned instance's recorded configuration to detect drift; nil: never.
    public var driftCheck: DriftCheck?

    public init(
        id: String, project: String, name: String, description: String?, policy: ApprovalPolicy, prune: Bool,
        defaults: [String: String], labels: [String: String], retry: RetryPolicy? = nil,
        approvers: ApproverRule? = nil, reviewSelector: LabelSelector? = nil, forkOf: String? = nil,
        driftCheck: DriftCheck? = nil
    ) {
        self.id = id
        self.project = project
        self.name = name
        self.description = description
        self.policy = policy
        self.prune = prune
        self.defaults = defaults
        self.labels = labels
        self.retry = retry
        self.approvers = approvers
        self.reviewSelector = reviewSelector
        self.forkOf = forkOf
        self.driftCheck = driftCheck
    }

    /// The policy a change of an instance with `labels` follows: `auto` becomes `review` for an instance the
    /// review selector selects; `review` and `two-phase` stay.
    public func policy(forInstanceLabeled labels: [String: String]) -> ApprovalPolicy {
        policy == .auto && reviewSelector?.matches(labels) == true ? .review : policy
    }
}

/// Who may approve and reject an environment's proposals: a principal named in `principals`, or one whose role
/// reaches one of `roles`. Both empty: anyone with the approver role.
public struct ApproverRule: Equatable, Sendable, Codable {
    public var principals: [String]
    public var roles: [String]

    public init(principals: [String] = [], roles: [String] = []) {
        self.principals = principals
        self.roles = roles
    }

    /// Whether `principal`, holding `roles` (its own role and every lower one), may decide.
    public func allows(principal: String, holding roles: Set<String>) -> Bool {
        (principals.isEmpty && self.roles.isEmpty) || principals.contains(principal)
            || self.roles.contains(where: roles.contains)
    }

    /// The rule in words, for a refusal: `principals alice, bob or roles admin`.
    public var summary: String {
        let parts = [
            principals.isEmpty ? nil : "principals " + principals.joined(separator: ", "),
            roles.isEmpty ? nil : "roles " + roles.joined(separator: ", "),
        ]
        return parts.compactMap { $0 }.joined(separator: " or ")
    }
}

/// An environment's automatic retry of failed deployments: each retry is a new deployment with the failed one's
/// snapshot and `retryOf` pointing at it, up to `limit` retries of one change, the n-th after `backoff · 2^(n-1)`
/// seconds.
public struct RetryPolicy: Equatable, Sendable, Codable {
    /// Retries of one change, 1...10.
    public var limit: Int
    /// Seconds before the first retry; each later one waits twice as long as the one before.
    public var backoff: Double

    public init(limit: Int, backoff: Double) {
        self.limit = limit
        self.backoff = backoff
    }

    /// The delay before the `retry`-th retry (1-based).
    public func delay(beforeRetry retry: Int) -> Double {
        backoff * Double(1 << max(0, min(retry, 30) - 1))
    }
}

/// An environment's drift check (`spec.driftCheck`): every `every` seconds the daemon queues a PLAN of each of its
/// PROVISIONED instances' recorded configuration (what was last applied), and an instance whose plan reports changes
/// is `Drifted`.
public struct DriftCheck: Equatable, Sendable, Codable {
    /// Seconds between two checks of an instance, at least 1 (hours are typical).
    public var every: Double

    public init(every: Double) {
        self.every = every
    }
}

/// A resource imported from outside converge (a shared VPC, a DNS zone), usable as an environment default.
public struct ImportedResource: Equatable, Sendable, Codable {
    public var id: String
    public var project: String
    public var environment: String?
    public var type: String
    public var data: Value
    public var labels: [String: String]

    public init(id: String, project: String, environment: String?, type: String, data: Value, labels: [String: String])
    {
        self.id = id
        self.project = project
        self.environment = environment
        self.type = type
        self.data = data
        self.labels = labels
    }
}

/// A typed input slot of a bundle.
public struct ConnectionSlot: Equatable, Sendable, Codable {
    public var type: String
    public var optional: Bool

    public init(type: String, optional: Bool) {
        self.type = type
        self.optional = optional
    }
}

/// A published, versioned infrastructure package: its provisioner, connections, artifacts and params schema.
public struct BundleDefinition: Equatable, Sendable, Codable {
    public var id: String
    public var provisioner: String
    public var description: String?
    public var connections: [String: ConnectionSlot]
    /// Artifact name → type.
    public var artifacts: [String: String]
    /// A JSON-Schema subset (DESIGN §2) that instance params must satisfy; a cloud bundle's is its driver's.
    public var paramsSchema: Value
    public var labels: [String: String]
    /// The cloud driver that applies it (`spec.cloud.resource`, such as `aws-sqs-queue`), with a cloud provisioner.
    public var cloudResource: String?

    public init(
        id: String, provisioner: String, description: String?, connections: [String: ConnectionSlot],
        artifacts: [String: String], paramsSchema: Value, labels: [String: String], cloudResource: String? = nil
    ) {
        self.cloudResource = cloudResource
        self.id = id
        self.provisioner = provisioner
        self.description = description
        self.connections = connections
        self.artifacts = artifacts
        self.paramsSchema = paramsSchema
        self.labels = labels
    }
}

/// What applies a bundle: a webhook or a local command.
public struct Provisioner: Equatable, Sendable, Codable {
    /// How a webhook provisioner is called.
    public struct Webhook: Equatable, Sendable, Codable {
        public var url: String
        /// The environment variable of the daemon that holds the HMAC secret.
        public var secretEnv: String?
        public var timeoutSeconds: Int

        public init(url: String, secretEnv: String?, timeoutSeconds: Int) {
            self.url = url
            self.secretEnv = secretEnv
            self.timeoutSeconds = timeoutSeconds
        }
    }

    /// How an exec provisioner is run.
    public struct Exec: Equatable, Sendable, Codable {
        public var command: [String]
        public var workingDirectory: String?
        public var timeoutSeconds: Int

        public init(command: [String], workingDirectory: String?, timeoutSeconds: Int) {
            self.command = command
            self.workingDirectory = workingDirectory
            self.timeoutSeconds = timeoutSeconds
        }
    }

    /// How a cloud provisioner calls a provider's API itself (DESIGN §5): the daemon creates, updates, plans and
    /// deletes single cloud objects through drivers, each named by a bundle's `spec.cloud.resource`.
    public struct Cloud: Equatable, Sendable, Codable {
        /// The provider; `aws` is the one there is.
        public var provider: String
        public var region: String
        /// The API's base URL instead of the provider's own (an emulator, a private endpoint).
        public var endpoint: String?
        /// The daemon's environment variables that hold the credentials (an instance's secrets of the same names
        /// take precedence).
        public var credentials: Credentials
        /// How long one deployment's calls may take together.
        public var timeoutSeconds: Int

        /// The names of the variables (and instance secrets) holding the credentials.
        public struct Credentials: Equatable, Sendable, Codable {
            public var accessKeyID: String
            public var secretAccessKey: String
            public var sessionToken: String

            public init(
                accessKeyID: String = "AWS_ACCESS_KEY_ID", secretAccessKey: String = "AWS_SECRET_ACCESS_KEY",
                sessionToken: String = "AWS_SESSION_TOKEN"
            ) {
                self.accessKeyID = accessKeyID
                self.secretAccessKey = secretAccessKey
                self.sessionToken = sessionToken
            }
        }

        public init(
            provider: String, region: String, endpoint: String?, credentials: Credentials = Credentials(),
            timeoutSeconds: Int
        ) {
            self.provider = provider
            self.region = region
            self.endpoint = endpoint
            self.credentials = credentials
            self.timeoutSeconds = timeoutSeconds
        }
    }

    public var id: String
    public var webhook: Webhook?
    public var exec: Exec?
    public var cloud: Cloud?
    public var labels: [String: String]

    public init(id: String, webhook: Webhook?, exec: Exec?, cloud: Cloud? = nil, labels: [String: String]) {
        self.id = id
        self.webhook = webhook
        self.exec = exec
        self.cloud = cloud
        self.labels = labels
    }

    /// How long one deployment may take with it.
    public var timeoutSeconds: Int { webhook?.timeoutSeconds ?? exec?.timeoutSeconds ?? cloud?.timeoutSeconds ?? 0 }
}

/// Where an instance's connection slot is wired: an artifact of another instance in the same environment.
public struct ConnectionTarget: Equatable, Sendable, Codable {
    public var instance: String
    public var artifact: String

    public init(instance: String, artifact: String) {
        self.instance = instance
        self.artifact = artifact
    }
}

/// One use of a bundle in an environment; its params (with the bundle's defaults applied) are what it asks for.
public struct Instance: Equatable, Sendable, Codable {
    public var id: String
    public var project: String
    public var environment: String
    public var name: String
    public var bundle: String
    public var version: String?
    public var params: Value
    public var connections: [String: ConnectionTarget]
    public var labels: [String: String]

    public init(
        id: String, project: String, environment: String, name: String, bundle: String, version: String?, params: Value,
        connections: [String: ConnectionTarget], labels: [String: String]
    ) {
        self.id = id
        self.project = project
        self.environment = environment
        self.name = name
        self.bundle = bundle
        self.version = version
        self.params = params
        self.connections = connections
        self.labels = labels
    }
}

/// An environment forked from a base for a pull request, with overrides and a time to live (DESIGN §6).
public struct Preview: Equatable, Sendable, Codable {
    /// A default to pin in the preview environment.
    public struct Default: Equatable, Sendable, Codable {
        public var resourceType: String
        public var resourceId: String

        public init(resourceType: String, resourceId: String) {
            self.resourceType = resourceType
            self.resourceId = resourceId
        }
    }

    /// Per-instance overrides, deep-merged onto the forked instance.
    public struct Override: Equatable, Sendable, Codable {
        public var version: String?
        public var params: Value?
        public var secrets: [String: String]

        public init(version: String?, params: Value?, secrets: [String: String]) {
            self.version = version
            self.params = params
            self.secrets = secrets
        }
    }

    public var project: String
    public var name: String?
    public var baseEnvironment: String
    public var copyEnvironmentDefaults: Bool
    public var copySecrets: Bool
    public var attributes: Value
    public var environmentDefaults: [Default]
    public var instances: [String: Override]
    /// Seconds after which the preview is decommissioned, if set.
    public var ttlSeconds: Int?

    public init(
        project: String, name: String?, baseEnvironment: String, copyEnvironmentDefaults: Bool, copySecrets: Bool,
        attributes: Value, environmentDefaults: [Default], instances: [String: Override], ttlSeconds: Int?
    ) {
        self.project = project
        self.name = name
        self.baseEnvironment = baseEnvironment
        self.copyEnvironmentDefaults = copyEnvironmentDefaults
        self.copySecrets = copySecrets
        self.attributes = attributes
        self.environmentDefaults = environmentDefaults
        self.instances = instances
        self.ttlSeconds = ttlSeconds
    }
}
