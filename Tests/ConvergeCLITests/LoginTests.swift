import ConvergeCore
import Foundation
import Testing

/// `converge login` checks a token, then saves it as a context of the config file (mode 0600); `config use-context`
/// and `--context` pick one; a config file holding a token that others may read is warned about by every command.
@Suite struct LoginTests {
    /// The config file of a daemon's `XDG_CONFIG_HOME`.
    static func configFile(_ daemon: DaemonProcess) -> String {
        daemon.directory.appendingPathComponent("converge/config.json").path
    }

    /// `converge ARGUMENTS` with nothing but the config file to say where the daemon is and who calls it.
    static func run(_ daemon: DaemonProcess, _ arguments: [String], input: String? = nil) async throws
        -> ConvergeBinary.Result
    {
        try await ConvergeBinary.run(
            arguments,
            environment: ["XDG_CONFIG_HOME": daemon.directory.path, "CONVERGE_SERVER": "", "CONVERGE_TOKEN": ""],
            input: input)
    }

    @Test func login_savesAContext0600_andContextsSwitchWhoCalls() async throws {
        let daemon = try DaemonProcess(files: [
            "project.yaml": "apiVersion: converge/v1\nkind: Project\nmetadata: {name: ecomm}\n"
        ])
        try await daemon.start()
        let vera = try await daemon.token("vera", role: "viewer")
        let dora = try await daemon.token("dora", role: "deployer")
        let server = "http://127.0.0.1:\(daemon.port)"
        let path = Self.configFile(daemon)

        // A token the daemon refuses is not saved: no file at all.
        let refused = try await Self.run(daemon, ["login", "--server", server, "--token", "nope", "--context", "prod"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("(unauthenticated)"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: path))

        // The token from standard input, so that it is not on the command line.
        let login = try await Self.run(
            daemon, ["login", "--server", server, "--token", "-", "--context", "prod"], input: vera + "\n")
        #expect(login.status == 0, "\(login.stderr)")
        #expect(login.stdout == "logged in to \(server) as vera (viewer); context prod is current in \(path)\n")
        #expect(login.stderr.isEmpty, "\(login.stderr)")
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect(attributes[.posixPermissions] as? Int == 0o600)
        let saved = try Value(json: try String(contentsOfFile: path, encoding: .utf8))
        #expect(saved["current-context"] == "prod")
        #expect(saved["contexts"]?["prod"] == ["server": .string(server), "token": .string(vera)])
        #expect(try await Self.run(daemon, ["whoami"]).stdout.contains("name: vera"))

        // A second context, from a token file, becomes current.
        let tokenFile = daemon.directory.appendingPathComponent("dora.token").path
        try (dora + "\n").write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let second = try await Self.run(
            daemon, ["login", "--server", server, "--token-file", tokenFile, "--context", "dev"])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(try await Self.run(daemon, ["whoami"]).stdout.contains("name: dora"))
        let contexts = try await Self.run(daemon, ["config", "get-contexts"])
        #expect(
            contexts.stdout == """
                CURRENT  NAME  SERVER
                *        dev   \(server)
                -        prod  \(server)

                """)
        #expect(!contexts.stdout.contains(dora) && !contexts.stdout.contains(vera), "tokens are never shown")

        // --context picks one for one command; use-context switches.
        #expect(try await Self.run(daemon, ["whoami", "--context", "prod"]).stdout.contains("name: vera"))
        #expect(try await Self.run(daemon, ["config", "use-context", "prod"]).status == 0)
        #expect(try await Self.run(daemon, ["config", "current-context"]).stdout == "prod\n")
        #expect(try await Self.run(daemon, ["whoami"]).stdout.contains("name: vera"))
        let unknown = try await Self.run(daemon, ["config", "use-context", "prdo"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains(#"no context "prdo" in \#(path); did you mean "prod"?"#), "\(unknown.stderr)")
        let unknownFlag = try await Self.run(daemon, ["whoami", "--context", "stage"])
        #expect(unknownFlag.status == 1)
        #expect(unknownFlag.stderr.contains(#"no context "stage""#), "\(unknownFlag.stderr)")

        // A refused token leaves the file as it was.
        let before = try String(contentsOfFile: path, encoding: .utf8)
        let badAgain = try await Self.run(
            daemon, ["login", "--server", server, "--token", "nope", "--context", "prod"])
        #expect(badAgain.status == 1)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == before)
        try await daemon.stop()
    }

    @Test func configFileOthersMayRead_isWarnedAboutByEveryCommand() async throws {
        let daemon = try DaemonProcess(files: [
            "project.yaml": "apiVersion: converge/v1\nkind: Project\nmetadata: {name: ecomm}\n"
        ])
        try await daemon.start()
        let vera = try await daemon.token("vera", role: "viewer")
        let path = Self.configFile(daemon)
        let login = try await Self.run(
            daemon, ["login", "--server", "http://127.0.0.1:\(daemon.port)", "--token", vera])
        #expect(login.status == 0, "\(login.stderr)")
        #expect(try await Self.run(daemon, ["whoami"]).stderr.isEmpty)

        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        let warning =
            "converge: warning: \(path) holds a token and is open to group or others (mode 644); "
            + "run chmod 600 \(path)\n"
        let whoami = try await Self.run(daemon, ["whoami"])
        #expect(whoami.status == 0)
        #expect(whoami.stdout.contains("name: vera"))
        #expect(whoami.stderr == warning)
        #expect(try await Self.run(daemon, ["get", "projects"]).stderr == warning)
        #expect(try await Self.run(daemon, ["config", "get-contexts"]).stderr == warning)
        try await daemon.stop()
    }
}
