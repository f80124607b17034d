import ConvergeCore
import ConvergeProvisioners
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

/// Cloud provisioners end to end: the real daemon creates, updates, plans and deletes AWS objects in the moto
/// emulator (signature checking on) through its drivers, and a downstream instance uses their outputs.
@Suite(.serialized) struct CloudTests {
    /// A repository whose provisioner `aws` calls `endpoint`, with the bundles of the three drivers and a webhook
    /// bundle that connects to a queue; `instances` are extra documents.
    static func repository(endpoint: String, hook: String, instances: String) -> [String: String] {
        [
            "base.yaml": baseManifests(
                environment: "policy: auto, prune: true", provisioner: "aws",
                spec: #"{cloud: {provider: aws, region: eu-west-1, endpoint: "\#(endpoint)", timeoutSeconds: 60}}"#)
                    + """
                    apiVersion: converge/v1
                    kind: Provisioner
                    metadata: {name: hook}
                    spec:
                      webhook: {url: "\(hook)", timeoutSeconds: 10}
                    ---
                    apiVersion: converge/v1
                    kind: Bundle
                    metadata: {name: queue}
                    spec: {provisioner: aws, cloud: {resource: aws-sqs-queue}, artifacts: {queue: {type: sqs-queue}}}
                    ---
                    apiVersion: converge/v1
                    kind: Bundle
                    metadata: {name: bucket}
                    spec: {provisioner: aws, cloud: {resource: aws-s3-bucket}, artifacts: {bucket: {type: s3-bucket}}}
                    ---
                    apiVersion: converge/v1
                    kind: Bundle
                    metadata: {name: table}
                    spec: {provisioner: aws, cloud: {resource: aws-dynamodb-table}, artifacts: {table: {type: dynamodb-table}}}
                    ---
                    apiVersion: converge/v1
                    kind: Bundle
                    metadata: {name: worker}
                    spec: {provisioner: hook, connections: {jobs: {type: sqs-queue}}}
                    """,
            "instances.yaml": instances,
        ]
    }

    static func instances(visibilityTimeout: Int) -> String {
        """
        apiVersion: converge/v1
        kind: Instance
        metadata: {name: jobs, project: p, environment: dev}
        spec: {bundle: queue, params: {visibilityTimeout: \(visibilityTimeout), tags: {team: shop}}}
        ---
        apiVersion: converge/v1
        kind: Instance
        metadata: {name: assets, project: p, environment: dev}
        spec: {bundle: bucket, params: {versioning: true, tags: {team: shop}}}
        ---
        apiVersion: converge/v1
        kind: Instance
        metadata: {name: orders, project: p, environment: dev}
        spec: {bundle: table, params: {partitionKey: {name: id, type: S}}}
        ---
        apiVersion: converge/v1
        kind: Instance
        metadata: {name: worker, project: p, environment: dev}
        spec: {bundle: worker, connections: {jobs: jobs.queue}}
        """
    }

    /// The emulator's own view, through the same signed client.
    static func client(_ moto: MotoServer) -> AWSClient {
        var settings = AWSClient.Settings()
        settings.allowedURLPrefixes = [moto.endpoint]
        return AWSClient(
            region: moto.region, endpoint: moto.endpoint,
            credentials: AWSCredentials(accessKeyID: moto.accessKeyID, secretAccessKey: moto.secretAccessKey),
            settings: settings)
    }

    static func visibilityTimeout(_ client: AWSClient, url: String) async throws -> String? {
        let answer = try await client.json(
            service: "sqs", target: "AmazonSQS.GetQueueAttributes",
            input: ["QueueUrl": .string(url), "AttributeNames": ["VisibilityTimeout"]])
        return answer["Attributes"]?["VisibilityTimeout"]?.stringValue
    }

    @Test func driversCreateUpdatePlanAndDelete_andOutputsFeedADownstreamInstance() async throws {
        let moto = try await MotoServer.start()
        let hook = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200, body: completedAnswer) }
        defer { Task { await hook.stop() } }
        let daemon = try DaemonProcess(
            files: Self.repository(
                endpoint: moto.endpoint, hook: hook.url, instances: Self.instances(visibilityTimeout: 30)))
        daemon.environment = ["AWS_ACCESS_KEY_ID": moto.accessKeyID, "AWS_SECRET_ACCESS_KEY": moto.secretAccessKey]
        try await daemon.start()
        let dora = try await daemon.token("dora", role: "deployer")
        let store = try daemon.store()
        let client = Self.client(moto)
        let ids = ["p-dev-jobs", "p-dev-assets", "p-dev-orders", "p-dev-worker"]
        try await eventually("everything is deployed", timeout: .seconds(60)) { try await store.completed(ids) }

