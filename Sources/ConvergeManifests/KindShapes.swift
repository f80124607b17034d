import ConvergeCore

/// The shape of every kind's document: what `converge validate` checks and `converge schema` prints.
public enum KindShapes {
    static let apiVersion = "converge/v1"
    static let durationPattern = "[0-9]+(s|m|h|d)"
    static let versionRule = Shape.StringRule.pattern(
        Pattern("[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}"), description: "a version such as 1.4.2 (letters, digits, . + _ -)")
    /// The longest `spec.retry.backoff`: a day.
    static let maximumRetryBackoff = 86_400
    /// The longest `spec.driftCheck.every`: a year.
    static let maximumDriftCheckPeriod = 31_536_000

    /// The shape of a whole document of `kind`, built (and its patterns compiled) once.
    public static func document(_ kind: ResourceKind) -> Shape {
        documents[kind]!
    }

    private static let documents = Dictionary(
        uniqueKeysWithValues: ResourceKind.allCases.map { ($0, makeDocument($0)) })

    private static func makeDocument(_ kind: ResourceKind) -> Shape {
        .object([
            Field("apiVersion", .string(.oneOf([apiVersion])), required: true, "always \(apiVersion)"),
            Field("kind", .string(.oneOf([kind.rawValue])), required: true, "the kind of the document"),
            Field("metadata", .object(metadata(kind)), required: true, "name and scope"),
            Field("spec", spec(kind), required: kind != .project, "the desired state"),
        ])
    }

    /// The shape of the `spec` of a preview, also the top level of a plain preview file (with `project`).
    static let previewFields: [Field] = [
        Field("baseEnvironment", .string(.segment), required: true, "the environment the preview forks"),
        Field("copyEnvironmentDefaults", .boolean, "copy the base environment's defaults (default true)"),
        Field("copySecrets", .boolean, "copy the base instances' secrets (default false)"),
        Field("attributes", .anyObject, "free-form attributes of the preview environment"),
        Field(
            "environmentDefaults",
            .array(
                .object([
                    Field("resourceType", .string(.identifier), required: true, "the connection type"),
                    Field("resourceId", .string(.identifier), required: true, "the id of the imported resource"),
                ])), "defaults to pin in the preview"),
        Field(
            "instances",
            .map(
                keys: .segment,
                values: .object([
                    Field("version", .string(versionRule), "the bundle version to run"),
                    Field("params", .anyObject, "params deep-merged onto the forked instance"),
                    Field("secrets", .map(keys: .any, values: .string(.any)), "secrets of the instance"),
                ])), "per-instance overrides"),
        Field(
            "ttl", .string(.pattern(Pattern(durationPattern), description: "a duration such as 30m, 72h or 7d")),
            "time to live"),
    ]

    static func metadata(_ kind: ResourceKind) -> [Field] {
        let labels = Field("labels", .map(keys: .any, values: .string(.any)), "free-form labels")
        let project = Field("project", .string(.segment), required: true, "the project")
        let name: Field =
            switch kind {
            case .bundle, .provisioner: Field("name", .string(.identifier), required: true, "the name")
            default: Field("name", .string(.segment), required: true, "the name, one identifier segment")
            }
        switch kind {
        case .project, .bundle, .provisioner:
            return [name, labels]
        case .environment, .preview:
            return [name, project, labels]
        case .resource:
            return [
                name, project, Field("environment", .string(.segment), "the environment, if not project-wide"), labels,
            ]
        case .instance:
            return [name, project, Field("environment", .string(.segment), required: true, "the environment"), labels]
        }
    }

