import ConvergeCore
import ConvergeTestSupport
import Foundation
import Testing

/// `converge version` shows the client's version and the daemon's (`GET /version`); a daemon that does not answer is
/// said so, after the client's version.
@Suite struct VersionTests {
    @Test func version_showsTheClientsAndTheServers() async throws {
        let daemon = try DaemonProcess(files: [
            "project.yaml": "apiVersion: converge/v1\nkind: Project\nmetadata: {name: ecomm}\n"
        ])
        try await daemon.start()
        let table = try await daemon.cli(nil, "version")
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout == "client: \(convergeVersion)\nserver: \(convergeVersion)\n")
        let json = try Value(json: try await daemon.cli(nil, "version", "-o", "json").stdout)
        #expect(json == ["client": .string(convergeVersion), "server": .string(convergeVersion)])
        #expect(try await daemon.get("/version").body["version"] as? String == convergeVersion)
        try await daemon.stop()
    }

    @Test func version_ofAnUnreachableServer_printsTheClientsAndSaysSo() async throws {
        let server = "http://127.0.0.1:\(try freeLoopbackPort())"
        let result = try await ConvergeBinary.run(["version"], environment: ["CONVERGE_SERVER": server])
        #expect(result.status == 1)
        #expect(result.stdout == "client: \(convergeVersion)\n")
        #expect(
            result.stderr.hasPrefix("converge: cannot get the server's version from \(server): "), "\(result.stderr)")
        #expect(result.stderr.contains("connection refused"), "\(result.stderr)")

        let client = try await ConvergeBinary.run(["version", "--client"], environment: ["CONVERGE_SERVER": server])
        #expect(client.status == 0)
        #expect(client.stdout == "client: \(convergeVersion)\n")
        #expect(client.stderr.isEmpty)
    }
}