        // The objects exist with what was declared, and the queue's outputs reached the worker.
        let queue = try #require(try await store.instance("p-dev-jobs").outputs?["queue"])
        let url = try #require(queue["url"]?.stringValue)
        #expect(queue["arn"]?.stringValue?.hasPrefix("arn:aws:sqs:eu-west-1:") == true)
        #expect(try await Self.visibilityTimeout(client, url: url) == "30")
        let worker = try #require(try await store.history("p-dev-worker").first)
        #expect(worker.snapshot.connectionParams["jobs"]?["url"]?.stringValue == url)
        let versioning = try await client.send(
            service: "s3", method: "GET", path: "/p-dev-assets", query: [("versioning", "")])
        #expect(XMLText.first("Status", in: String(decoding: versioning.body, as: UTF8.self)) == "Enabled")
        let table = try await client.json(
            service: "dynamodb", target: "DynamoDB_20120810.DescribeTable", input: ["TableName": "p-dev-orders"])
        #expect(table["Table"]?["TableStatus"] == "ACTIVE")
        #expect(try await store.instance("p-dev-orders").outputs?["table"]?["name"] == "p-dev-orders")

        // A params change: one deployment that updates the queue in place; the worker's connection is unchanged.
        try daemon.write(
            Self.repository(endpoint: moto.endpoint, hook: hook.url, instances: Self.instances(visibilityTimeout: 60)))
        #expect(try await daemon.sync() == 202)
        try await eventually("the change is deployed") {
            let newest = try await store.history("p-dev-jobs").first
            return newest?.snapshot.params["visibilityTimeout"] == 60 && newest?.status == .completed
        }
        #expect(try await store.history("p-dev-jobs").count == 2)
        #expect(try await Self.visibilityTimeout(client, url: url) == "60")
        #expect(try await store.history("p-dev-worker").count == 1, "the queue's url did not change")

        // Changed behind converge's back: a PLAN shows it and changes nothing.
        _ = try await client.json(
            service: "sqs", target: "AmazonSQS.SetQueueAttributes",
            input: ["QueueUrl": .string(url), "Attributes": ["VisibilityTimeout": "99"]])
        let plan = try await daemon.cli(dora, "plan", "p-dev-jobs", "--wait", "-o", "json")
        #expect(plan.status == 0, "\(plan.stderr)")
        let changes = try Value(json: plan.stdout)["planResult"]?["changes"]
        #expect(changes == [["path": "visibilityTimeout", "before": 99, "after": 60]], "\(plan.stdout)")
        #expect(try await Self.visibilityTimeout(client, url: url) == "99", "the plan applied nothing")

        // Deployed again, it converges; once more, nothing is left to change.
        #expect(try await daemon.cli(dora, "deploy", "p-dev-jobs", "--wait").status == 0)
        #expect(try await Self.visibilityTimeout(client, url: url) == "60")
        let again = try await daemon.cli(dora, "plan", "p-dev-jobs", "--wait", "-o", "json")
        #expect(try Value(json: again.stdout)["planResult"]?["changes"] == [])

