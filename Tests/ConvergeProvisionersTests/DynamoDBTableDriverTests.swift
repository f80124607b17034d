import ConvergeCore
import ConvergeTestSupport
import Testing

@testable import ConvergeProvisioners

/// `DynamoDBTableDriver` against the moto emulator (signature checking on): what it creates, converges, plans and
/// deletes is checked through signed calls of the test's own.
@Suite(.serialized) struct DynamoDBTableDriverTests {
    let driver = DynamoDBTableDriver()

    static func dynamoDB(_ client: AWSClient, _ action: String, _ input: Value) async throws -> Value {
        try await client.json(service: "dynamodb", target: "DynamoDB_20120810.\(action)", input: input)
    }

    /// `DescribeTable`'s `Table`, or nil when there is no such table.
    static func table(_ client: AWSClient, _ name: String) async throws -> Value? {
        do {
            return try await dynamoDB(client, "DescribeTable", ["TableName": .string(name)])["Table"]
        } catch let error as AWSError where error.code == "ResourceNotFoundException" {
            return nil
        }
    }

    static func tags(_ client: AWSClient, arn: String) async throws -> [String: String] {
        var tags: [String: String] = [:]
        var next: Value?
        repeat {
            var input: [String: Value] = ["ResourceArn": .string(arn)]
            input["NextToken"] = next
            let answer = try await dynamoDB(client, "ListTagsOfResource", .object(input))
            for tag in answer["Tags"]?.arrayValue ?? [] {
                tags[tag["Key"]?.stringValue ?? "?"] = tag["Value"]?.stringValue
            }
            next = answer["NextToken"]
        } while next != nil
        return tags
    }

    static let orders: Value = [
        "partitionKey": ["name": "customer", "type": "S"], "sortKey": ["name": "placed", "type": "N"],
        "billingMode": "PROVISIONED", "readCapacity": 3, "writeCapacity": 4, "tags": ["team": "shop", "cost": "a&b"],
    ]

