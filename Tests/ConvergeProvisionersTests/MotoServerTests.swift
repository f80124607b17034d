import ConvergeTestSupport
import Foundation
import Testing

@testable import ConvergeProvisioners

/// The emulator every cloud test runs against checks signatures: what it accepts is what AWS would.
@Suite(.serialized) struct MotoServerTests {
    let client = CurlHTTPClient()

    /// The SHA-256 of an empty body: S3 wants the payload's hash in `x-amz-content-sha256`, and libcurl (7.88) signs
    /// the header's value as the payload hash but does not add the header itself.
    static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// S3 `ListBuckets` (`GET /`), signed by libcurl with `secret` (the server's own when nil), or unsigned.
    func listBuckets(_ moto: MotoServer, signed: Bool = true, secret: String? = nil) async throws -> HTTPResponse {
        let signing = AWSSigning(
            region: moto.region, service: "s3", accessKeyID: moto.accessKeyID,
            secretAccessKey: secret ?? moto.secretAccessKey)
        return try await client.send(
            HTTPRequest(
                method: "GET", url: moto.endpoint + "/", headers: [("x-amz-content-sha256", Self.emptyPayloadHash)],
                body: nil, connectTimeout: .seconds(5), timeout: .seconds(30), maxResponseBytes: 1 << 20,
                aws: signed ? signing : nil))
    }

    /// SQS `ListQueues` in the query protocol, signed by libcurl with `secret` (the server's own when nil).
    func listQueues(_ moto: MotoServer, secret: String? = nil) async throws -> HTTPResponse {
        try await client.send(
            HTTPRequest(
                method: "POST", url: moto.endpoint + "/",
                headers: [("Content-Type", "application/x-www-form-urlencoded")],
                body: Array("Action=ListQueues&Version=2012-11-05".utf8), connectTimeout: .seconds(5),
                timeout: .seconds(30), maxResponseBytes: 1 << 20,
                aws: AWSSigning(
                    region: moto.region, service: "sqs", accessKeyID: moto.accessKeyID,
                    secretAccessKey: secret ?? moto.secretAccessKey)))
    }

    @Test func unsignedRequest_isRefused_andTheSameRequestSignedIsServed() async throws {
        let moto = try await MotoServer.start()
        let unsigned = try await listBuckets(moto, signed: false)
        // AWS answers 403; moto 5.2.5 answers 500, as its signature check reads the missing Authorization header.
        // Either way the request does not reach S3.
        let body = String(decoding: unsigned.body, as: UTF8.self)
        #expect([403, 500].contains(unsigned.status), "\(unsigned.status): \(body)\n\(moto.logTail())")
        #expect(!body.contains("ListAllMyBucketsResult"))
        #expect(try await listBuckets(moto).status == 200)
    }

    @Test func requestSignedWithTheCreatedKey_succeedsOnS3SQSAndDynamoDB() async throws {
        let moto = try await MotoServer.start()
        let buckets = try await listBuckets(moto)
        #expect(buckets.status == 200, "\(String(decoding: buckets.body, as: UTF8.self))")
        #expect(String(decoding: buckets.body, as: UTF8.self).contains("<ListAllMyBucketsResult"))

        let queues = try await listQueues(moto)
        #expect(queues.status == 200, "\(String(decoding: queues.body, as: UTF8.self))")
        #expect(String(decoding: queues.body, as: UTF8.self).contains("<ListQueuesResponse"))

        let tables = try await client.send(
            HTTPRequest(
                method: "POST", url: moto.endpoint + "/",
                headers: [
                    ("Content-Type", "application/x-amz-json-1.0"), ("X-Amz-Target", "DynamoDB_20120810.ListTables"),
                ],
                body: Array("{}".utf8), connectTimeout: .seconds(5), timeout: .seconds(30), maxResponseBytes: 1 << 20,
                aws: AWSSigning(
                    region: moto.region, service: "dynamodb", accessKeyID: moto.accessKeyID,
                    secretAccessKey: moto.secretAccessKey)))
        #expect(tables.status == 200, "\(String(decoding: tables.body, as: UTF8.self))")
        #expect(String(decoding: tables.body, as: UTF8.self).contains("\"TableNames\""))
    }

    @Test func requestSignedWithAWrongSecret_isRefusedAsASignatureMismatch() async throws {
        let moto = try await MotoServer.start()
        let buckets = try await listBuckets(moto, secret: "not-the-secret")
        #expect(buckets.status == 403)
        #expect(String(decoding: buckets.body, as: UTF8.self).contains("<Code>SignatureDoesNotMatch</Code>"))

        let queues = try await listQueues(moto, secret: "not-the-secret")
        #expect(queues.status == 403)
        #expect(String(decoding: queues.body, as: UTF8.self).contains("<Code>SignatureDoesNotMatch</Code>"))
    }

    @Test func stop_killsTheServer() async throws {
        let moto = try await MotoServer.start()
        #expect(try await listBuckets(moto).status == 200)
        try await moto.stop()
        await #expect(throws: HTTPTransportError.self) { try await listBuckets(moto) }
    }
}
