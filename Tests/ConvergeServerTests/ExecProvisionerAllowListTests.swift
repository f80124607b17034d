import ConvergeCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import ConvergeServer

/// Regression: an admin token ran shell commands on the daemon's host by applying an exec provisioner through the API.
@Suite struct ExecProvisionerAllowListTests {
    static func provisioner(_ command: [String]) -> ByteBuffer {
        let words = command.map { "\"\($0)\"" }.joined(separator: ", ")
        return body(
            #"{"apiVersion": "converge/v1", "kind": "Provisioner", "metadata": {"name": "x"}, "#
                + #""spec": {"exec": {"command": [\#(words)]}}}"#)
    }

    @Test func anExecCommandNotOnTheAllowList_isPermissionDeniedNamingTheSetting_dryRunToo() async throws {
        let fixture = try await ServerFixture(loaded: true)
        let admin = try fixture.bearer(.admin)
        try await fixture.withClient { client in
            for uri in ["/v1/resources/provisioners/x", "/v1/resources/provisioners/x?dryRun=true"] {
                let response = try await client.execute(
                    uri: uri, method: .put, headers: admin,
                    body: Self.provisioner(["sh", "-c", "touch /tmp/pwned"]))
                let object = try refusal(response, .forbidden, code: "permission_denied")
                #expect((object["message"] as? String)?.contains("--allow-exec-command") == true)
            }
        }
        #expect(fixture.engine.manifests.current?.state.provisioners["x"] == nil)
    }

    @Test func anAllowedCommand_isApplied_matchedOnArgv0Exactly() async throws {
        let settings = ConvergeServer.Settings(
            allowedExecCommands: ["/usr/bin/tofu"], requestTimeout: .seconds(30), maxConnections: 512)
        let fixture = try await ServerFixture(loaded: true, settings: settings)
        let admin = try fixture.bearer(.admin)
        try await fixture.withClient { client in
            let other = try await client.execute(
                uri: "/v1/resources/provisioners/x", method: .put, headers: admin,
                body: Self.provisioner(["tofu", "apply"]))
            #expect(other.status == .forbidden)
            let allowed = try await client.execute(
                uri: "/v1/resources/provisioners/x", method: .put, headers: admin,
                body: Self.provisioner(["/usr/bin/tofu", "apply"]))
            #expect(allowed.status == .created, "\(String(buffer: allowed.body))")
        }
    }
}
