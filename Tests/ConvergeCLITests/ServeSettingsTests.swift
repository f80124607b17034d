import ConvergeCore
import Foundation
import Testing

@testable import converge

/// A temporary directory with a `manifests` directory in it, removed when the value goes.
final class SettingsDirectory {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("converge-settings-\(UUID().uuidString)")
    var manifests: String { url.appendingPathComponent("manifests").path }

    init() throws {
        try FileManager.default.createDirectory(
            at: url.appendingPathComponent("manifests"), withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }

    /// Writes `text` to `name` in the directory and returns its path.
    func write(_ name: String, _ text: String) throws -> String {
        let file = url.appendingPathComponent(name)
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }
}

/// The error message `body` throws, or nil.
func settingsError(_ body: () throws -> some Any) -> String? {
    do {
        _ = try body()
        return nil
    } catch let error as ConvergeError {
        return error.message
    } catch {
        return "\(error)"
    }
}

/// Runs `converge serve` with `arguments` and extra `environment`, as a user would, and returns its status and
/// standard error.
func runServe(_ arguments: [String], environment: [String: String] = [:]) async throws -> (
    status: Int32, stderr: String
) {
    // On a thread of its own, like ConvergeBinary.run: a test waiting on a process holds no shared thread.
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try runServeBlocking(arguments, environment: environment) })
        }
    }
}

private func runServeBlocking(_ arguments: [String], environment: [String: String]) throws -> (
    status: Int32, stderr: String
) {
    let process = Process()
    process.executableURL = ConvergeBinary.executable
    process.arguments = ["serve"] + arguments
    process.currentDirectoryURL = ConvergeBinary.repository
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let err = Pipe()
    process.standardError = err
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stderr, as: UTF8.self))
}

@Suite struct ServeSettingsTests {
    @Test func variableAndFlagNames_areSpelledFromTheSettingsName() {
        #expect(ServeSettings.variable(for: "maxConcurrentDeployments") == "CONVERGE_MAX_CONCURRENT_DEPLOYMENTS")
        #expect(ServeSettings.variable(for: "db") == "CONVERGE_DB")
        #expect(ServeSettings.variable(for: "callbackURL") == "CONVERGE_CALLBACK_URL")
        #expect(ServeSettings.variable(for: "allowedProvisionerURLs") == "CONVERGE_ALLOWED_PROVISIONER_URLS")
        #expect(ServeSettings.flag(for: "allowedProvisionerURLs") == "--allowed-provisioner-urls")
        #expect(ServeSettings.flag(for: "avatarURLTemplate") == "--avatar-url-template")
        #expect(ServeSettings.variable(for: "avatarURLTemplate") == "CONVERGE_AVATAR_URL_TEMPLATE")
    }

    /// Regression: the README's `--allowed-provisioner-urls` was `--allowed-provisioner-ur-ls`.
    @Test(arguments: ServeSettings.names)
    func everySetting_isAFlagSpelledAsErrorsSpellIt(name: String) throws {
        let directory = try SettingsDirectory()
        let value: String =
            switch name {
            case "manifests": directory.manifests
            case "db": "sqlite:x.sqlite"
            case "listen": "127.0.0.1:9000"
            case "callbackURL", "allowedProvisionerURLs": "https://example.com/"
            case "avatarURLTemplate": "https://example.com/{email}"
            case "gitWebhookSecretEnv": "HOME"
            case "logLevel": "debug"
            case "tokensFile": "t.tokens"
            case "secretsKeyFile": "k.key"
            case "dbPasswordFile": "db.password"
            case "allowExecCommand": "/usr/bin/tofu"
            case "tlsCertFile", "tlsKeyFile": "tls.pem"
            default: "\(ServeSettings.integers[name]!.range.upperBound)"
            }
        let manifests = name == "manifests" ? [] : ["--manifests", directory.manifests]
        // The certificate and its key go together.
        let pair = ["tlsCertFile": ["--tls-key-file", "tls.pem"], "tlsKeyFile": ["--tls-cert-file", "tls.pem"]]
        let command = try Serve.parse([ServeSettings.flag(for: name), value] + manifests + pair[name, default: []])
        let settings = try command.settings(environment: ["HOME": "/root"])
        #expect(settings.origins[name] == .commandLine)
    }