        // Removed from the manifests: the environment prunes, and the objects are deleted.
        try daemon.write(Self.repository(endpoint: moto.endpoint, hook: hook.url, instances: ""))
        #expect(try await daemon.sync() == 202)
        try await eventually("everything is decommissioned", timeout: .seconds(60)) {
            for id in ids where try await store.instance(id).status != .decommissioned { return false }
            return true
        }
        await #expect(throws: AWSError.self) {
            try await client.json(service: "sqs", target: "AmazonSQS.GetQueueUrl", input: ["QueueName": "p-dev-jobs"])
        }
        await #expect(throws: AWSError.self) {
            try await client.send(service: "s3", method: "HEAD", path: "/p-dev-assets")
        }
        await #expect(throws: AWSError.self) {
            try await client.json(
                service: "dynamodb", target: "DynamoDB_20120810.DescribeTable", input: ["TableName": "p-dev-orders"])
        }
        try await daemon.stop()
    }

    @Test func faults_throttlingIsRetried_everyOtherFailureIsClear() async throws {
        let moto = try await MotoServer.start()
        // A proxy on loopback that answers the first two calls as AWS does when it throttles, then forwards every
        // call unchanged (its Host and signature included) to the emulator.
        let http = CurlHTTPClient()
        let proxyPort = try DaemonProcess.freePort()
        let proxy = try await LoopbackServer.start(port: proxyPort) { index, request in
            if index <= 2 {
                return ScriptedResponse(
                    status: 400,
                    body: #"{"__type": "com.amazonaws.sqs#ThrottlingException", "message": "Rate exceeded"}"#)
            }
            // The Host the client signed: the proxy's.
            let headers =
                [(name: "Host", value: "127.0.0.1:\(proxyPort)")]
                + request.headers.filter { !["content-length", "connection", "host"].contains($0.key) }
                .map { (name: $0.key, value: $0.value) }
            let forwarded = try? await http.send(
                HTTPRequest(
                    method: request.method, url: moto.endpoint + request.path + (request.query.map { "?\($0)" } ?? ""),
                    headers: headers, body: request.body.isEmpty ? nil : Array(request.body),
                    connectTimeout: .seconds(5), timeout: .seconds(30), maxResponseBytes: 1 << 20))
            guard let forwarded else { return ScriptedResponse(status: 502, body: "emulator unreachable") }
            return ScriptedResponse(
                status: forwarded.status, body: String(decoding: forwarded.body, as: UTF8.self),
                headers: forwarded.headers.filter { $0.name.lowercased().hasPrefix("x-amz") })
        }
        defer { Task { await proxy.stop() } }
        let files = [
            "base.yaml": baseManifests(
                provisioner: "throttled",
                spec: #"{cloud: {provider: aws, region: eu-west-1, endpoint: "http://127.0.0.1:\#(proxyPort)", "#
                    + "timeoutSeconds: 60}}")
                    + """
                    apiVersion: converge/v1
                    kind: Provisioner
                    metadata: {name: denied}
                    spec:
                      cloud:
                        provider: aws
                        region: eu-west-1
                        endpoint: "\(moto.endpoint)"
                        timeoutSeconds: 60
                        credentials: {accessKeyId: WRONG_KEY_ID, secretAccessKey: WRONG_SECRET}
                    ---
                    apiVersion: converge/v1
                    kind: Provisioner
                    metadata: {name: unreachable}
                    spec: {cloud: {provider: aws, region: eu-west-1, endpoint: "http://127.0.0.1:1", timeoutSeconds: 10}}
                    ---
                    apiVersion: converge/v1
                    kind: Provisioner
                    metadata: {name: elsewhere}
                    spec: {cloud: {provider: aws, region: eu-west-1, endpoint: "http://10.0.0.1:4566", timeoutSeconds: 10}}
                    ---
                    apiVersion: converge/v1
                    kind: Provisioner
                    metadata: {name: keyed}
                    spec:
                      cloud:
                        provider: aws
                        region: eu-west-1
                        endpoint: "\(moto.endpoint)"
                        timeoutSeconds: 60
                        credentials: {accessKeyId: QUEUE_KEY_ID, secretAccessKey: QUEUE_SECRET}
                    """
        ]
        var documents = files
        for provisioner in ["throttled", "denied", "unreachable", "elsewhere", "keyed"] {
            documents["\(provisioner).yaml"] = """
                apiVersion: converge/v1
                kind: Bundle
                metadata: {name: \(provisioner)}
                spec: {provisioner: \(provisioner), cloud: {resource: aws-sqs-queue}, artifacts: {queue: {type: q}}}
                ---
                apiVersion: converge/v1
                kind: Instance
                metadata: {name: \(provisioner), project: p, environment: dev}
                spec: {bundle: \(provisioner)}
                """
        }
        let daemon = try DaemonProcess(files: documents)
        daemon.environment = [
            "AWS_ACCESS_KEY_ID": moto.accessKeyID, "AWS_SECRET_ACCESS_KEY": moto.secretAccessKey,
            "WRONG_KEY_ID": moto.accessKeyID, "WRONG_SECRET": "not-the-secret",
        ]
        try await daemon.start()
        let store = try daemon.store()
        try await eventually("every deployment ended", timeout: .seconds(60)) {
            for id in ["p-dev-throttled", "p-dev-denied", "p-dev-unreachable", "p-dev-elsewhere", "p-dev-keyed"] {
                guard let status = try await store.history(id).first?.status, [.completed, .failed].contains(status)
                else {
                    return false
                }
            }
            return true
        }
        let throttled = try #require(try await store.history("p-dev-throttled").first)
        #expect(throttled.status == .completed, "retried through the throttling: \(throttled.error ?? "")")
        #expect(await proxy.requests.count >= 3)
        let denied = try #require(try await store.history("p-dev-denied").first)
        #expect(denied.status == .failed)
        #expect(denied.error?.hasPrefix("AWS ") == true, "\(denied.error ?? "")")
        #expect(denied.error?.contains("not-the-secret") == false, "the secret is never in an error")
        let unreachable = try #require(try await store.history("p-dev-unreachable").first)
        #expect(unreachable.status == .failed)
        #expect(unreachable.error?.contains("connection failed") == true, "\(unreachable.error ?? "")")
        let elsewhere = try #require(try await store.history("p-dev-elsewhere").first)
        #expect(elsewhere.error == "the AWS endpoint http://10.0.0.1:4566 is not allowed by the daemon's configuration")

        // Credentials the daemon does not have: a clear failure, then the instance's own secrets of those names.
        let keyed = try #require(try await store.history("p-dev-keyed").first)
        #expect(
            keyed.error
                == "no AWS credentials: set QUEUE_KEY_ID and QUEUE_SECRET in the daemon's environment or as the "
                + "instance's secrets")
        let dora = try await daemon.token("dora", role: "deployer")
        for (name, value) in [("QUEUE_KEY_ID", moto.accessKeyID), ("QUEUE_SECRET", moto.secretAccessKey)] {
            let file = daemon.directory.appendingPathComponent(name)
            try value.write(to: file, atomically: true, encoding: .utf8)
            let set = try await daemon.cli(dora, "secret", "set", "p-dev-keyed", name, "--from-file", file.path)
            #expect(set.status == 0, "\(set.stderr)")
        }
        let deployed = try await daemon.cli(dora, "deploy", "p-dev-keyed", "--wait")
        #expect(deployed.status == 0, "\(deployed.stdout) \(deployed.stderr)")
        let events = try await daemon.cli(dora, "logs", try #require(try await store.history("p-dev-keyed").first).id)
        #expect(!events.stdout.contains(moto.secretAccessKey), "credentials are never in the log")
        try await daemon.stop()
    }
}
