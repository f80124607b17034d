import ConvergeCore

/// What a driver works on: the instance, its params (with the driver's schema defaults applied), and the signed
/// client of the provisioner's account and region.
public struct CloudContext: Sendable {
    /// The instance's id: the object's name unless its params give one.
    public var instance: String
    public var params: Value
    public var client: AWSClient
    /// Writes a line to the deployment's log.
    public var log: @Sendable (String) async -> Void

    public init(instance: String, params: Value, client: AWSClient, log: @escaping @Sendable (String) async -> Void) {
        self.instance = instance
        self.params = params
        self.client = client
        self.log = log
    }
}

/// Creates, converges, plans and deletes one kind of cloud object (`CloudResources.kinds`).
public protocol CloudResourceDriver: Sendable {
    /// The kind it drives, as `CloudResources.kinds` has it.
    var kind: CloudResources.Kind { get }

    /// Creates the object, or converges an existing one to the params; a second run of the same params changes
    /// nothing and succeeds. Returns the object's data (`kind.outputs`), which every artifact of the bundle gets.
    func provision(_ context: CloudContext) async throws -> Value

    /// What a provision would change, leaf by leaf, without changing anything: empty when the object is as the
    /// params say; a missing object is one change at path `""` from nil to what would be created.
    func plan(_ context: CloudContext) async throws -> [ValueChange]

    /// Deletes the object; one that does not exist is success.
    func decommission(_ context: CloudContext) async throws
}

/// The drivers the daemon has, by resource name.
public enum CloudDrivers {
    public static let all: [String: any CloudResourceDriver] = Dictionary(
        uniqueKeysWithValues: ([S3BucketDriver(), SQSQueueDriver(), DynamoDBTableDriver()] as [any CloudResourceDriver])
            .map { ($0.kind.resource, $0) })
}