    @Test func flagsWinOverVariables_whichWinOverTheConfigFile() throws {
        let directory = try SettingsDirectory()
        let file = try directory.write(
            "c.yaml",
            """
            manifests: \(directory.url.path)
            listen: 0.0.0.0:9000
            maxConcurrentDeployments: 8
            reconcileRate: 50
            allowedProvisionerURLs: ["https://hooks.internal/", "http://127.0.0.1:"]
            """)
        let command = try Serve.parse(["--config", file, "--listen", "127.0.0.1:7000", "--reconcile-rate", "70"])
        let settings = try command.settings(environment: [
            "CONVERGE_MANIFESTS": directory.manifests, "CONVERGE_LISTEN": "127.0.0.1:8000",
            "CONVERGE_RECONCILE_RATE": "60",
        ])
        #expect(settings.manifests == directory.manifests)
        #expect(settings.listenHost == "127.0.0.1")
        #expect(settings.listenPort == 7000)
        #expect(settings.maxConcurrentDeployments == 8)
        #expect(settings.reconcileRate == 70)
        #expect(settings.allowedProvisionerURLs == ["https://hooks.internal/", "http://127.0.0.1:"])
        #expect(settings.origins["manifests"] == .environment)
        #expect(settings.origins["maxConcurrentDeployments"] == .file(file))
        guard case .sqlite(path: "converge.sqlite") = settings.storeLocation else {
            Issue.record("expected the default SQLite file, got \(settings.storeLocation)")
            return
        }
    }

    @Test func defaults_areValidSettings() throws {
        var settings = ServeSettings()
        let defaults = settings
        try settings.apply(
            [
                "maxConcurrentDeployments": "4", "workers": "2", "reconcileRate": "1000", "leaseSeconds": "30",
                "pollSeconds": "10", "resyncSeconds": "300", "shutdownGraceSeconds": "20",
                "allowedProvisionerURLs": defaults.allowedProvisionerURLs.joined(separator: ","),
                "listen": "127.0.0.1:8787", "db": defaults.database, "logLevel": defaults.logLevel,
            ], from: .commandLine)
        settings.origins = [:]
        #expect(settings == defaults)
    }