    static func spec(_ kind: ResourceKind) -> Shape {
        let description = Field("description", .string(.any), "what it is for")
        switch kind {
        case .project:
            return .object([description])
        case .environment:
            return .object([
                description,
                Field(
                    "policy", .string(.oneOf(ApprovalPolicy.allCases.map(\.rawValue))),
                    "how changes are approved (default review)"),
                Field("prune", .boolean, "decommission instances removed from the manifests (default false)"),
                Field(
                    "defaults", .map(keys: .identifier, values: .string(.segment)),
                    "connection type → name of the Resource every instance gets for it"),
                Field(
                    "retry",
                    .object([
                        Field(
                            "limit", .integer(minimum: 1, maximum: 10), required: true,
                            "retries of one failed change, 1 to 10"),
                        Field(
                            "backoff", .string(.duration(maximumSeconds: maximumRetryBackoff)), required: true,
                            "wait before the first retry (500ms, 30s, 5m, 1h; at most 24h), doubled for each later one"),
                    ]), "retry failed deployments automatically (default: never)"),
                Field(
                    "driftCheck",
                    .object([
                        Field(
                            "every", .string(.duration(minimumSeconds: 1, maximumSeconds: maximumDriftCheckPeriod)),
                            required: true,
                            "how often each provisioned instance is planned against what was last applied (at least "
                                + "1s; hours are typical, such as 6h)")
                    ]), "detect drift: plan every provisioned instance on a schedule (default: never)"),
                Field(
                    "approvers",
                    .object([
                        Field("principals", .array(.string(.any)), "principals (token names) who may approve"),
                        Field(
                            "roles", .array(.string(.oneOf(["viewer", "deployer", "approver", "admin"]))),
                            "roles that may approve (a role counts for every higher one)"),
                    ]), "who may approve and reject proposals (default: anyone with the approver role)"),
                Field(
                    "reviewSelector",
                    .object([
                        Field(
                            "matchLabels", .map(keys: .any, values: .string(.any)), required: true,
                            "labels an instance must all have to be selected")
                    ]), "instances whose changes need review even where the policy is auto"),
                Field(
                    "forkOf", .string(.segment),
                    "the environment of the same project it was forked from (converge env fork sets it)"),
            ])
        case .resource:
            return .object([
                Field("type", .string(.identifier), required: true, "the artifact type (aws-vpc)"),
                Field("data", .anyObject, "what connected instances receive"),
            ])
        case .bundle:
            return .object([
                description,
                Field("provisioner", .string(.identifier), required: true, "the provisioner that applies it"),
                Field(
                    "connections",
                    .map(
                        keys: .segment,
                        values: .object([
                            Field("type", .string(.identifier), required: true, "the artifact type it accepts"),
                            Field("optional", .boolean, "whether it may stay unwired (default false)"),
                        ])), "typed input slots"),
                Field(
                    "artifacts",
                    .map(
                        keys: .segment,
                        values: .object([Field("type", .string(.identifier), required: true, "the artifact type")])),
                    "typed outputs other instances can connect to"),
                Field(
                    "paramsSchema", .anyObject,
                    "a JSON-Schema subset the params must satisfy (none with cloud: the driver's applies)"),
                Field(
                    "cloud",
                    .object([
                        Field(
                            "resource", .string(.oneOf(CloudResources.kinds.keys.sorted())), required: true,
                            "the cloud object its cloud provisioner creates (converge schema RESOURCE prints its params)"
                        )
                    ]), "a cloud object the daemon manages itself, with a cloud provisioner"),
            ])
        case .provisioner:
            let timeout = Field("timeoutSeconds", .integer(minimum: 1), "how long one call may take")
            let variable = Shape.string(.pattern(Pattern("[A-Za-z_][A-Za-z0-9_]*"), description: "a variable name"))
            return .object([
                description,
                Field(
                    "webhook",
                    .object([
                        Field(
                            "url", .string(.pattern(Pattern("https?://.+"), description: "an http or https url")),
                            required: true,
                            "where deployments are posted"),
                        Field("secretEnv", variable, "the daemon's environment variable holding the HMAC secret"),
                        timeout,
                    ]), "call an HTTP endpoint (exactly one of webhook, exec and cloud)"),
                Field(
                    "exec",
                    .object([
                        Field("command", .array(.string(.any)), required: true, "the program and its arguments"),
                        Field(
                            "workingDirectory", .string(.any),
                            "where it runs, relative to the manifests directory (default: the manifests directory)"),
                        timeout,
                    ]), "run a local command (exactly one of webhook, exec and cloud)"),
                Field(
                    "cloud",
                    .object([
                        Field("provider", .string(.oneOf(["aws"])), required: true, "the cloud provider"),
                        Field(
                            "region",
                            .string(
                                .pattern(Pattern("[a-z]{2}(-[a-z]+)+-[0-9]"), description: "a region such as eu-west-1")
                            ),
                            required: true, "the region its objects live in"),
                        Field(
                            "endpoint", .string(.pattern(Pattern("https?://.+"), description: "an http or https url")),
                            "the API's base URL instead of the provider's own (a local emulator; omitted for real AWS)"),
                        Field(
                            "credentials",
                            .object([
                                Field(
                                    "accessKeyId", variable, "the access key id's variable (default AWS_ACCESS_KEY_ID)"),
                                Field(
                                    "secretAccessKey", variable,
                                    "the secret access key's variable (default AWS_SECRET_ACCESS_KEY)"),
                                Field(
                                    "sessionToken", variable,
                                    "the session token's variable, used when set (default AWS_SESSION_TOKEN)"),
                            ]), "the daemon's environment variables holding the credentials"),
                        Field(
                            "timeoutSeconds", .integer(minimum: 1),
                            "how long one deployment's calls may take together"),
                    ]),
                    "create single cloud objects through the daemon's drivers (exactly one of webhook, exec and cloud)"),
            ])
        case .instance:
            return .object([
                Field("bundle", .string(.identifier), required: true, "the bundle it uses"),
                Field("version", .string(versionRule), "the bundle version"),
                Field("params", .anyObject, "its configuration, checked against the bundle's paramsSchema"),
                Field(
                    "connections",
                    .map(
                        keys: .segment,
                        values: .string(
                            .pattern(
                                Pattern("[a-z0-9]{1,20}(\\.[a-z0-9]{1,20})?"),
                                description: "an instance of the environment, optionally .artifact"))),
                    "slot → instance (or instance.artifact) in the same environment"),
            ])
        case .preview:
            return .object(previewFields)
        }
    }
}
