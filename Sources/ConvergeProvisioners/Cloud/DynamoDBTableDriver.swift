import ConvergeCore

/// The driver of `CloudResources.dynamoDBTable`: a table with its key schema, billing mode, throughput and tags,
/// through the DynamoDB JSON protocol (`DynamoDB_20120810.<Action>`).
///
/// A missing table is created with everything at once, and the provision waits until it is `ACTIVE`; an existing one
/// gets `UpdateTable` only when its billing mode or provisioned throughput differs, and `TagResource`/`UntagResource`
/// only for the tags that differ, so a second run of the same params reads twice and writes nothing. The key schema
/// cannot change in place: params that change it fail, saying the table must be replaced. Read and write capacity
/// mean something only for a `PROVISIONED` table: a `PAY_PER_REQUEST` one neither compares nor plans them.
public struct DynamoDBTableDriver: CloudResourceDriver {
    /// How long a provision waits for a table to become `ACTIVE` after creating or updating it.
    public struct Settings: Sendable {
        /// How many times `DescribeTable` is asked again before the provision fails (and is retried, finding the table).
        public var activeChecks = 30
        public var activeCheckInterval: Duration = .seconds(1)

        public init() {}
    }

    let settings: Settings

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    public var kind: CloudResources.Kind { CloudResources.dynamoDBTable }

    /// A key attribute: its name and its scalar type (`S`, `N`, `B`).
    struct Key: Equatable, CustomStringConvertible {
        var name: String
        var type: String

        var value: Value { ["name": .string(name), "type": .string(type)] }
        var description: String { "\(name) (\(type))" }
    }

    /// The table the params describe.
    struct Desired {
        var name: String
        var partitionKey: Key
        var sortKey: Key?
        var billingMode: String
        var readCapacity: Int
        var writeCapacity: Int
        var tags: [String: String]

        init(_ context: CloudContext, kind: CloudResources.Kind) throws {
            name = try DynamoDBTableDriver.name(context, kind: kind)
            func key(_ param: String) throws -> Key? {
                guard let value = kind.param(param, in: context.params) else { return nil }
                guard let name = value["name"]?.stringValue, let type = value["type"]?.stringValue,
                    ["S", "N", "B"].contains(type)
                else {
                    throw CloudError("\(kind.resource): param \(param) must be {name, type} with type S, N or B")
                }
                return Key(name: name, type: type)
            }
            guard let partitionKey = try key("partitionKey") else {
                throw CloudError("\(kind.resource): param partitionKey is required")
            }
            self.partitionKey = partitionKey
            sortKey = try key("sortKey")
            billingMode = try kind.string("billingMode", in: context.params) ?? "PAY_PER_REQUEST"
            guard ["PAY_PER_REQUEST", "PROVISIONED"].contains(billingMode) else {
                throw CloudError("\(kind.resource): param billingMode must be PAY_PER_REQUEST or PROVISIONED")
            }
            readCapacity = try kind.integer("readCapacity", in: context.params)
            writeCapacity = try kind.integer("writeCapacity", in: context.params)
            tags = try kind.tags(in: context.params)
        }

        var state: Value {
            DynamoDBTableDriver.state(
                name: name, partitionKey: partitionKey, sortKey: sortKey, billingMode: billingMode,
                capacity: (readCapacity, writeCapacity), tags: tags)
        }

        var provisionedThroughput: Value {
            ["ReadCapacityUnits": .int(readCapacity), "WriteCapacityUnits": .int(writeCapacity)]
        }
    }

    /// A table as DynamoDB describes it, with its tags.
    struct Table {
        var name: String
        var arn: String
        var partitionKey: Key?
        var sortKey: Key?
        /// `PROVISIONED` when DynamoDB states none (a table created so may have no `BillingModeSummary`).
        var billingMode: String
        var readCapacity: Int?
        var writeCapacity: Int?
        var tags: [String: String]

        init(_ description: Value, tags: [String: String]) throws {
            guard let name = description["TableName"]?.stringValue, let arn = description["TableArn"]?.stringValue
            else { throw CloudError("DescribeTable answered without a TableName or TableArn") }
            self.name = name
            self.arn = arn
            var types: [String: String] = [:]
            for definition in description["AttributeDefinitions"]?.arrayValue ?? [] {
                if let name = definition["AttributeName"]?.stringValue,
                    let type = definition["AttributeType"]?.stringValue
                {
                    types[name] = type
                }
            }
            for element in description["KeySchema"]?.arrayValue ?? [] {
                guard let name = element["AttributeName"]?.stringValue else { continue }
                let key = Key(name: name, type: types[name] ?? "?")
                switch element["KeyType"]?.stringValue {
                case "HASH": partitionKey = key
                case "RANGE": sortKey = key
                default: break
                }
            }
            billingMode = description["BillingModeSummary"]?["BillingMode"]?.stringValue ?? "PROVISIONED"
            if case .int(let units)? = description["ProvisionedThroughput"]?["ReadCapacityUnits"] {
                readCapacity = units
            }
            if case .int(let units)? = description["ProvisionedThroughput"]?["WriteCapacityUnits"] {
                writeCapacity = units
            }
            self.tags = tags
        }

