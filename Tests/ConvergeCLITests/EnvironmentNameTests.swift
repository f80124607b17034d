import ConvergeCore
import ConvergeTestSupport
import Foundation
import Testing

/// `--environment` on `get`: an id, or a name one project only has; an unknown one is not_found.
@Suite struct EnvironmentNameTests {
    /// Projects p and q both have an environment dev; only p has staging (with instance b).
    static func files() -> [String: String] {
        var files = repository(url: "http://127.0.0.1:9/unused", instances: ["a": [:]], policy: "review")
        files["more.yaml"] = """
            apiVersion: converge/v1
            kind: Project
            metadata: {name: q}
            ---
            apiVersion: converge/v1
            kind: Environment
            metadata: {name: dev, project: q}
            spec: {policy: review}
            ---
            apiVersion: converge/v1
            kind: Environment
            metadata: {name: staging, project: p}
            spec: {policy: review}
            ---
            apiVersion: converge/v1
            kind: Instance
            metadata: {name: b, project: p, environment: staging}
            spec: {bundle: thing, version: 1.0.0}
            """
        return files
    }

    /// Regression (issue 13): `get instances --environment production` printed "no instances" and exited 0.
    @Test func environmentFilter_takesIdsAndUniqueNames_andRefusesUnknownAndAmbiguousOnes() async throws {
        let daemon = try DaemonProcess(files: Self.files())
        try await daemon.start()
        let viewer = try await daemon.token("vera", role: "viewer")
        try await eventually("the manifests are loaded") { await daemon.isReady() }

        let byID = try await daemon.cli(viewer, "get", "instances", "--environment", "p-staging", "-o", "name")
        #expect(byID.status == 0, "\(byID.stderr)")
        #expect(byID.stdout == "instance/p-staging-b\n")
        let byName = try await daemon.cli(viewer, "get", "instances", "--environment", "staging", "-o", "name")
        #expect(byName.stdout == "instance/p-staging-b\n", "\(byName.stderr)")

        for kind in ["instances", "deployments"] {
            let unknown = try await daemon.cli(viewer, "get", kind, "--environment", "production")
            #expect(unknown.status == 1)
            #expect(unknown.stdout.isEmpty)
            #expect(unknown.stderr == "converge: environment production not found (not_found)\n")
            let ambiguous = try await daemon.cli(viewer, "get", kind, "--environment", "dev")
            #expect(ambiguous.status == 1)
            #expect(
                ambiguous.stderr
                    == "converge: environment dev is ambiguous: p-dev, q-dev; give its id (invalid_argument)\n")
        }
        let deployments = try await daemon.cli(viewer, "get", "deployments", "--environment", "staging", "-o", "json")
        #expect(deployments.status == 0, "\(deployments.stderr)")
    }
}
