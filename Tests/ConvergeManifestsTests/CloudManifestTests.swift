import ConvergeCore
import Foundation
import Testing

@testable import ConvergeManifests

/// Cloud provisioners (`spec.cloud` of a Provisioner) and cloud bundles (`spec.cloud.resource` of a Bundle): decoded,
/// their params checked and defaulted against the driver's schema, and every misuse refused with a located error.
@Suite struct CloudManifestTests {
    static let provisioner = """
        apiVersion: converge/v1
        kind: Provisioner
        metadata: {name: aws}
        spec:
          cloud:
            provider: aws
            region: eu-west-1
            endpoint: http://127.0.0.1:5000

        """

    static let bundle = """
        apiVersion: converge/v1
        kind: Bundle
        metadata: {name: queue}
        spec:
          provisioner: aws
          cloud: {resource: aws-sqs-queue}
          artifacts: {queue: {type: sqs-queue}}

        """

    static let instance = """
        apiVersion: converge/v1
        kind: Instance
        metadata: {name: jobs, project: shop, environment: dev}
        spec:
          bundle: queue
          params: {fifo: true, tags: {team: shop}}

        """

    /// The base fixture repository plus `files`.
    func load(_ files: [(String, String)]) throws(ManifestErrors) -> DesiredState {
        try ManifestLoader().load(files: try! Paths.files("base") + files.map { (path: $0.0, text: $0.1) })
    }

    /// Every error of loading the base fixture repository plus `files`, or none.
    func errors(_ files: [(String, String)]) -> [String] {
        do {
            _ = try load(files)
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    @Test func cloudProvisionerAndBundle_load_andParamsGetTheDriversDefaults() throws {
        let state = try load([
            ("provisioner.yaml", Self.provisioner), ("bundle.yaml", Self.bundle), ("instance.yaml", Self.instance),
        ])
        #expect(
            state.provisioners["aws"]?.cloud
                == Provisioner.Cloud(
                    provider: "aws", region: "eu-west-1", endpoint: "http://127.0.0.1:5000",
                    credentials: .init(
                        accessKeyID: "AWS_ACCESS_KEY_ID", secretAccessKey: "AWS_SECRET_ACCESS_KEY",
                        sessionToken: "AWS_SESSION_TOKEN"), timeoutSeconds: 600))
        #expect(state.provisioners["aws"]?.webhook == nil && state.provisioners["aws"]?.exec == nil)
        let bundle = try #require(state.bundles["queue"])
        #expect(bundle.cloudResource == "aws-sqs-queue")
        #expect(bundle.paramsSchema == CloudResources.sqsQueue.paramsSchema)
        #expect(
            state.instances["shop-dev-jobs"]?.params == [
                "fifo": true, "tags": ["team": "shop"], "visibilityTimeout": 30, "messageRetentionPeriod": 345_600,
                "delaySeconds": 0,
            ])
    }