        var state: Value {
            DynamoDBTableDriver.state(
                name: name, partitionKey: partitionKey, sortKey: sortKey, billingMode: billingMode,
                capacity: (readCapacity, writeCapacity), tags: tags)
        }

        var keySchema: String {
            (partitionKey.map { "partition key \($0)" } ?? "no partition key")
                + (sortKey.map { ", sort key \($0)" } ?? "")
        }
    }

    /// What a plan compares: the name, the keys, the billing mode, the capacities of a `PROVISIONED` table and `tags`.
    static func state(
        name: String, partitionKey: Key?, sortKey: Key?, billingMode: String, capacity: (read: Int?, write: Int?),
        tags: [String: String]
    ) -> Value {
        var members: [String: Value] = [
            "name": .string(name), "billingMode": .string(billingMode), "tags": TagChanges.value(tags),
        ]
        members["partitionKey"] = partitionKey?.value
        members["sortKey"] = sortKey?.value
        if billingMode == "PROVISIONED" {
            members["readCapacity"] = capacity.read.map(Value.int)
            members["writeCapacity"] = capacity.write.map(Value.int)
        }
        return .object(members)
    }

    /// The table's name: the `name` param, else the instance's id.
    static func name(_ context: CloudContext, kind: CloudResources.Kind) throws -> String {
        try kind.string("name", in: context.params) ?? context.instance
    }

    public func provision(_ context: CloudContext) async throws -> Value {
        let desired = try Desired(context, kind: kind)
        guard let found = try await describe(desired.name, context) else {
            return try await create(desired, context)
        }
        let description = try await waitUntilActive(desired.name, found, context)
        let table = try Table(description, tags: try await tags(of: desired.name, description, context))
        guard table.partitionKey == desired.partitionKey, table.sortKey == desired.sortKey else {
            let wanted = "partition key \(desired.partitionKey)" + (desired.sortKey.map { ", sort key \($0)" } ?? "")
            throw CloudError(
                "table \(desired.name) has \(table.keySchema) and the params ask for \(wanted): a table's key schema "
                    + "cannot change in place, so the table must be replaced: decommission the instance to delete it, "
                    + "then provision it again")
        }
        let changes = table.state.changes(to: desired.state)
        guard !changes.isEmpty else {
            await context.log("table \(desired.name) is up to date: nothing changed")
            return Self.outputs(name: table.name, arn: table.arn)
        }
        var update: [String: Value] = [:]
        if table.billingMode != desired.billingMode {
            update["BillingMode"] = .string(desired.billingMode)
        }
        if desired.billingMode == "PROVISIONED",
            !update.isEmpty || table.readCapacity != desired.readCapacity
                || table.writeCapacity != desired.writeCapacity
        {
            update["ProvisionedThroughput"] = desired.provisionedThroughput
        }
        if !update.isEmpty {
            update["TableName"] = .string(desired.name)
            let answer = try await call("UpdateTable", .object(update), table: desired.name, context)
            _ = try await waitUntilActive(desired.name, answer["TableDescription"] ?? [:], context)
        }
        let tags = TagChanges(from: table.tags, to: desired.tags)
        let arn = Value.string(table.arn)
        if !tags.updated.isEmpty {
            let list = tags.updated.sorted { $0.key < $1.key }.map {
                Value.object(["Key": .string($0), "Value": .string($1)])
            }
            _ = try await call("TagResource", ["ResourceArn": arn, "Tags": .array(list)], table: desired.name, context)
        }
        if !tags.removed.isEmpty {
            _ = try await call(
                "UntagResource", ["ResourceArn": arn, "TagKeys": .array(tags.removed.map { .string($0) })],
                table: desired.name, context)
        }
        for change in changes {
            await context.log("table \(desired.name): \(change)")
        }
        return Self.outputs(name: table.name, arn: table.arn)
    }

    public func plan(_ context: CloudContext) async throws -> [ValueChange] {
        let desired = try Desired(context, kind: kind)
        guard let description = try await describe(desired.name, context) else {
            return [ValueChange(path: "", before: nil, after: desired.state)]
        }
        let table = try Table(description, tags: try await tags(of: desired.name, description, context))
        return table.state.changes(to: desired.state)
    }

    public func decommission(_ context: CloudContext) async throws {
        let name = try Self.name(context, kind: kind)
        do {
            _ = try await call("DeleteTable", ["TableName": .string(name)], table: name, context)
        } catch let error as AWSError where error.code == "ResourceNotFoundException" {
            await context.log("table \(name) does not exist: nothing to delete")
            return
        } catch let error as AWSError where error.code == "ResourceInUseException" {
            // A table already being deleted is refused a second DeleteTable: that is success too.
            let status = try await describe(name, context)?["TableStatus"]?.stringValue
            guard status == nil || status == "DELETING" else { throw error }
            await context.log("table \(name) is already being deleted")
            return
        }
        await context.log("deleted table \(name)")
    }

