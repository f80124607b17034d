/// The cloud objects the daemon creates itself through a cloud provisioner (DESIGN §5), by the name a bundle gives in
/// `spec.cloud.resource`: the AWS service each is signed for, and the params schema a bundle of it gets (a bundle
/// declares no schema of its own). The drivers live in ConvergeProvisioners; this is what the manifests check.
public enum CloudResources {
    public struct Kind: Sendable {
        public var resource: String
        /// The AWS service its calls are signed for (`s3`, `sqs`, `dynamodb`).
        public var service: String
        public var description: String
        /// A JSON-Schema subset (DESIGN §2), as a bundle's `paramsSchema`.
        public var paramsSchema: Value
        /// What its outputs hold (each of the bundle's artifacts gets them).
        public var outputs: [String]
    }

    public static let kinds: [String: Kind] = Dictionary(
        uniqueKeysWithValues: [s3Bucket, sqsQueue, dynamoDBTable].map { ($0.resource, $0) })

    /// Tags: string keys to string values.
    static let tags: Value = ["type": "object", "additionalProperties": ["type": "string", "maxLength": 256]]

    /// A name for the object; absent, the instance's id (with `.fifo` for a FIFO queue).
    static func name(pattern: String, maxLength: Int) -> Value {
        ["type": "string", "pattern": .string(pattern), "minLength": 1, "maxLength": .int(maxLength)]
    }

    public static let s3Bucket = Kind(
        resource: "aws-s3-bucket", service: "s3", description: "An S3 bucket with tags and versioning.",
        paramsSchema: [
            "type": "object", "additionalProperties": false,
            "properties": [
                "name": name(pattern: "^[a-z0-9][a-z0-9.-]*[a-z0-9]$", maxLength: 63),
                "versioning": ["type": "boolean", "default": false],
                "tags": tags,
            ],
        ], outputs: ["name", "arn", "endpoint"])

    public static let sqsQueue = Kind(
        resource: "aws-sqs-queue", service: "sqs", description: "An SQS queue with its attributes.",
        paramsSchema: [
            "type": "object", "additionalProperties": false,
            "properties": [
                "name": name(pattern: "^[A-Za-z0-9_-]+$", maxLength: 75),
                "fifo": ["type": "boolean", "default": false],
                "visibilityTimeout": ["type": "integer", "minimum": 0, "maximum": 43200, "default": 30],
                "messageRetentionPeriod": ["type": "integer", "minimum": 60, "maximum": 1_209_600, "default": 345_600],
                "delaySeconds": ["type": "integer", "minimum": 0, "maximum": 900, "default": 0],
                "tags": tags,
            ],
        ], outputs: ["url", "arn", "name"])

    /// A key attribute of a table: its name and its scalar type.
    static let keyAttribute: Value = [
        "type": "object", "additionalProperties": false, "required": ["name", "type"],
        "properties": [
            "name": ["type": "string", "minLength": 1, "maxLength": 255],
            "type": ["type": "string", "enum": ["S", "N", "B"]],
        ],
    ]

    public static let dynamoDBTable = Kind(
        resource: "aws-dynamodb-table", service: "dynamodb",
        description: "A DynamoDB table with its key schema and billing mode.",
        paramsSchema: [
            "type": "object", "additionalProperties": false, "required": ["partitionKey"],
            "properties": [
                "name": name(pattern: "^[A-Za-z0-9_.-]{3,255}$", maxLength: 255),
                "partitionKey": keyAttribute,
                "sortKey": keyAttribute,
                "billingMode": [
                    "type": "string", "enum": ["PAY_PER_REQUEST", "PROVISIONED"], "default": "PAY_PER_REQUEST",
                ],
                "readCapacity": ["type": "integer", "minimum": 1, "maximum": 40000, "default": 5],
                "writeCapacity": ["type": "integer", "minimum": 1, "maximum": 40000, "default": 5],
                "tags": tags,
            ],
        ], outputs: ["name", "arn"])
}
