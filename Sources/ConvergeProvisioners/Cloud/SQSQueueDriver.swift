import ConvergeCore

/// The driver of `CloudResources.sqsQueue`: a standard or FIFO queue with its attributes and tags, through the SQS
/// JSON protocol (`AmazonSQS.<Action>`).
///
/// The queue is found by name (`GetQueueUrl`). A missing queue is created with every attribute and tag at once; an
/// existing one gets only what differs (`SetQueueAttributes` with the changed attributes, `TagQueue`/`UntagQueue` with
/// the changed tags), so a second run of the same params reads three times and writes nothing. Whether a queue is FIFO
/// is fixed when it is created: params that change it fail, saying the queue must be replaced, rather than leave the
/// old queue behind and create another beside it (a default name, the instance's id, gains `.fifo` for a FIFO queue,
/// so the other kind's queue is looked for under the other name).
public struct SQSQueueDriver: CloudResourceDriver {
    public init() {}

    public var kind: CloudResources.Kind { CloudResources.sqsQueue }

    /// The attributes the params set: the param's name and the SQS attribute's.
    static let attributes = [
        (param: "visibilityTimeout", attribute: "VisibilityTimeout"),
        (param: "messageRetentionPeriod", attribute: "MessageRetentionPeriod"),
        (param: "delaySeconds", attribute: "DelaySeconds"),
    ]

    /// The codes SQS answers a queue that does not exist with, in its JSON and its query protocol.
    static let missingCodes: Set = ["QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"]

    /// The queue's name as the params give it.
    struct Name {
        var name: String
        var fifo: Bool
        /// The name of the same instance's queue of the other kind when the name is the default one (the instance's id,
        /// with `.fifo` for a FIFO queue); nil when the params name the queue.
        var otherKind: String?

        init(_ context: CloudContext, kind: CloudResources.Kind) throws {
            fifo = try kind.boolean("fifo", in: context.params)
            if let given = try kind.string("name", in: context.params) {
                name = given
            } else {
                name = context.instance + (fifo ? ".fifo" : "")
                otherKind = fifo ? context.instance : context.instance + ".fifo"
            }
        }
    }

    /// The queue the params describe.
    struct Desired {
        var name: Name
        /// By param name.
        var attributes: [String: Int]
        var tags: [String: String]

        init(_ context: CloudContext, kind: CloudResources.Kind) throws {
            name = try Name(context, kind: kind)
            attributes = [:]
            for (param, _) in SQSQueueDriver.attributes {
                attributes[param] = try kind.integer(param, in: context.params)
            }
            tags = try kind.tags(in: context.params)
        }

        /// What a plan compares: the name, `fifo`, the attributes by param name and `tags`.
        var state: Value {
            SQSQueueDriver.state(
                name: name.name, fifo: name.fifo, attributes: attributes.mapValues { .int($0) }, tags: tags)
        }

        /// Refuses a name SQS would refuse for this kind of queue, with the reason.
        func checkName() throws {
            if name.fifo && !name.name.hasSuffix(".fifo") {
                throw CloudError("queue \(name.name): a FIFO queue's name must end in .fifo (param name)")
            }
            if !name.fifo && name.name.hasSuffix(".fifo") {
                throw CloudError(
                    "queue \(name.name): only a FIFO queue's name may end in .fifo: set fifo: true or change the name")
            }
        }
    }

    /// A queue as SQS has it.
    struct Queue {
        var name: String
        var url: String
        var arn: String?
        var fifo: Bool
        /// By param name; an attribute SQS did not answer is absent.
        var attributes: [String: Value]
        var tags: [String: String]

        var state: Value {
            SQSQueueDriver.state(name: name, fifo: fifo, attributes: attributes, tags: tags)
        }
    }

    /// Where the params' queue is.
    enum Found {
        case queue(Queue)
        /// Missing, but the instance's queue of the other kind (FIFO or standard) exists.
        case otherKind(Queue)
        case missing
    }