    /// Creates the table with its keys, billing mode and tags, waits until it is `ACTIVE`, and returns its outputs.
    func create(_ desired: Desired, _ context: CloudContext) async throws -> Value {
        var definitions: [Value] = [
            ["AttributeName": .string(desired.partitionKey.name), "AttributeType": .string(desired.partitionKey.type)]
        ]
        var keySchema: [Value] = [["AttributeName": .string(desired.partitionKey.name), "KeyType": "HASH"]]
        if let sortKey = desired.sortKey {
            definitions.append(["AttributeName": .string(sortKey.name), "AttributeType": .string(sortKey.type)])
            keySchema.append(["AttributeName": .string(sortKey.name), "KeyType": "RANGE"])
        }
        var input: [String: Value] = [
            "TableName": .string(desired.name), "AttributeDefinitions": .array(definitions),
            "KeySchema": .array(keySchema), "BillingMode": .string(desired.billingMode),
        ]
        if desired.billingMode == "PROVISIONED" {
            input["ProvisionedThroughput"] = desired.provisionedThroughput
        }
        if !desired.tags.isEmpty {
            input["Tags"] = .array(
                desired.tags.sorted { $0.key < $1.key }.map { ["Key": .string($0), "Value": .string($1)] })
        }
        let answer = try await call("CreateTable", .object(input), table: desired.name, context)
        let description = try await waitUntilActive(desired.name, answer["TableDescription"] ?? [:], context)
        guard let arn = description["TableArn"]?.stringValue else {
            throw CloudError("CreateTable of table \(desired.name) answered without a TableArn")
        }
        let capacity =
            desired.billingMode == "PROVISIONED"
            ? " (read \(desired.readCapacity), write \(desired.writeCapacity))" : ""
        await context.log(
            "created table \(desired.name): partition key \(desired.partitionKey)"
                + (desired.sortKey.map { ", sort key \($0)" } ?? "")
                + ", \(desired.billingMode)\(capacity), \(desired.tags.count) tag(s)")
        return Self.outputs(name: desired.name, arn: arn)
    }

    /// The table's description (`DescribeTable`'s `Table`), or nil when there is no such table.
    func describe(_ name: String, _ context: CloudContext) async throws -> Value? {
        do {
            let answer = try await call("DescribeTable", ["TableName": .string(name)], table: name, context)
            guard let table = answer["Table"], table.objectValue != nil else {
                throw CloudError("DescribeTable of table \(name) answered without a Table")
            }
            return table
        } catch let error as AWSError where error.code == "ResourceNotFoundException" {
            return nil
        }
    }

    /// `description` once its table is `ACTIVE`: asked again up to `settings.activeChecks` times, a
    /// `settings.activeCheckInterval` apart; a table being deleted, or one that stays busy longer, is an error.
    func waitUntilActive(_ name: String, _ description: Value, _ context: CloudContext) async throws -> Value {
        var description = description
        var checks = 0
        while true {
            let status = description["TableStatus"]?.stringValue ?? "UNKNOWN"
            if status == "ACTIVE" { return description }
            if status == "DELETING" {
                throw CloudError("table \(name) is being deleted: provision it again once it is gone")
            }
            guard checks < settings.activeChecks else {
                throw CloudError(
                    "table \(name) is still \(status) after \(checks) checks \(settings.activeCheckInterval) apart: "
                        + "a later provision finishes converging it")
            }
            checks += 1
            try await Task.sleep(for: settings.activeCheckInterval)
            guard let next = try await describe(name, context) else {
                throw CloudError("table \(name) disappeared while it was \(status)")
            }
            description = next
        }
    }

    /// The table's tags (`ListTagsOfResource`, every page).
    func tags(of name: String, _ description: Value, _ context: CloudContext) async throws -> [String: String] {
        guard let arn = description["TableArn"]?.stringValue else {
            throw CloudError("DescribeTable of table \(name) answered without a TableArn")
        }
        var tags: [String: String] = [:]
        var next: String?
        repeat {
            var input: [String: Value] = ["ResourceArn": .string(arn)]
            input["NextToken"] = next.map(Value.string)
            let answer = try await call("ListTagsOfResource", .object(input), table: name, context)
            for tag in answer["Tags"]?.arrayValue ?? [] {
                guard let key = tag["Key"]?.stringValue else { continue }
                tags[key] = tag["Value"]?.stringValue ?? ""
            }
            next = answer["NextToken"]?.stringValue
        } while next != nil
        return tags
    }

    /// Calls `DynamoDB_20120810.<action>`; an AWS error answer's message says which call on which table it answers.
    func call(_ action: String, _ input: Value, table: String, _ context: CloudContext) async throws -> Value {
        do {
            return try await context.client.json(
                service: kind.service, target: "DynamoDB_20120810.\(action)", input: input)
        } catch var error as AWSError {
            error.message = "\(action) of table \(table): \(error.message.isEmpty ? "no message" : error.message)"
            throw error
        }
    }

    static func outputs(name: String, arn: String) -> Value {
        ["name": .string(name), "arn": .string(arn)]
    }
}