    @Test func provision_createsTheTableWithItsKeysBillingModeAndTags() async throws {
        let moto = try await MotoServer.start()
        let client = MotoDriverFixture.client(moto)
        let log = DriverLog()
        let context = MotoDriverFixture.context(client, instance: "p-dev-orders", params: Self.orders, log: log)

        let outputs = try await driver.provision(context)

        let table = try #require(try await Self.table(client, "p-dev-orders"))
        let arn = try #require(table["TableArn"]?.stringValue)
        #expect(outputs == ["name": "p-dev-orders", "arn": .string(arn)])
        #expect(arn == client.arn(service: "dynamodb", account: "123456789012", resource: "table/p-dev-orders"))
        #expect(table["TableStatus"] == "ACTIVE")
        #expect(
            table["KeySchema"] == [
                ["AttributeName": "customer", "KeyType": "HASH"], ["AttributeName": "placed", "KeyType": "RANGE"],
            ])
        #expect(
            Set(table["AttributeDefinitions"]?.arrayValue ?? []) == [
                ["AttributeName": "customer", "AttributeType": "S"], ["AttributeName": "placed", "AttributeType": "N"],
            ])
        #expect(table["BillingModeSummary"]?["BillingMode"] == "PROVISIONED")
        #expect(table["ProvisionedThroughput"]?["ReadCapacityUnits"] == 3)
        #expect(table["ProvisionedThroughput"]?["WriteCapacityUnits"] == 4)
        #expect(try await Self.tags(client, arn: arn) == ["team": "shop", "cost": "a&b"])
        #expect(
            log.take() == [
                "created table p-dev-orders: partition key customer (S), sort key placed (N), PROVISIONED "
                    + "(read 3, write 4), 2 tag(s)"
            ])
        #expect(try await driver.plan(context) == [])
        try await moto.stop()
    }

    @Test func provision_ofAPayPerRequestTable_namesItAfterTheInstance() async throws {
        let moto = try await MotoServer.start()
        let client = MotoDriverFixture.client(moto)
        let context = MotoDriverFixture.context(
            client, instance: "p-dev-events", params: ["partitionKey": ["name": "id", "type": "B"]])

        let outputs = try await driver.provision(context)

        #expect(outputs["name"] == "p-dev-events")
        let table = try #require(try await Self.table(client, "p-dev-events"))
        #expect(table["BillingModeSummary"]?["BillingMode"] == "PAY_PER_REQUEST")
        #expect(table["KeySchema"] == [["AttributeName": "id", "KeyType": "HASH"]])
        #expect(try await Self.tags(client, arn: outputs["arn"]?.stringValue ?? "?") == [:])
        #expect(try await driver.plan(context) == [])
        try await moto.stop()
    }

    @Test func secondProvision_ofTheSameParams_writesNothing_andSaysSo() async throws {
        let moto = try await MotoServer.start()
        let client = MotoDriverFixture.client(moto)
        let log = DriverLog()
        let context = MotoDriverFixture.context(client, instance: "p-dev-twice", params: Self.orders, log: log)
        let first = try await driver.provision(context)
        _ = log.take()

        let second = try await driver.provision(context)

        #expect(second == first)
        #expect(log.take() == ["table p-dev-twice is up to date: nothing changed"])
        #expect(try await driver.plan(context) == [])
        try await moto.stop()
    }

    @Test func tagsOverSeveralPages_areReadWhole() async throws {
        let moto = try await MotoServer.start()
        let client = MotoDriverFixture.client(moto)
        let log = DriverLog()
        // The emulator answers ten tags a page.
        let tags = Value.object(Dictionary(uniqueKeysWithValues: (0..<23).map { ("tag-\($0)", Value.string("\($0)")) }))
        let context = MotoDriverFixture.context(
            client, instance: "p-dev-tagged", params: ["partitionKey": ["name": "id", "type": "S"], "tags": tags],
            log: log)
        let outputs = try await driver.provision(context)
        _ = log.take()

        #expect(try await driver.plan(context) == [])
        _ = try await driver.provision(context)
        #expect(log.take() == ["table p-dev-tagged is up to date: nothing changed"])
        #expect(try await Self.tags(client, arn: outputs["arn"]?.stringValue ?? "?").count == 23)
        try await moto.stop()
    }

    @Test func changedParams_showInThePlan_thenProvisionConvergesTheTableInPlace() async throws {
        let moto = try await MotoServer.start()
        let client = MotoDriverFixture.client(moto)
        let log = DriverLog()
        let key: Value = ["name": "id", "type": "S"]
        let before = MotoDriverFixture.context(
            client, instance: "p-dev-change", params: ["partitionKey": key, "tags": ["team": "shop", "old": "x"]],
            log: log)
        let created = try await driver.provision(before)
        let arn = try #require(created["arn"]?.stringValue)
        _ = log.take()
        let provisioned = MotoDriverFixture.context(
            client, instance: "p-dev-change",
            params: [
                "partitionKey": key, "billingMode": "PROVISIONED", "readCapacity": 7,
                "tags": ["team": "web", "owner": "dora"],
            ],
            log: log)

        #expect(
            try await driver.plan(provisioned) == [
                ValueChange(path: "billingMode", before: "PAY_PER_REQUEST", after: "PROVISIONED"),
                ValueChange(path: "readCapacity", before: nil, after: 7),
                ValueChange(path: "tags.old", before: "x", after: nil),
                ValueChange(path: "tags.owner", before: nil, after: "dora"),
                ValueChange(path: "tags.team", before: "shop", after: "web"),
                ValueChange(path: "writeCapacity", before: nil, after: 5),
            ])
        // A plan changes nothing.
        #expect(
            try await Self.table(client, "p-dev-change")?["BillingModeSummary"]?["BillingMode"] == "PAY_PER_REQUEST")
        #expect(try await Self.tags(client, arn: arn) == ["team": "shop", "old": "x"])

        #expect(try await driver.provision(provisioned) == created)

        var table = try #require(try await Self.table(client, "p-dev-change"))
        #expect(table["BillingModeSummary"]?["BillingMode"] == "PROVISIONED")
        #expect(table["ProvisionedThroughput"]?["ReadCapacityUnits"] == 7)
        #expect(table["ProvisionedThroughput"]?["WriteCapacityUnits"] == 5)
        #expect(try await Self.tags(client, arn: arn) == ["team": "web", "owner": "dora"])
        #expect(
            log.take() == [
                "table p-dev-change: billingMode: \"PAY_PER_REQUEST\" -> \"PROVISIONED\"",
                "table p-dev-change: readCapacity: <absent> -> 7",
                "table p-dev-change: tags.old: \"x\" -> <absent>",
                "table p-dev-change: tags.owner: <absent> -> \"dora\"",
                "table p-dev-change: tags.team: \"shop\" -> \"web\"",
                "table p-dev-change: writeCapacity: <absent> -> 5",
            ])
        #expect(try await driver.plan(provisioned) == [])

        // Throughput alone changes in place too.
        let bigger = MotoDriverFixture.context(
            client, instance: "p-dev-change",
            params: [
                "partitionKey": key, "billingMode": "PROVISIONED", "readCapacity": 7, "writeCapacity": 9,
                "tags": ["team": "web", "owner": "dora"],
            ],
            log: log)
        #expect(try await driver.plan(bigger) == [ValueChange(path: "writeCapacity", before: 5, after: 9)])
        _ = try await driver.provision(bigger)
        table = try #require(try await Self.table(client, "p-dev-change"))
        #expect(table["ProvisionedThroughput"]?["WriteCapacityUnits"] == 9)
        #expect(log.take() == ["table p-dev-change: writeCapacity: 5 -> 9"])
        #expect(try await driver.plan(bigger) == [])
        try await moto.stop()
    }

    @Test func plan_ofAMissingTable_isOneChangeFromNothingToTheTable() async throws {
        let moto = try await MotoServer.start()
        let client = MotoDriverFixture.client(moto)
        let context = MotoDriverFixture.context(
            client, instance: "p-dev-missing", params: ["name": "orders", "partitionKey": ["name": "id", "type": "S"]])

        #expect(
            try await driver.plan(context) == [
                ValueChange(
                    path: "", before: nil,
                    after: [
                        "name": "orders", "partitionKey": ["name": "id", "type": "S"], "billingMode": "PAY_PER_REQUEST",
                        "tags": [:],
                    ])
            ])
        #expect(try await Self.table(client, "orders") == nil)
        try await moto.stop()
    }

    @Test func decommission_deletesTheTable_andASecondOneSucceeds() async throws {
        let moto = try await MotoServer.start()
        let client = MotoDriverFixture.client(moto)
        let log = DriverLog()
        let context = MotoDriverFixture.context(client, instance: "p-dev-gone", params: Self.orders, log: log)
        _ = try await driver.provision(context)
        _ = log.take()

        try await driver.decommission(context)

        #expect(try await Self.table(client, "p-dev-gone") == nil)
        #expect(log.take() == ["deleted table p-dev-gone"])
        #expect(try await driver.plan(context).map(\.path) == [""])

        try await driver.decommission(context)
        #expect(log.take() == ["table p-dev-gone does not exist: nothing to delete"])
        try await moto.stop()
    }

    @Test func changingTheKeySchema_failsSayingTheTableMustBeReplaced() async throws {
        let moto = try await MotoServer.start()
        let client = MotoDriverFixture.client(moto)
        _ = try await driver.provision(MotoDriverFixture.context(client, instance: "p-dev-keys", params: Self.orders))
        var params = Self.orders.objectValue ?? [:]
        params["partitionKey"] = ["name": "order", "type": "S"]
        params["sortKey"] = nil
        let changed = MotoDriverFixture.context(client, instance: "p-dev-keys", params: .object(params))

        let error = await #expect(throws: CloudError.self) { try await driver.provision(changed) }

        #expect(
            error?.description
                == "table p-dev-keys has partition key customer (S), sort key placed (N) and the params ask for "
                + "partition key order (S): a table's key schema cannot change in place, so the table must be "
                + "replaced: decommission the instance to delete it, then provision it again")
        #expect(
            try await driver.plan(changed) == [
                ValueChange(path: "partitionKey.name", before: "customer", after: "order"),
                ValueChange(path: "sortKey", before: ["name": "placed", "type": "N"], after: nil),
            ])
        let table = try #require(try await Self.table(client, "p-dev-keys"))
        #expect(table["KeySchema"]?.arrayValue?.count == 2)
        try await moto.stop()
    }

    /// The emulator makes every table ACTIVE at once; AWS answers CREATING or UPDATING first.
    @Test func waitUntilActive_asksAgainUntilTheTableIsActive_andGivesUpClearly() async throws {
        let moto = try await MotoServer.start()
        let client = MotoDriverFixture.client(moto)
        let context = MotoDriverFixture.context(client, instance: "p-dev-busy", params: Self.orders)
        _ = try await driver.provision(context)
        var settings = DynamoDBTableDriver.Settings()
        settings.activeChecks = 2
        settings.activeCheckInterval = .milliseconds(10)
        let patient = DynamoDBTableDriver(settings: settings)

        let active = try await patient.waitUntilActive(
            "p-dev-busy", ["TableName": "p-dev-busy", "TableStatus": "CREATING"], context)
        #expect(active["TableStatus"] == "ACTIVE")
        #expect(active["TableName"] == "p-dev-busy")

        settings.activeChecks = 0
        let impatient = DynamoDBTableDriver(settings: settings)
        let busy = await #expect(throws: CloudError.self) {
            try await impatient.waitUntilActive("p-dev-busy", ["TableStatus": "UPDATING"], context)
        }
        #expect(
            busy?.description
                == "table p-dev-busy is still UPDATING after 0 checks 0.01 seconds apart: a later provision finishes "
                + "converging it")
        let deleting = await #expect(throws: CloudError.self) {
            try await patient.waitUntilActive("p-dev-busy", ["TableStatus": "DELETING"], context)
        }
        #expect(deleting?.description == "table p-dev-busy is being deleted: provision it again once it is gone")
        try await moto.stop()
    }

    @Test func wrongCredentials_failWithTheEmulatorsCode() async throws {
        let moto = try await MotoServer.start()
        let wrongSecret = MotoDriverFixture.client(moto, secretAccessKey: "not-the-secret")
        let unknownKey = MotoDriverFixture.client(moto, accessKeyID: "AKIAUNKNOWNKEY000000")

        let provision = await #expect(throws: AWSError.self) {
            try await driver.provision(
                MotoDriverFixture.context(wrongSecret, instance: "p-dev-denied", params: Self.orders))
        }
        #expect(provision?.code == "SignatureDoesNotMatch")
        #expect(provision?.status == 403)
        #expect(provision?.message.hasPrefix("DescribeTable of table p-dev-denied: ") == true)
        let decommission = await #expect(throws: AWSError.self) {
            try await driver.decommission(MotoDriverFixture.context(unknownKey, instance: "p-dev-denied", params: [:]))
        }
        #expect(decommission?.code == "InvalidClientTokenId")
        #expect(decommission?.description.contains("p-dev-denied") == true)
        try await moto.stop()
    }
}
