import ConvergeCore
import ConvergeTestSupport
import Testing

@testable import ConvergeProvisioners

/// `SQSQueueDriver` against the moto emulator (signature checking on): what it creates, converges, plans and deletes
/// is checked through signed calls of the test's own.
@Suite(.serialized) struct SQSQueueDriverTests {
    let driver = SQSQueueDriver()

    static func sqs(_ client: AWSClient, _ action: String, _ input: Value) async throws -> Value {
        try await client.json(service: "sqs", target: "AmazonSQS.\(action)", input: input)
    }

    /// The queue's URL, or nil when SQS has no queue of that name.
    static func url(_ client: AWSClient, _ name: String) async throws -> String? {
        do {
            return try await sqs(client, "GetQueueUrl", ["QueueName": .string(name)])["QueueUrl"]?.stringValue
        } catch let error as AWSError where error.code == "QueueDoesNotExist" {
            return nil
        }
    }

    static func attributes(_ client: AWSClient, _ url: String) async throws -> [String: String] {
        let answer = try await sqs(client, "GetQueueAttributes", ["QueueUrl": .string(url), "AttributeNames": ["All"]])
        return (answer["Attributes"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
    }

    static func tags(_ client: AWSClient, _ url: String) async throws -> [String: String] {
        let answer = try await sqs(client, "ListQueueTags", ["QueueUrl": .string(url)])
        return (answer["Tags"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
    }

    @Test func provision_createsTheQueueWithItsAttributesAndTags() async throws {
        let moto = try await MotoServer.start()
        let client = MotoDriverFixture.client(moto)
        let log = DriverLog()
        let params: Value = ["visibilityTimeout": 45, "delaySeconds": 5, "tags": ["team": "shop", "cost": "a&b <1>"]]
        let context = MotoDriverFixture.context(client, instance: "p-dev-jobs", params: params, log: log)

        let outputs = try await driver.provision(context)

        let url = try #require(try await Self.url(client, "p-dev-jobs"))
        let attributes = try await Self.attributes(client, url)
        #expect(outputs == ["url": .string(url), "arn": .string(attributes["QueueArn"] ?? "?"), "name": "p-dev-jobs"])
        #expect(attributes["QueueArn"] == client.arn(service: "sqs", account: "123456789012", resource: "p-dev-jobs"))
        #expect(attributes["VisibilityTimeout"] == "45")
        #expect(attributes["DelaySeconds"] == "5")
        // Absent from the params: the schema's default.
        #expect(attributes["MessageRetentionPeriod"] == "345600")
        #expect(attributes["FifoQueue"] == nil)
        #expect(try await Self.tags(client, url) == ["team": "shop", "cost": "a&b <1>"])
        #expect(
            log.take() == [
                "created standard queue p-dev-jobs: visibilityTimeout 45, messageRetentionPeriod 345600, "
                    + "delaySeconds 5, 2 tag(s)"
            ])
        #expect(try await driver.plan(context) == [])
        try await moto.stop()
    }

    @Test func provision_ofAFIFOQueue_namesItAfterTheInstanceWithTheFifoSuffix() async throws {
        let moto = try await MotoServer.start()
        let client = MotoDriverFixture.client(moto)
        let context = MotoDriverFixture.context(client, instance: "p-dev-events", params: ["fifo": true])

        let outputs = try await driver.provision(context)

        #expect(outputs["name"] == "p-dev-events.fifo")
        let url = try #require(try await Self.url(client, "p-dev-events.fifo"))
        #expect(outputs["url"] == .string(url))
        #expect(try await Self.attributes(client, url)["FifoQueue"] == "true")
        #expect(try await Self.url(client, "p-dev-events") == nil)
        #expect(try await driver.plan(context) == [])
        try await moto.stop()
    }

    @Test func secondProvision_ofTheSameParams_writesNothing_andSaysSo() async throws {
        let moto = try await MotoServer.start()
        let client = MotoDriverFixture.client(moto)
        let log = DriverLog()
        let params: Value = ["visibilityTimeout": 60, "tags": ["team": "shop"]]
        let context = MotoDriverFixture.context(client, instance: "p-dev-twice", params: params, log: log)
        let first = try await driver.provision(context)
        let url = try #require(first["url"]?.stringValue)
        let modified = try await Self.attributes(client, url)["LastModifiedTimestamp"]
        _ = log.take()

        let second = try await driver.provision(context)

        #expect(second == first)
        #expect(log.take() == ["queue p-dev-twice is up to date: nothing changed"])
        // SetQueueAttributes would have moved it.
        #expect(try await Self.attributes(client, url)["LastModifiedTimestamp"] == modified)
        #expect(try await driver.plan(context) == [])
        try await moto.stop()
    }

    @Test func changedParams_showInThePlan_thenProvisionConvergesTheQueueInPlace() async throws {
        let moto = try await MotoServer.start()
        let client = MotoDriverFixture.client(moto)
        let log = DriverLog()
        let before = MotoDriverFixture.context(
            client, instance: "p-dev-change", params: ["tags": ["team": "shop", "old": "x"]], log: log)
        let created = try await driver.provision(before)
        let url = try #require(created["url"]?.stringValue)
        _ = log.take()
        let after = MotoDriverFixture.context(
            client, instance: "p-dev-change",
            params: ["visibilityTimeout": 120, "delaySeconds": 10, "tags": ["team": "web", "owner": "dora"]], log: log)

        #expect(
            try await driver.plan(after) == [
                ValueChange(path: "delaySeconds", before: 0, after: 10),
                ValueChange(path: "tags.old", before: "x", after: nil),
                ValueChange(path: "tags.owner", before: nil, after: "dora"),
                ValueChange(path: "tags.team", before: "shop", after: "web"),
                ValueChange(path: "visibilityTimeout", before: 30, after: 120),
            ])
        // A plan changes nothing.
        #expect(try await Self.attributes(client, url)["VisibilityTimeout"] == "30")
        #expect(try await Self.tags(client, url) == ["team": "shop", "old": "x"])

        let converged = try await driver.provision(after)

        #expect(converged == created)
        let attributes = try await Self.attributes(client, url)
        #expect(attributes["VisibilityTimeout"] == "120")
        #expect(attributes["DelaySeconds"] == "10")
        #expect(attributes["MessageRetentionPeriod"] == "345600")
        #expect(try await Self.tags(client, url) == ["team": "web", "owner": "dora"])
        #expect(
            log.take() == [
                "queue p-dev-change: delaySeconds: 0 -> 10",
                "queue p-dev-change: tags.old: \"x\" -> <absent>",
                "queue p-dev-change: tags.owner: <absent> -> \"dora\"",
                "queue p-dev-change: tags.team: \"shop\" -> \"web\"",
                "queue p-dev-change: visibilityTimeout: 30 -> 120",
            ])
        #expect(try await driver.plan(after) == [])
        try await moto.stop()
    }

    @Test func plan_ofAMissingQueue_isOneChangeFromNothingToTheQueue() async throws {
        let moto = try await MotoServer.start()
        let client = MotoDriverFixture.client(moto)
        let context = MotoDriverFixture.context(
            client, instance: "p-dev-missing", params: ["name": "orders", "tags": ["team": "shop"]])

        #expect(
            try await driver.plan(context) == [
                ValueChange(
                    path: "", before: nil,
                    after: [
                        "name": "orders", "fifo": false, "visibilityTimeout": 30, "messageRetentionPeriod": 345_600,
                        "delaySeconds": 0, "tags": ["team": "shop"],
                    ])
            ])
        #expect(try await Self.url(client, "orders") == nil)
        try await moto.stop()
    }