    @Test func cloudProvisioner_credentialsAndTimeout_areDecoded() throws {
        let provisioner = """
            apiVersion: converge/v1
            kind: Provisioner
            metadata: {name: aws}
            spec:
              cloud:
                provider: aws
                region: us-gov-west-1
                credentials: {accessKeyId: SHOP_KEY, secretAccessKey: SHOP_SECRET, sessionToken: SHOP_TOKEN}
                timeoutSeconds: 120

            """
        let state = try load([("provisioner.yaml", provisioner), ("bundle.yaml", Self.bundle)])
        let cloud = try #require(state.provisioners["aws"]?.cloud)
        #expect(cloud.region == "us-gov-west-1")
        #expect(cloud.endpoint == nil)
        #expect(
            cloud.credentials
                == .init(accessKeyID: "SHOP_KEY", secretAccessKey: "SHOP_SECRET", sessionToken: "SHOP_TOKEN"))
        #expect(cloud.timeoutSeconds == 120)
        #expect(state.provisioners["aws"]?.timeoutSeconds == 120)
    }

    @Test func everyCloudResource_getsItsDriversSchema() throws {
        for (resource, kind) in CloudResources.kinds {
            let bundle = Self.bundle.replacingOccurrences(of: "aws-sqs-queue", with: resource)
            let state = try load([("provisioner.yaml", Self.provisioner), ("bundle.yaml", bundle)])
            #expect(state.bundles["queue"]?.paramsSchema == kind.paramsSchema)
            #expect(ParamsSchema.cloud[resource] != nil)
        }
    }

    @Test func params_areCheckedAgainstTheDriversSchema() {
        let instance = """
            apiVersion: converge/v1
            kind: Instance
            metadata: {name: jobs, project: shop, environment: dev}
            spec:
              bundle: queue
              params: {visibilityTimeout: 50000, fifo: "yes", retention: 5}

            """
        #expect(
            errors([("provisioner.yaml", Self.provisioner), ("bundle.yaml", Self.bundle), ("instance.yaml", instance)])
                == [
                    "instance.yaml:6:31: spec.params.visibilityTimeout: must be at most 43200, got 50000",
                    #"instance.yaml:6:44: spec.params.fifo: expected boolean, got string "yes""#,
                    #"instance.yaml:6:51: spec.params.retention: unknown property "retention""#,
                ])
        let table = """
            apiVersion: converge/v1
            kind: Instance
            metadata: {name: users, project: shop, environment: dev}
            spec:
              bundle: table

            """
        let tableBundle = Self.bundle.replacingOccurrences(of: "aws-sqs-queue", with: "aws-dynamodb-table")
            .replacingOccurrences(of: "name: queue", with: "name: table")
        #expect(
            errors([("provisioner.yaml", Self.provisioner), ("bundle.yaml", tableBundle), ("instance.yaml", table)])
                == [#"instance.yaml:5:3: spec.params.partitionKey: missing required property "partitionKey""#])
    }

    @Test func unknownCloudResource_isALocatedErrorWithASuggestion() {
        let bundle = Self.bundle.replacingOccurrences(of: "aws-sqs-queue", with: "aws-sqs-queu")
        #expect(
            errors([("provisioner.yaml", Self.provisioner), ("bundle.yaml", bundle), ("instance.yaml", Self.instance)])
                == [
                    #"bundle.yaml:6:21: spec.cloud.resource: expected one of "aws-dynamodb-table", "aws-s3-bucket", "aws-sqs-queue", got "aws-sqs-queu"; did you mean "aws-sqs-queue"?"#
                ])
    }

    @Test func cloudBundle_withItsOwnParamsSchema_isRefused() {
        let bundle = Self.bundle + "  paramsSchema: {type: object}\n"
        #expect(
            errors([("provisioner.yaml", Self.provisioner), ("bundle.yaml", bundle)]) == [
                "bundle.yaml:8:3: spec.paramsSchema: a cloud bundle's params schema is its driver's; see converge schema aws-sqs-queue"
            ])
    }

    @Test func cloudBundle_withANonCloudProvisioner_isRefused() {
        let bundle = Self.bundle.replacingOccurrences(of: "provisioner: aws", with: "provisioner: hook")
        #expect(
            errors([("provisioner.yaml", Self.provisioner), ("bundle.yaml", bundle)]) == [
                "bundle.yaml:5:16: spec.provisioner: provisioner hook is not a cloud provisioner (it has webhook); a bundle with spec.cloud needs one with spec.cloud"
            ])
    }

    @Test func bundleWithoutCloud_withACloudProvisioner_isRefused() {
        let bundle = """
            apiVersion: converge/v1
            kind: Bundle
            metadata: {name: queue}
            spec:
              provisioner: aws
              paramsSchema: {type: object}

            """
        #expect(
            errors([("provisioner.yaml", Self.provisioner), ("bundle.yaml", bundle)]) == [
                "bundle.yaml:5:16: spec.provisioner: provisioner aws is a cloud provisioner; a bundle it applies needs spec.cloud.resource (one of aws-dynamodb-table, aws-s3-bucket, aws-sqs-queue)"
            ])
    }

    @Test func provisioner_needsExactlyOneOfWebhookExecAndCloud() {
        let both = Self.provisioner + "  exec: {command: [tofu, apply]}\n"
        let expected = [#"provisioner.yaml:5:3: spec: exactly one of "webhook", "exec" and "cloud" must be set"#]
        #expect(errors([("provisioner.yaml", both)]) == expected)
        let neither = """
            apiVersion: converge/v1
            kind: Provisioner
            metadata: {name: aws}
            spec:
              description: nothing to run

            """
        #expect(errors([("provisioner.yaml", neither)]) == expected)
    }

    @Test func badCloudFields_areLocatedErrors() {
        let provisioner = """
            apiVersion: converge/v1
            kind: Provisioner
            metadata: {name: aws}
            spec:
              cloud:
                provider: aws
                region: Europe
                endpoint: ftp://127.0.0.1
                credentials: {accessKeyId: "MY-KEY", token: X}
                timeoutSeconds: 0

            """
        #expect(
            errors([("provisioner.yaml", provisioner)]) == [
                #"provisioner.yaml:7:13: spec.cloud.region: expected a region such as eu-west-1, got "Europe""#,
                #"provisioner.yaml:8:15: spec.cloud.endpoint: expected an http or https url, got "ftp://127.0.0.1""#,
                #"provisioner.yaml:9:32: spec.cloud.credentials.accessKeyId: expected a variable name, got "MY-KEY""#,
                #"provisioner.yaml:9:42: spec.cloud.credentials.token: unknown field "token""#,
                "provisioner.yaml:10:21: spec.cloud.timeoutSeconds: must be at least 1, got 0",
            ])
        let gcp = Self.provisioner.replacingOccurrences(of: "provider: aws", with: "provider: awz")
        #expect(
            errors([("provisioner.yaml", gcp)]) == [
                #"provisioner.yaml:6:15: spec.cloud.provider: expected one of "aws", got "awz"; did you mean "aws"?"#
            ])
        let noRegion = Self.provisioner.replacingOccurrences(of: "    region: eu-west-1\n", with: "")
        #expect(
            errors([("provisioner.yaml", noRegion)]) == [
                #"provisioner.yaml:6:5: spec.cloud.region: missing required field "region""#
            ])
    }

    /// A load that fails changes nothing: the loader keeps the last good state, and going back to it is no change.
    @Test func failedLoad_changesNothing() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cloud-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func write(_ files: [(String, String)]) throws {
            for (path, text) in files {
                try text.write(to: directory.appendingPathComponent(path), atomically: true, encoding: .utf8)
            }
        }
        try write(try Paths.files("base").map { ($0.path, $0.text) })
        try write([("provisioner.yaml", Self.provisioner), ("bundle.yaml", Self.bundle)])
        let loader = ManifestLoader()
        let good = try loader.reload(directory: directory)
        #expect(good.state.bundles["queue"]?.cloudResource == "aws-sqs-queue")
        for broken in [
            Self.bundle.replacingOccurrences(of: "provisioner: aws", with: "provisioner: hook"),
            Self.bundle + "  paramsSchema: {type: object}\n",
            Self.bundle.replacingOccurrences(of: "aws-sqs-queue", with: "aws-sqs"),
        ] {
            try write([("bundle.yaml", broken)])
            #expect(throws: ManifestErrors.self) { try loader.reload(directory: directory) }
        }
        try write([("bundle.yaml", Self.bundle)])
        let again = try loader.reload(directory: directory)
        #expect(again.changed == false)
        #expect(again.state == good.state)
    }

    @Test func jsonSchemas_describeCloud() {
        let provisioner = KindShapes.jsonSchema(.provisioner)["properties"]?["spec"]?["properties"]?["cloud"]
        #expect(provisioner?["required"] == ["provider", "region"])
        #expect(provisioner?["properties"]?["provider"]?["enum"] == ["aws"])
        #expect(provisioner?["properties"]?["region"]?["pattern"] == "^(?:[a-z]{2}(-[a-z]+)+-[0-9])$")
        let bundle = KindShapes.jsonSchema(.bundle)["properties"]?["spec"]?["properties"]?["cloud"]
        #expect(bundle?["required"] == ["resource"])
        #expect(
            bundle?["properties"]?["resource"]?["enum"] == ["aws-dynamodb-table", "aws-s3-bucket", "aws-sqs-queue"])
    }
}