    @Test(arguments: ServeSettings.integers.keys.sorted())
    func numericSetting_acceptsItsRangeAndNothingElse(name: String) throws {
        let setting = try #require(ServeSettings.integers[name])
        let bounds = setting.range
        for text in ["\(bounds.lowerBound)", "\(bounds.upperBound)", "+\(bounds.upperBound)"] {
            var settings = ServeSettings()
            try settings.apply([name: text], from: .commandLine)
            #expect(settings[keyPath: setting.field] == Int(text))
        }
        let refused = [
            "\(bounds.lowerBound - 1)", "\(bounds.upperBound + 1)", "1e16", "-1", "3.5", "10abc", "", " 5",
            "99999999999999999999",
        ]
        for text in refused {
            var settings = ServeSettings()
            #expect(
                settingsError { try settings.apply([name: text], from: .commandLine) }
                    == "command line: \(ServeSettings.flag(for: name)) must be an integer from \(bounds.lowerBound) to \(bounds.upperBound), got \"\(text)\""
            )
        }
    }

    @Test func badValues_nameTheLayerAndItsSpelling() throws {
        let directory = try SettingsDirectory()
        let file = try directory.write("c.yaml", "leaseSeconds: 1e16\n")
        let fromFile = try Serve.parse(["--config", file, "--manifests", directory.manifests])
        #expect(
            settingsError { try fromFile.settings(environment: [:]) }?.hasPrefix(
                "\(file): leaseSeconds must be an integer from 2 to 3600, got ") == true)
        let plain = try Serve.parse(["--manifests", directory.manifests])
        #expect(
            settingsError { try plain.settings(environment: ["CONVERGE_POLL_SECONDS": "1e16"]) }
                == #"environment: CONVERGE_POLL_SECONDS must be an integer from 1 to 86400, got "1e16""#)
        let flag = try Serve.parse(["--manifests", directory.manifests, "--max-concurrent-deployments", "1001"])
        #expect(
            settingsError { try flag.settings(environment: [:]) }
                == #"command line: --max-concurrent-deployments must be an integer from 1 to 1000, got "1001""#)
    }

    @Test func configFile_refusesListsAndObjectsWhereOneValueGoes() throws {
        let directory = try SettingsDirectory()
        let list = try directory.write("list.yaml", "workers: [1, 2]\n")
        #expect(
            settingsError { try ServeSettings.values(ofConfigFile: list) }
                == "\(list):1:1: workers: expected a single value")
        let prefixes = try directory.write("prefixes.yaml", "allowedProvisionerURLs: [8080]\n")
        var settings = ServeSettings()
        #expect(
            settingsError {
                try settings.apply(try ServeSettings.values(ofConfigFile: prefixes), from: .file(prefixes))
            }
                == #"\#(prefixes): allowedProvisionerURLs must be a comma-separated list of http or https URL prefixes, got "8080""#
        )
    }

    @Test func otherBadSettings_sayWhatWasExpected() throws {
        let cases: [(String, String, String)] = [
            ("listen", "nowhere", #"--listen must be HOST:PORT with a port from 1 to 65535, got "nowhere""#),
            ("listen", ":8080", #"--listen must be HOST:PORT with a host, got ":8080""#),
            (
                "listen", "127.0.0.1:70000",
                #"--listen must be HOST:PORT with a port from 1 to 65535, got "127.0.0.1:70000""#
            ),
            ("db", "sqlite:", #"--db must be sqlite:PATH or postgres://USER@HOST[:PORT]/DATABASE, got "sqlite:""#),
            ("db", "mysql://x", #"--db must be sqlite:PATH or postgres://USER@HOST[:PORT]/DATABASE, got "mysql://x""#),
            (
                "callbackURL", "ftp://example.com",
                #"--callback-url must be an http or https URL without query or fragment, got "ftp://example.com""#
            ),
            (
                "callbackURL", "http://",
                #"--callback-url must be an http or https URL without query or fragment, got "http://""#
            ),
            (
                "callbackURL", "http://example.com/?a=1",
                #"--callback-url must be an http or https URL without query or fragment, got "http://example.com/?a=1""#
            ),
            (
                "allowedProvisionerURLs", "http://127.0.0.1:,file:///etc",
                #"--allowed-provisioner-urls must be a comma-separated list of http or https URL prefixes, got "http://127.0.0.1:,file:///etc""#
            ),
            (
                "allowedProvisionerURLs", ",",
                #"--allowed-provisioner-urls must be a comma-separated list of http or https URL prefixes, got ",""#
            ),
            (
                "gitWebhookSecretEnv", "1SECRET",
                #"--git-webhook-secret-env must be the name of an environment variable, got "1SECRET""#
            ),
            (
                "avatarURLTemplate", "gravatar {email}",
                #"--avatar-url-template must be an http or https URL, with {email} where the author's email goes, got "gravatar {email}""#
            ),
            (
                "logLevel", "loud",
                #"--log-level must be one of trace, debug, info, notice, warning, error, critical, got "loud""#
            ),
        ]
        for (name, text, message) in cases {
            var settings = ServeSettings()
            #expect(
                settingsError { try settings.apply([name: text], from: .commandLine) } == "command line: " + message)
        }
        var settings = ServeSettings()
        #expect(
            settingsError { try settings.apply(["maxConcurrent": "3"], from: .file("c.yaml")) }
                == #"c.yaml: unknown setting "maxConcurrent"; did you mean "maxConcurrentDeployments"?"#)
    }

    @Test func goodURLs_areAccepted() throws {
        var settings = ServeSettings()
        try settings.apply(
            [
                "callbackURL": "https://converge.internal:8443/",
                "allowedProvisionerURLs": "https://hooks.internal/, http://[::1]:",
                "avatarURLTemplate": "https://avatars.example/{email}?s=64",
            ], from: .environment)
        #expect(settings.callbackURL == "https://converge.internal:8443")
        #expect(settings.allowedProvisionerURLs == ["https://hooks.internal/", "http://[::1]:"])
        #expect(
            settings.engineConfiguration(manifests: URL(fileURLWithPath: "/m")).callbackBaseURL == settings.callbackURL)
    }

    @Test func manifests_mustBeAnExistingDirectory() throws {
        let directory = try SettingsDirectory()
        let missing = directory.url.appendingPathComponent("missing").path
        #expect(
            settingsError { try Serve.parse(["--manifests", missing]).settings(environment: [:]) }
                == #"command line: --manifests must be an existing directory, got "\#(missing)""#)
        let file = try directory.write("file.yaml", "")
        #expect(
            settingsError { try Serve.parse([]).settings(environment: ["CONVERGE_MANIFESTS": file]) }
                == #"environment: CONVERGE_MANIFESTS must be an existing directory, got "\#(file)""#)
    }

    @Test func gitWebhookSecretVariable_mustBeSet() throws {
        let directory = try SettingsDirectory()
        let command = try Serve.parse([
            "--manifests", directory.manifests, "--git-webhook-secret-env", "TEST_GIT_SECRET",
        ])
        #expect(
            settingsError { try command.settings(environment: ["TEST_GIT_SECRET": ""]) }
                == #"command line: --git-webhook-secret-env must be the name of a set, non-empty variable, got "TEST_GIT_SECRET""#
        )
        #expect(try command.settings(environment: ["TEST_GIT_SECRET": "s"]).gitWebhookSecretEnv == "TEST_GIT_SECRET")
    }

    @Test func everyLimit_reachesTheEngineConfiguration() throws {
        var settings = ServeSettings()
        try settings.apply(
            [
                "workers": "3", "reconcileRate": "250", "maxConcurrentDeployments": "7", "leaseSeconds": "40",
                "pollSeconds": "15", "resyncSeconds": "600", "shutdownGraceSeconds": "9", "listen": "[::1]:9001",
            ], from: .commandLine)
        let configuration = settings.engineConfiguration(manifests: URL(fileURLWithPath: "/m"))
        #expect(configuration.workers == 3)
        #expect(configuration.reconcileRate == 250)
        #expect(configuration.maxConcurrentDeployments == 7)
        #expect(configuration.leaseDuration == 40)
        #expect(configuration.pollInterval == 15)
        #expect(configuration.resyncInterval == 600)
        #expect(configuration.shutdownGracePeriod == .seconds(9))
        #expect(configuration.callbackBaseURL == "http://[::1]:9001")
    }

    @Test func postgresPassword_isNotInTheMessage() throws {
        var settings = ServeSettings()
        #expect(
            settingsError {
                try settings.apply(["db": "postgres://converge:hunter2@db.internal/converge"], from: .environment)
            }
                == #"environment: CONVERGE_DB "postgres://redacted@db.internal/converge": the database URL must not hold a password; give it with --db-password-file or PGPASSWORD"#
        )
        #expect(
            settingsError { try settings.apply(["db": "postgres//converge:hunter2@db.internal"], from: .commandLine) }
                == #"command line: --db must be sqlite:PATH or postgres://USER@HOST[:PORT]/DATABASE, got "postgres//redacted@db.internal""#
        )
        #expect(
            settingsError {
                try settings.apply(["db": "postgres://converge@db.internal/converge?sslmode=allow"], from: .commandLine)
            }
                == #"command line: --db "postgres://redacted@db.internal/converge?sslmode=allow": sslmode must be one of disable, require, verify-full, got "allow""#
        )
        try settings.apply(
            ["db": "postgres://converge@db.internal:6432/converge?sslmode=require&pool_max=40"], from: .commandLine)
        guard case .postgres(let url) = settings.storeLocation else {
            Issue.record("expected PostgreSQL, got \(settings.storeLocation)")
            return
        }
        #expect(url.description == "postgres://converge@db.internal:6432/converge?sslmode=require")
        #expect(url.maximumConnections == 40)
    }

    /// Regression (issue 6): `--lease-seconds 1e16` crashed with SIGILL; `--max-concurrent-deployments 1001` and a
    /// missing manifests directory gave a daemon that never worked.
    @Test func serve_withABadSetting_exitsTwoWithOneLine() async throws {
        let directory = try SettingsDirectory()
        let missing = directory.url.appendingPathComponent("missing").path
        let cases: [([String], [String: String], String)] = [
            (
                ["--lease-seconds", "1e16"], [:],
                #"converge serve: command line: --lease-seconds must be an integer from 2 to 3600, got "1e16""#
            ),
            (
                [], ["CONVERGE_POLL_SECONDS": "1e16"],
                #"converge serve: environment: CONVERGE_POLL_SECONDS must be an integer from 1 to 86400, got "1e16""#
            ),
            (
                ["--max-concurrent-deployments", "1001"], [:],
                #"converge serve: command line: --max-concurrent-deployments must be an integer from 1 to 1000, got "1001""#
            ),
            (
                ["--manifests", missing], [:],
                #"converge serve: command line: --manifests must be an existing directory, got "\#(missing)""#
            ),
        ]
        for (arguments, environment, message) in cases {
            let manifests = arguments.contains("--manifests") ? [] : ["--manifests", directory.manifests]
            let result = try await runServe(
                manifests + ["--db", "sqlite:\(directory.url.path)/c.sqlite"] + arguments, environment: environment)
            #expect(result.status == 2)
            #expect(result.stderr == message + "\n")
        }
    }
}