    @Test func decommission_deletesTheQueue_andASecondOneSucceeds() async throws {
        let moto = try await MotoServer.start()
        let client = MotoDriverFixture.client(moto)
        let log = DriverLog()
        let context = MotoDriverFixture.context(client, instance: "p-dev-gone", params: [:], log: log)
        _ = try await driver.provision(context)
        _ = log.take()

        try await driver.decommission(context)

        #expect(try await Self.url(client, "p-dev-gone") == nil)
        #expect(log.take() == ["deleted queue p-dev-gone"])
        #expect(try await driver.plan(context).map(\.path) == [""])

        try await driver.decommission(context)
        #expect(log.take() == ["queue p-dev-gone does not exist: nothing to delete"])
        try await moto.stop()
    }

    @Test func changingFifo_ofANamedQueue_failsSayingTheQueueMustBeReplaced() async throws {
        let moto = try await MotoServer.start()
        let client = MotoDriverFixture.client(moto)
        let fifo = MotoDriverFixture.context(
            client, instance: "p-dev-orders", params: ["name": "orders.fifo", "fifo": true])
        _ = try await driver.provision(fifo)
        let standard = MotoDriverFixture.context(
            client, instance: "p-dev-orders", params: ["name": "orders.fifo", "fifo": false])

        let error = await #expect(throws: CloudError.self) { try await driver.provision(standard) }

        #expect(
            error?.description
                == "queue orders.fifo is a FIFO queue and the params ask for a standard one (orders.fifo): whether a "
                + "queue is FIFO cannot change after it is created, so the queue must be replaced: decommission the "
                + "instance to delete it, then provision it again")
        #expect(try await driver.plan(standard) == [ValueChange(path: "fifo", before: true, after: false)])
        try await moto.stop()
    }

    @Test func changingFifo_ofAQueueNamedAfterTheInstance_failsWithoutCreatingAnother_andDecommissionDeletesIt()
        async throws
    {
        let moto = try await MotoServer.start()
        let client = MotoDriverFixture.client(moto)
        let log = DriverLog()
        _ = try await driver.provision(
            MotoDriverFixture.context(client, instance: "p-dev-events", params: ["visibilityTimeout": 40]))
        let fifo = MotoDriverFixture.context(
            client, instance: "p-dev-events", params: ["fifo": true, "visibilityTimeout": 40], log: log)

        let error = await #expect(throws: CloudError.self) { try await driver.provision(fifo) }

        #expect(error?.description.hasPrefix("queue p-dev-events is a standard queue and the params ask") == true)
        #expect(error?.description.contains("the queue must be replaced") == true)
        #expect(try await Self.url(client, "p-dev-events.fifo") == nil)
        #expect(
            try await driver.plan(fifo) == [
                ValueChange(path: "fifo", before: false, after: true),
                ValueChange(path: "name", before: "p-dev-events", after: "p-dev-events.fifo"),
            ])

        // Decommissioning with the new params deletes the instance's queue; then the FIFO one can be created.
        try await driver.decommission(fifo)
        #expect(log.take() == ["deleted queue p-dev-events"])
        #expect(try await Self.url(client, "p-dev-events") == nil)
        #expect(try await driver.provision(fifo)["name"] == "p-dev-events.fifo")
        try await moto.stop()
    }

    @Test func aNameThatDoesNotMatchFifo_isRefusedWithTheReason() async throws {
        let moto = try await MotoServer.start()
        let client = MotoDriverFixture.client(moto)
        let missingSuffix = MotoDriverFixture.context(client, instance: "i", params: ["name": "plain", "fifo": true])
        let error = await #expect(throws: CloudError.self) { try await driver.provision(missingSuffix) }
        #expect(error?.description == "queue plain: a FIFO queue's name must end in .fifo (param name)")

        let extraSuffix = MotoDriverFixture.context(client, instance: "i", params: ["name": "odd.fifo"])
        let other = await #expect(throws: CloudError.self) { try await driver.plan(extraSuffix) }
        #expect(
            other?.description
                == "queue odd.fifo: only a FIFO queue's name may end in .fifo: set fifo: true or change the name")
        #expect(try await Self.url(client, "plain") == nil)
        try await moto.stop()
    }

    @Test func wrongCredentials_failWithTheEmulatorsCode() async throws {
        let moto = try await MotoServer.start()
        let wrongSecret = MotoDriverFixture.client(moto, secretAccessKey: "not-the-secret")
        let unknownKey = MotoDriverFixture.client(moto, accessKeyID: "AKIAUNKNOWNKEY000000")

        let provision = await #expect(throws: AWSError.self) {
            try await driver.provision(MotoDriverFixture.context(wrongSecret, instance: "p-dev-denied", params: [:]))
        }
        #expect(provision?.code == "SignatureDoesNotMatch")
        #expect(provision?.status == 403)
        #expect(provision?.message.hasPrefix("GetQueueUrl of queue p-dev-denied: ") == true)
        let decommission = await #expect(throws: AWSError.self) {
            try await driver.decommission(MotoDriverFixture.context(unknownKey, instance: "p-dev-denied", params: [:]))
        }
        #expect(decommission?.code == "InvalidClientTokenId")
        #expect(decommission?.description.contains("p-dev-denied") == true)
        try await moto.stop()
    }
}
