import ConvergeCore
import ConvergeTestSupport
import Foundation
import Testing

@testable import ConvergeProvisioners

/// `S3BucketDriver` against the moto emulator (signature checking on): what it creates, converges, plans and deletes
/// is checked through signed calls of the test's own.
@Suite(.serialized) struct S3BucketDriverTests {
    let driver = S3BucketDriver()

    /// A client of the emulator signing for `region`; a wrong key or secret makes one the emulator refuses.
    static func client(
        _ moto: MotoServer, region: String? = nil, accessKeyID: String? = nil, secretAccessKey: String? = nil
    ) -> AWSClient {
        let client = MotoDriverFixture.client(moto, accessKeyID: accessKeyID, secretAccessKey: secretAccessKey)
        guard let region else { return client }
        return AWSClient(
            region: region, endpoint: client.endpoint, credentials: client.credentials, settings: client.settings)
    }

    static func context(_ client: AWSClient, instance: String, params: Value, log: DriverLog = DriverLog())
        -> CloudContext
    {
        MotoDriverFixture.context(client, instance: instance, params: params, log: log)
    }

    /// A signed S3 call of the test's own.
    @discardableResult
    static func s3(
        _ client: AWSClient, _ method: String, _ path: String, query: String? = nil, body: [UInt8]? = nil
    ) async throws -> String {
        let response = try await client.send(
            service: "s3", method: method, path: path, query: query.map { [($0, "")] } ?? [], body: body)
        return String(decoding: response.body, as: UTF8.self)
    }

    /// The bucket's versioning status as S3 reports it; nil when it never had versioning.
    static func versioning(_ client: AWSClient, _ bucket: String) async throws -> String? {
        XMLText.first("Status", in: try await s3(client, "GET", "/\(bucket)", query: "versioning"))
    }

    /// The bucket's tags as S3 reports them.
    static func tags(_ client: AWSClient, _ bucket: String) async throws -> [String: String] {
        let answer: String
        do {
            answer = try await s3(client, "GET", "/\(bucket)", query: "tagging")
        } catch let error as AWSError where error.code == "NoSuchTagSet" {
            return [:]
        }
        let keys = XMLText.all("Key", in: answer)
        let values = XMLText.all("Value", in: answer)
        return Dictionary(uniqueKeysWithValues: zip(keys, values))
    }

    static func exists(_ client: AWSClient, _ bucket: String) async throws -> Bool {
        do {
            try await s3(client, "HEAD", "/\(bucket)")
            return true
        } catch let error as AWSError where error.status == 404 {
            return false
        }
    }