    static func state(name: String, fifo: Bool, attributes: [String: Value], tags: [String: String]) -> Value {
        var members = attributes
        members["name"] = .string(name)
        members["fifo"] = .bool(fifo)
        members["tags"] = TagChanges.value(tags)
        return .object(members)
    }

    public func provision(_ context: CloudContext) async throws -> Value {
        let desired = try Desired(context, kind: kind)
        switch try await find(desired.name, context) {
        case .missing:
            return try await create(desired, context)
        case .otherKind(let queue):
            throw replacement(of: queue, by: desired)
        case .queue(let queue):
            guard queue.fifo == desired.name.fifo else { throw replacement(of: queue, by: desired) }
            return try await converge(queue, to: desired, context)
        }
    }

    public func plan(_ context: CloudContext) async throws -> [ValueChange] {
        let desired = try Desired(context, kind: kind)
        switch try await find(desired.name, context) {
        case .missing:
            try desired.checkName()
            return [ValueChange(path: "", before: nil, after: desired.state)]
        case .queue(let queue), .otherKind(let queue):
            return queue.state.changes(to: desired.state)
        }
    }

    public func decommission(_ context: CloudContext) async throws {
        let name = try Name(context, kind: kind)
        var deleting = name.name
        var url = try await url(of: name.name, context)
        if url == nil, let other = name.otherKind {
            url = try await self.url(of: other, context)
            deleting = other
        }
        guard let url else {
            await context.log("queue \(name.name) does not exist: nothing to delete")
            return
        }
        do {
            _ = try await call("DeleteQueue", ["QueueUrl": .string(url)], queue: deleting, context)
        } catch let error as AWSError where Self.missingCodes.contains(error.code) {
            await context.log("queue \(deleting) does not exist: nothing to delete")
            return
        }
        await context.log("deleted queue \(deleting)")
    }

    /// Creates the queue with its attributes and tags, and returns its outputs.
    func create(_ desired: Desired, _ context: CloudContext) async throws -> Value {
        try desired.checkName()
        let name = desired.name.name
        var attributes: [String: Value] = [:]
        for (param, attribute) in Self.attributes {
            attributes[attribute] = .string(String(desired.attributes[param] ?? 0))
        }
        if desired.name.fifo { attributes["FifoQueue"] = "true" }
        var input: [String: Value] = ["QueueName": .string(name), "Attributes": .object(attributes)]
        if !desired.tags.isEmpty { input["tags"] = TagChanges.value(desired.tags) }
        let created = try await call("CreateQueue", .object(input), queue: name, context)
        guard let url = created["QueueUrl"]?.stringValue else {
            throw CloudError("CreateQueue of queue \(name) answered without a QueueUrl")
        }
        let answer = try await call(
            "GetQueueAttributes", ["QueueUrl": .string(url), "AttributeNames": ["QueueArn"]], queue: name, context)
        guard let arn = answer["Attributes"]?["QueueArn"]?.stringValue else {
            throw CloudError("GetQueueAttributes of queue \(name) answered without a QueueArn")
        }
        let settings = Self.attributes.map { "\($0.param) \(desired.attributes[$0.param] ?? 0)" }
        await context.log(
            "created \(desired.name.fifo ? "FIFO" : "standard") queue \(name): \(settings.joined(separator: ", ")), "
                + "\(desired.tags.count) tag(s)")
        return Self.outputs(url: url, arn: arn, name: name)
    }

