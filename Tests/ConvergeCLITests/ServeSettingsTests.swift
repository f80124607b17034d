import ConvergeCore
import Foundation
import Testing

@testable import converge

@Suite struct ServeSettingsTests {
    @Test func variableNames_areUpperSnakeCase() {
        #expect(ServeSettings.variable(for: "maxConcurrentDeployments") == "CONVERGE_MAX_CONCURRENT_DEPLOYMENTS")
        #expect(ServeSettings.variable(for: "db") == "CONVERGE_DB")
        #expect(ServeSettings.variable(for: "callbackURL") == "CONVERGE_CALLBACK_URL")
    }

    @Test func flagsWinOverVariables_whichWinOverTheConfigFile() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("converge-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try """
        manifests: from-file
        listen: 0.0.0.0:9000
        maxConcurrentDeployments: 8
        allowedProvisionerURLs: ["https://hooks.internal/", "http://127.0.0.1:"]
        """.write(to: file, atomically: true, encoding: .utf8)
        let command = try Serve.parse(["--config", file.path, "--listen", "127.0.0.1:7000"])
        let settings = try command.settings(environment: [
            "CONVERGE_MANIFESTS": "from-env", "CONVERGE_LISTEN": "127.0.0.1:8000",
        ])
        #expect(settings.manifests == "from-env")
        #expect(settings.listenHost == "127.0.0.1")
        #expect(settings.listenPort == 7000)
        #expect(settings.maxConcurrentDeployments == 8)
        #expect(settings.allowedProvisionerURLs == ["https://hooks.internal/", "http://127.0.0.1:"])
        #expect(try settings.sqlitePath == "converge.sqlite")
    }

    @Test func badSettings_sayWhereTheyCameFrom() throws {
        var settings = ServeSettings()
        #expect(
            throws: ConvergeError(
                .invalidArgument, #"environment: leaseSeconds must be a positive integer, got "soon""#)
        ) {
            try settings.apply(["leaseSeconds": "soon"], from: "environment")
        }
        #expect(throws: ConvergeError(.invalidArgument, #"c.yaml: listen must be HOST:PORT, got "nowhere""#)) {
            try settings.apply(["listen": "nowhere"], from: "c.yaml")
        }
        #expect(
            throws: ConvergeError(
                .invalidArgument, #"c.yaml: unknown setting "maxConcurrent"; did you mean "maxConcurrentDeployments"?"#)
        ) {
            try settings.apply(["maxConcurrent": "3"], from: "c.yaml")
        }
        settings.database = "postgres://db/converge"
        #expect(throws: ConvergeError.self) { try settings.sqlitePath }
    }

    @Test func serve_withABadSetting_isAUsageError() throws {
        let result = try ConvergeBinary.run("serve", "--db", "mysql://x", "--manifests", "examples/gitops")
        #expect(result.status == 2)
        #expect(result.stderr.contains("unsupported store \"mysql://x\""))
    }
}
