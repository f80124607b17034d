import ConvergeClient
import ConvergeCore
import Foundation
import Testing

/// Where the CLI finds the daemon and its token: flags, then the environment, then the config file's contexts.
@Suite struct ClientConfigTests {
    static let config = ClientConfig(
        currentContext: "prod",
        contexts: [
            "prod": .init(server: "https://prod.example", token: "prod-token"),
            "dev": .init(server: "http://127.0.0.1:8787", token: "dev-token"),
        ])

    /// (--server, --token, --context, environment) → the server and the token used.
    @Test(
        arguments: [
            (nil, nil, nil, [:], "https://prod.example", "prod-token"),
            (nil, nil, "dev", [:], "http://127.0.0.1:8787", "dev-token"),
            (
                nil, nil, nil, ["CONVERGE_SERVER": "http://env", "CONVERGE_TOKEN": "env-token"], "http://env",
                "env-token"
            ),
            (
                nil, nil, "dev", ["CONVERGE_SERVER": "http://env", "CONVERGE_TOKEN": "env-token"],
                "http://127.0.0.1:8787", "dev-token"
            ),
            ("http://flag/", "flag-token", "dev", ["CONVERGE_TOKEN": "env-token"], "http://flag", "flag-token"),
            (nil, nil, nil, ["CONVERGE_SERVER": "", "CONVERGE_TOKEN": ""], "https://prod.example", "prod-token"),
        ] as [(String?, String?, String?, [String: String], String, String)])
    func resolve_takesFlagsThenTheEnvironmentThenTheCurrentContext(
        server: String?, token: String?, context: String?, environment: [String: String], expectedServer: String,
        expectedToken: String
    ) throws {
        let settings = try ClientSettings.resolve(
            server: server, token: token, context: context, config: Self.config, path: "c.json",
            environment: environment)
        #expect(settings.server.absoluteString == expectedServer)
        #expect(settings.token == expectedToken)
    }

    @Test func noConfig_meansTheLocalDaemonWithoutAToken() throws {
        let settings = try ClientSettings.resolve(
            server: nil, token: nil, context: nil, config: ClientConfig(), path: "c.json", environment: [:])
        #expect(settings == ClientSettings(server: URL(string: "http://127.0.0.1:8787")!, token: nil))
    }

    @Test func unknownContext_isNotFound_namingTheClosest() {
        #expect(
            throws: ConvergeError(
                .notFound, #"no context "prdo" in c.json; did you mean "prod"? (contexts: dev, prod)"#)
        ) {
            try ClientSettings.resolve(
                server: nil, token: nil, context: "prdo", config: Self.config, path: "c.json", environment: [:])
        }
    }

    @Test func save_writesMode0600_andLoadReadsItBack() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("converge-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("converge/config.json").path
        #expect(try ClientConfig.load(path: path) == ClientConfig())
        try Self.config.save(path: path)
        #expect(try ClientConfig.load(path: path) == Self.config)
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)
        #expect(Self.config.permissionWarning(path: path) == nil)
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: path)
        #expect(Self.config.permissionWarning(path: path)?.hasSuffix("run chmod 600 \(path)") == true)
        #expect(
            ClientConfig(contexts: ["x": .init(server: "http://x", token: nil)]).permissionWarning(path: path) == nil)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: (path as NSString).deletingLastPathComponent) == [
                "config.json"
            ])
    }

    /// The flat file of earlier versions (`{"server": …, "token": …}`) is refused saying what the file holds now.
    @Test func flatConfig_isRefusedSayingTheFormat() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("converge-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("config.json").path
        try #"{"server": "http://x", "token": "t"}"#.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ConvergeError.self) { try ClientConfig.load(path: path) }
    }
}