    @Test func provision_createsTheBucketWithVersioningAndTags() async throws {
        let moto = try await MotoServer.start()
        let client = Self.client(moto)
        let log = DriverLog()
        let params: Value = [
            "name": "assets-1", "versioning": true, "tags": ["team": "shop", "cost-center": "a&b <1>"],
        ]
        let context = Self.context(client, instance: "p-dev-assets", params: params, log: log)

        let outputs = try await driver.provision(context)

        #expect(
            outputs == [
                "name": "assets-1", "arn": "arn:aws:s3:::assets-1", "endpoint": .string("\(moto.endpoint)/assets-1"),
            ])
        #expect(try await Self.versioning(client, "assets-1") == "Enabled")
        #expect(try await Self.tags(client, "assets-1") == ["team": "shop", "cost-center": "a&b <1>"])
        #expect(log.take().contains { $0.contains("created bucket assets-1") })
        #expect(try await driver.plan(context) == [])
    }

    @Test func provision_namesTheBucketAfterTheInstance_andLeavesVersioningThatWasNeverOnUntouched() async throws {
        let moto = try await MotoServer.start()
        let client = Self.client(moto)
        let context = Self.context(client, instance: "p-dev-plain", params: [:])

        let outputs = try await driver.provision(context)

        #expect(outputs["name"] == "p-dev-plain")
        #expect(try await Self.versioning(client, "p-dev-plain") == nil)
        #expect(try await Self.tags(client, "p-dev-plain") == [:])
        #expect(try await driver.plan(context) == [])
    }

    @Test func provision_createsTheBucketInTheClientsRegion_withoutALocationConstraintInUSEast1() async throws {
        let moto = try await MotoServer.start()
        for region in ["us-east-1", "eu-central-1"] {
            let client = Self.client(moto, region: region)
            let context = Self.context(
                client, instance: "in-\(region)", params: ["tags": ["region": Value.string(region)]])
            _ = try await driver.provision(context)
            let location = try await Self.s3(client, "GET", "/in-\(region)", query: "location")
            // S3 reports us-east-1 as no location constraint at all.
            #expect((XMLText.first("LocationConstraint", in: location) ?? "") == (region == "us-east-1" ? "" : region))
            #expect(try await driver.plan(context) == [])
        }
    }

    @Test func secondProvision_ofTheSameParams_writesNothing_andSaysSo() async throws {
        let moto = try await MotoServer.start()
        let client = Self.client(moto)
        let log = DriverLog()
        let params: Value = ["versioning": true, "tags": ["team": "shop"]]
        let context = Self.context(client, instance: "p-dev-twice", params: params, log: log)
        let first = try await driver.provision(context)
        _ = log.take()

        let second = try await driver.provision(context)

        #expect(second == first)
        #expect(log.take() == ["bucket p-dev-twice is up to date: nothing changed"])
        #expect(try await driver.plan(context) == [])
    }

    @Test func changedParams_showInThePlan_thenProvisionConvergesTheBucketInPlace() async throws {
        let moto = try await MotoServer.start()
        let client = Self.client(moto)
        let log = DriverLog()
        let before = Self.context(
            client, instance: "p-dev-change", params: ["tags": ["team": "shop", "old": "x"]], log: log)
        _ = try await driver.provision(before)
        _ = log.take()
        let after = Self.context(
            client, instance: "p-dev-change", params: ["versioning": true, "tags": ["team": "web", "owner": "dora"]],
            log: log)

        #expect(
            try await driver.plan(after) == [
                ValueChange(path: "tags.old", before: "x", after: nil),
                ValueChange(path: "tags.owner", before: nil, after: "dora"),
                ValueChange(path: "tags.team", before: "shop", after: "web"),
                ValueChange(path: "versioning", before: false, after: true),
            ])
        // A plan changes nothing.
        #expect(try await Self.versioning(client, "p-dev-change") == nil)
        #expect(try await Self.tags(client, "p-dev-change") == ["team": "shop", "old": "x"])

        _ = try await driver.provision(after)

        #expect(try await Self.versioning(client, "p-dev-change") == "Enabled")
        #expect(try await Self.tags(client, "p-dev-change") == ["team": "web", "owner": "dora"])
        #expect(
            log.take() == [
                "set versioning of bucket p-dev-change to Enabled",
                "set tags of bucket p-dev-change to owner=dora, team=web",
            ])
        #expect(try await driver.plan(after) == [])

        // Versioning off suspends it; no tags removes them all.
        let bare = Self.context(client, instance: "p-dev-change", params: ["versioning": false], log: log)
        #expect(
            try await driver.plan(bare) == [
                ValueChange(path: "tags.owner", before: "dora", after: nil),
                ValueChange(path: "tags.team", before: "web", after: nil),
                ValueChange(path: "versioning", before: true, after: false),
            ])
        _ = try await driver.provision(bare)
        #expect(try await Self.versioning(client, "p-dev-change") == "Suspended")
        #expect(try await Self.tags(client, "p-dev-change") == [:])
        #expect(
            log.take() == [
                "set versioning of bucket p-dev-change to Suspended", "removed the tags of bucket p-dev-change",
            ])
        #expect(try await driver.plan(bare) == [])
    }

    @Test func plan_ofAMissingBucket_isOneChangeFromNothingToTheParams() async throws {
        let moto = try await MotoServer.start()
        let params: Value = ["versioning": true]
        let context = Self.context(Self.client(moto), instance: "p-dev-missing", params: params)

        #expect(try await driver.plan(context) == [ValueChange(path: "", before: nil, after: params)])
        #expect(try await Self.exists(Self.client(moto), "p-dev-missing") == false)
    }

    @Test func decommission_emptiesAndDeletesTheBucket_andASecondOneSucceeds() async throws {
        let moto = try await MotoServer.start()
        let client = Self.client(moto)
        let log = DriverLog()
        let context = Self.context(client, instance: "p-dev-full", params: ["versioning": true], log: log)
        _ = try await driver.provision(context)
        // Two versions of one object, a delete marker over another, and a key that needs escaping.
        try await Self.s3(client, "PUT", "/p-dev-full/report.txt", body: Array("one".utf8))
        try await Self.s3(client, "PUT", "/p-dev-full/report.txt", body: Array("two".utf8))
        try await Self.s3(client, "PUT", "/p-dev-full/gone.txt", body: Array("gone".utf8))
        try await Self.s3(client, "DELETE", "/p-dev-full/gone.txt")
        try await Self.s3(client, "PUT", "/p-dev-full/a%26b%3C1%3E.txt", body: [])
        _ = log.take()

        try await driver.decommission(context)

        #expect(try await Self.exists(client, "p-dev-full") == false)
        #expect(log.take() == ["deleted 5 object version(s) of bucket p-dev-full", "deleted bucket p-dev-full"])
        #expect(try await driver.plan(context) == [ValueChange(path: "", before: nil, after: ["versioning": true])])

        try await driver.decommission(context)
        #expect(log.take() == ["bucket p-dev-full does not exist: nothing to delete"])
    }

    @Test func decommission_ofABucketWithoutVersioning_deletesItsObjects() async throws {
        let moto = try await MotoServer.start()
        let client = Self.client(moto)
        let context = Self.context(client, instance: "p-dev-flat", params: [:])
        _ = try await driver.provision(context)
        for index in 0..<3 { try await Self.s3(client, "PUT", "/p-dev-flat/object-\(index)", body: [UInt8(index)]) }

        try await driver.decommission(context)

        #expect(try await Self.exists(client, "p-dev-flat") == false)
    }

    @Test func wrongCredentials_failWithTheEmulatorsCode() async throws {
        let moto = try await MotoServer.start()
        let wrongSecret = Self.client(moto, secretAccessKey: "not-the-secret")
        let unknownKey = Self.client(moto, accessKeyID: "AKIAUNKNOWNKEY000000")
        let context = Self.context(wrongSecret, instance: "p-dev-denied", params: [:])

        let provision = await #expect(throws: AWSError.self) { try await driver.provision(context) }
        #expect(provision?.code == "SignatureDoesNotMatch")
        #expect(provision?.status == 403)
        // A HEAD answer names no code: the plan asks again to name it.
        let plan = await #expect(throws: AWSError.self) { try await driver.plan(context) }
        #expect(plan?.code == "SignatureDoesNotMatch")
        let decommission = await #expect(throws: AWSError.self) {
            try await driver.decommission(Self.context(unknownKey, instance: "p-dev-denied", params: [:]))
        }
        #expect(decommission?.code == "InvalidAccessKeyId")
        #expect(decommission?.description.contains("p-dev-denied") == true)
    }

    @Test(arguments: ["ab", "Upper-Case", "under_score", "-leading", "trailing.", "two..dots"])
    func anInvalidBucketName_failsWithAClearReason_beforeAnyCall(name: String) async throws {
        // An endpoint nothing listens on: the check needs no call.
        var settings = AWSClient.Settings()
        settings.allowedURLPrefixes = ["http://127.0.0.1:9"]
        let client = AWSClient(
            region: "eu-west-1", endpoint: "http://127.0.0.1:9",
            credentials: AWSCredentials(accessKeyID: "a", secretAccessKey: "b"), settings: settings)
        let context = Self.context(client, instance: name, params: [:])

        let error = await #expect(throws: CloudError.self) { try await driver.provision(context) }
        #expect(error?.description.hasPrefix("the bucket name \"\(name)\" is not valid: expected ") == true)
        await #expect(throws: CloudError.self) { try await driver.plan(context) }
        // No bucket can have the name: there is nothing to delete.
        try await driver.decommission(context)
    }

    /// moto checks no MD5 against the body (only the signature, which covers it): a known digest does.
    @Test func headers_carryTheBodysMD5AndType() {
        let headers = S3Bucket.headers(for: Array("abc".utf8))
        #expect(headers.map(\.name) == ["Content-Type", "Content-MD5"])
        #expect(headers[1].value == "kAFQmDzST7DWlj99KOF/cg==")
        #expect(S3Bucket.headers(for: nil).isEmpty)
    }

    @Test func writes_areOnlyWhatDiffers() {
        typealias Observed = S3BucketDriver.Observed
        let cases: [(Observed, versioning: Bool, tags: [String: String], [S3BucketDriver.Write])] = [
            (Observed(versioning: nil, tags: [:]), false, [:], []),
            (Observed(versioning: nil, tags: [:]), true, [:], [.versioning("Enabled")]),
            (Observed(versioning: "Enabled", tags: [:]), true, [:], []),
            (Observed(versioning: "Enabled", tags: [:]), false, [:], [.versioning("Suspended")]),
            (Observed(versioning: "Suspended", tags: [:]), false, [:], []),
            (Observed(versioning: "Suspended", tags: [:]), true, [:], [.versioning("Enabled")]),
            (Observed(versioning: nil, tags: ["a": "1"]), false, ["a": "1"], []),
            (Observed(versioning: nil, tags: ["a": "1"]), false, ["a": "2"], [.putTags(["a": "2"])]),
            (Observed(versioning: nil, tags: [:]), false, ["a": "1"], [.putTags(["a": "1"])]),
            (Observed(versioning: nil, tags: ["a": "1"]), false, [:], [.deleteTags]),
            (
                Observed(versioning: "Enabled", tags: ["a": "1"]), false, ["b": "2"],
                [.versioning("Suspended"), .putTags(["b": "2"])]
            ),
        ]
        for (observed, versioning, tags, expected) in cases {
            let desired = S3BucketDriver.Desired(name: "b", versioning: versioning, tags: tags)
            #expect(S3BucketDriver.writes(from: observed, to: desired) == expected, "\(observed) -> \(desired)")
        }
    }
}
