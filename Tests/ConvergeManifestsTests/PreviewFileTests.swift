import ConvergeCore
import Foundation
import Testing

@testable import ConvergeManifests

@Suite struct PreviewFileTests {
    @Test func expand_replacesBracedAndBareVariablesAndEmptiesUndefinedOnes() {
        let environment = ["PR": "42", "SHA": "abc123"]
        #expect(PreviewFile.expand("pr-${PR}/$SHA/${MISSING}/$MISSING.", environment: environment) == "pr-42/abc123//.")
        #expect(
            PreviewFile.expand("cost: $5 and $ alone and ${unclosed", environment: environment)
                == "cost: $5 and $ alone and ${unclosed")
    }

    @Test func examplePreview_readsTheKeysOtherPlatformsWrite() throws {
        let url = Paths.repository.appendingPathComponent("examples/preview.yaml")
        let preview = try PreviewFile.load(
            try String(contentsOf: url, encoding: .utf8), file: "preview.yaml",
            environment: ["PR_NUMBER": "123", "GIT_SHA": "f00d"])
        #expect(preview.project == "ecomm")
        #expect(preview.baseEnvironment == "staging")
        #expect(preview.copyEnvironmentDefaults)
        #expect(!preview.copySecrets)
        #expect(preview.ttlSeconds == 72 * 3600)
        #expect(preview.attributes == ["pullRequest": "123", "commit": "f00d"])
        #expect(
            preview.environmentDefaults == [Preview.Default(resourceType: "aws-vpc", resourceId: "ecomm-sharedvpc")])
        #expect(preview.instances["app"]?.params?["image"] == "registry.example.com/shop:f00d")
        #expect(preview.instances["app"]?.version == "2.3.0")
        #expect(preview.instances["db"]?.params == ["storage_gb": 20])
    }

    @Test func kindPreviewDocument_isAcceptedToo() throws {
        let preview = try PreviewFile.load(
            """
            apiVersion: converge/v1
            kind: Preview
            metadata: {name: pr7, project: ecomm}
            spec: {baseEnvironment: staging, ttl: 30m}
            """, file: "p.yaml", environment: [:])
        #expect(preview.name == "pr7")
        #expect(preview.ttlSeconds == 1800)
        #expect(preview.copyEnvironmentDefaults)
    }

    @Test func badPreview_reportsEveryLocatedError() {
        do {
            _ = try PreviewFile.load("project: ecomm\nttl: soon\ninstance: {}\n", file: "p.yaml", environment: [:])
            Issue.record("a bad preview loaded")
        } catch {
            #expect(
                error.diagnostics.map(\.description) == [
                    #"p.yaml:1:1: baseEnvironment: missing required field "baseEnvironment""#,
                    #"p.yaml:2:6: ttl: expected a duration such as 30m, 72h or 7d, got "soon""#,
                    #"p.yaml:3:1: instance: unknown field "instance"; did you mean "instances"?"#,
                ])
        }
    }
}