    /// Writes what differs between `queue` and the params (attributes in one call, then tags), logging each change.
    func converge(_ queue: Queue, to desired: Desired, _ context: CloudContext) async throws -> Value {
        guard let arn = queue.arn else {
            throw CloudError("GetQueueAttributes of queue \(queue.name) answered without a QueueArn")
        }
        let changes = queue.state.changes(to: desired.state)
        guard !changes.isEmpty else {
            await context.log("queue \(queue.name) is up to date: nothing changed")
            return Self.outputs(url: queue.url, arn: arn, name: queue.name)
        }
        var attributes: [String: Value] = [:]
        for (param, attribute) in Self.attributes {
            guard let wanted = desired.attributes[param], queue.attributes[param] != .int(wanted) else { continue }
            attributes[attribute] = .string(String(wanted))
        }
        let url = Value.string(queue.url)
        if !attributes.isEmpty {
            _ = try await call(
                "SetQueueAttributes", ["QueueUrl": url, "Attributes": .object(attributes)], queue: queue.name, context)
        }
        let tags = TagChanges(from: queue.tags, to: desired.tags)
        if !tags.updated.isEmpty {
            _ = try await call(
                "TagQueue", ["QueueUrl": url, "Tags": TagChanges.value(tags.updated)], queue: queue.name, context)
        }
        if !tags.removed.isEmpty {
            _ = try await call(
                "UntagQueue", ["QueueUrl": url, "TagKeys": .array(tags.removed.map { .string($0) })], queue: queue.name,
                context)
        }
        for change in changes {
            await context.log("queue \(queue.name): \(change)")
        }
        return Self.outputs(url: queue.url, arn: arn, name: queue.name)
    }

    /// The params' queue, else the instance's queue of the other kind, else missing.
    func find(_ name: Name, _ context: CloudContext) async throws -> Found {
        if let url = try await url(of: name.name, context) {
            return .queue(try await read(name.name, url: url, context))
        }
        if let other = name.otherKind, let url = try await url(of: other, context) {
            return .otherKind(try await read(other, url: url, context))
        }
        return .missing
    }

    /// The URL of the queue called `name`, or nil when there is none.
    func url(of name: String, _ context: CloudContext) async throws -> String? {
        let answer: Value
        do {
            answer = try await call("GetQueueUrl", ["QueueName": .string(name)], queue: name, context)
        } catch let error as AWSError where Self.missingCodes.contains(error.code) {
            return nil
        }
        guard let url = answer["QueueUrl"]?.stringValue else {
            throw CloudError("GetQueueUrl of queue \(name) answered without a QueueUrl")
        }
        return url
    }

    /// The queue's attributes and tags.
    func read(_ name: String, url: String, _ context: CloudContext) async throws -> Queue {
        let answer = try await call(
            "GetQueueAttributes", ["QueueUrl": .string(url), "AttributeNames": ["All"]], queue: name, context)
        let found = answer["Attributes"]?.objectValue ?? [:]
        var attributes: [String: Value] = [:]
        for (param, attribute) in Self.attributes {
            guard let text = found[attribute]?.stringValue else { continue }
            attributes[param] = Int(text).map(Value.int) ?? .string(text)
        }
        let tagged = try await call("ListQueueTags", ["QueueUrl": .string(url)], queue: name, context)
        var tags: [String: String] = [:]
        for (key, value) in tagged["Tags"]?.objectValue ?? [:] {
            tags[key] = value.stringValue ?? value.canonicalJSON
        }
        return Queue(
            name: name, url: url, arn: found["QueueArn"]?.stringValue,
            fifo: found["FifoQueue"]?.stringValue == "true", attributes: attributes, tags: tags)
    }

    /// The error of params that would turn a standard queue into a FIFO one or back.
    func replacement(of queue: Queue, by desired: Desired) -> CloudError {
        func kind(_ fifo: Bool) -> String { fifo ? "a FIFO" : "a standard" }
        return CloudError(
            "queue \(queue.name) is \(kind(queue.fifo)) queue and the params ask for \(kind(desired.name.fifo)) one "
                + "(\(desired.name.name)): whether a queue is FIFO cannot change after it is created, so the queue must "
                + "be replaced: decommission the instance to delete it, then provision it again")
    }

    /// Calls `AmazonSQS.<action>`; an AWS error answer's message says which call on which queue it answers.
    func call(_ action: String, _ input: Value, queue: String, _ context: CloudContext) async throws -> Value {
        do {
            return try await context.client.json(service: kind.service, target: "AmazonSQS.\(action)", input: input)
        } catch var error as AWSError {
            error.message = "\(action) of queue \(queue): \(error.message.isEmpty ? "no message" : error.message)"
            throw error
        }
    }

    static func outputs(url: String, arn: String, name: String) -> Value {
        ["url": .string(url), "arn": .string(arn), "name": .string(name)]
    }
}
