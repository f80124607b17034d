import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Instance secrets end to end, through the real CLI and daemon: set from standard input or a file, shown by name
/// only, read fresh at dispatch and sent only to the provisioner, and never found in the daemon's log, any answer,
/// the events or the audit log.
@Suite(.serialized) struct SecretTests {
    let first = "first-Value-7f3a9c"
    let rotated = "rotated-Value-b81d2e"

    /// `converge ARGUMENTS` against `daemon` with `token`, `input` on its standard input.
    func cli(_ daemon: DaemonProcess, _ token: String, input: String, _ arguments: String...) throws
        -> ConvergeBinary.Result
    {
        let process = Process()
        process.executableURL = ConvergeBinary.executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging([
            "CONVERGE_SERVER": "http://127.0.0.1:\(daemon.port)", "XDG_CONFIG_HOME": daemon.directory.path,
            "CONVERGE_TOKEN": token,
        ]) { $1 }
        let stdin = Pipe()
        let out = Pipe()
        let err = Pipe()
        process.standardInput = stdin
        process.standardOutput = out
        process.standardError = err
        try process.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return ConvergeBinary.Result(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// A provisioner that answers `a` with a verdict at once, and `b` with 202 and then callbacks: a log line
    /// echoing its secret, then a failure whose error holds it too, as a careless script would.
    func provisioner() async throws -> LoopbackServer {
        try await LoopbackServer.start { _, request in
            let body = request.json ?? [:]
            let deployment = body["deployment"] as? [String: Any]
            guard deployment?["instance"] as? String == "p-dev-b",
                let callback = body["callback"] as? [String: String], let url = callback["url"],
                let token = callback["token"]
            else {
                return ScriptedResponse(status: 200, body: completedAnswer)
            }
            let secret = (body["secrets"] as? [String: String])?["TOKEN"] ?? "none"
            let attempt = deployment?["attempt"] as? Int ?? 1
            Task {
                try? await Task.sleep(for: .milliseconds(200))
                for report in [
                    ["type": "log", "attempt": attempt, "message": "logging in with \(secret)"] as [String: Any],
                    ["type": "failed", "attempt": attempt, "error": "login refused for \(secret)"],
                ] {
                    var request = URLRequest(url: URL(string: url)!)
                    request.httpMethod = "POST"
                    request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
                    request.setValue("application/json", forHTTPHeaderField: "Content-Type")
                    request.httpBody = try? JSONSerialization.data(withJSONObject: report)
                    _ = try? await URLSession.shared.data(for: request)
                }
            }
            return ScriptedResponse(status: 202)
        }
    }

    @Test func secrets_reachTheProvisionerFreshAtDispatch_byNameOnlyEverywhereElse() async throws {
        let server = try await provisioner()
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(
            files: repository(url: server.url, instances: ["a": ["size": 1], "b": ["size": 1]], policy: "review"))
        let vera = try await daemon.token("vera", role: "viewer")
        let dora = try await daemon.token("dora", role: "deployer")
        let alice = try await daemon.token("alice", role: "approver")
        try await daemon.start()
        let store = try daemon.store()
        func proposal(_ instance: String) async throws -> Deployment? {
            try await store.history(instance).first { $0.status == .proposed }
        }
        try await eventually("a and b are proposed") {
            let a = try await proposal("p-dev-a")
            let b = try await proposal("p-dev-b")
            return a != nil && b != nil
        }
        var outputs: [ConvergeBinary.Result] = []
        func run(_ result: ConvergeBinary.Result) -> ConvergeBinary.Result {
            outputs.append(result)
            return result
        }

        // Set after the deployments were enqueued, from standard input (echo's newline dropped).
        let set = run(try cli(daemon, dora, input: first + "\n", "secret", "set", "p-dev-a", "DB_PASSWORD"))
        #expect(set.status == 0, "\(set.stderr)")
        #expect(set.stdout == "secret DB_PASSWORD of p-dev-a set\n")
        let setB = run(try cli(daemon, dora, input: first, "secret", "set", "p-dev-b", "TOKEN", "-o", "json"))
        #expect(setB.status == 0, "\(setB.stderr)")
        #expect(try Value(json: setB.stdout) == ["instance": "p-dev-b", "name": "TOKEN", "status": "set"])

        // Who may do what, and what is refused.
        let viewerSets = run(try cli(daemon, vera, input: "x", "secret", "set", "p-dev-a", "OTHER"))
        #expect(viewerSets.status == 1)
        #expect(viewerSets.stderr.contains("vera has the role viewer; setInstanceSecret needs deployer"))
        let viewerRemoves = run(try await daemon.cli(vera, "secret", "rm", "p-dev-a", "DB_PASSWORD"))
        #expect(viewerRemoves.stderr.contains("(permission_denied)"))
        let unknown = run(try cli(daemon, dora, input: "x", "secret", "set", "p-dev-nope", "OTHER"))
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("instance p-dev-nope not found (not_found)"))
        let badName = run(try cli(daemon, dora, input: "x", "secret", "set", "p-dev-a", "DB-PASSWORD"))
        #expect(badName.status == 2)
        let empty = run(try cli(daemon, dora, input: "\n", "secret", "set", "p-dev-a", "EMPTY"))
        #expect(empty.status == 1)
        #expect(empty.stderr.contains("the value is empty"))

        // Names only, in every view.
        let listed = run(try await daemon.cli(vera, "secret", "list", "p-dev-a"))
        #expect(listed.status == 0, "\(listed.stderr)")
        #expect(listed.stdout.contains("DB_PASSWORD"))
        let instance = run(try await daemon.cli(vera, "get", "instances", "p-dev-a", "-o", "json"))
        #expect(try Value(json: instance.stdout)["secrets"] == ["DB_PASSWORD"])
        let page = run(try await daemon.cli(vera, "get", "instances", "-o", "json"))
        let secretsByInstance = try Value(json: page.stdout)["items"]?.arrayValue?.map { $0["secrets"] }
        #expect(secretsByInstance == [["DB_PASSWORD"], ["TOKEN"]])
        let described = run(try await daemon.cli(vera, "describe", "instances", "p-dev-a"))
        #expect(described.stdout.contains("DB_PASSWORD"))

        // Rotated from a file before the approval: the provisioner gets the value of dispatch time.
        let file = daemon.directory.appendingPathComponent("rotated.txt")
        try rotated.write(to: file, atomically: true, encoding: .utf8)
        let rotate = run(
            try cli(daemon, dora, input: "", "secret", "set", "p-dev-a", "DB_PASSWORD", "--from-file", file.path))
        #expect(rotate.status == 0, "\(rotate.stderr)")
        let idA = try #require(try await proposal("p-dev-a")?.id)
        // Approved without --wait, and waited for here: a CLI process waited on blocks a thread of the test process,
        // which the loopback provisioner needs too.
        func ended(_ id: String) async throws -> Deployment {
            try await eventually("\(id) ends", timeout: .seconds(30)) {
                try await store.deployment(id).status.isTerminal
            }
            return try await store.deployment(id)
        }
        let approved = run(try await daemon.cli(alice, "approve", idA, "-o", "json"))
        #expect(approved.status == 0, "\(approved.stderr)")
        #expect(try await ended(idA).status == .completed)
        let sent = await server.requests.first { $0.body.range(of: Data(idA.utf8)) != nil }
        #expect(sent?.json?["secrets"] as? [String: String] == ["DB_PASSWORD": rotated])

        // b's provisioner echoes its secret into a log line and its error: both are recorded redacted.
        let idB = try #require(try await proposal("p-dev-b")?.id)
        let approvedB = run(try await daemon.cli(alice, "approve", idB, "-o", "json"))
        #expect(approvedB.status == 0, "\(approvedB.stderr)")
        #expect(try await ended(idB).status == .failed)
        let failed = run(try await daemon.cli(vera, "get", "deployments", idB, "-o", "json"))
        #expect(try Value(json: failed.stdout)["error"] == "login refused for [redacted]")
        let logs = run(try await daemon.cli(vera, "logs", idB, "-o", "json"))
        #expect(logs.stdout.contains("logging in with [redacted]"))
        _ = run(try await daemon.cli(vera, "logs", idA, "-o", "json"))
        _ = run(try await daemon.cli(vera, "get", "deployments", "-o", "json"))
        _ = run(try await daemon.cli(vera, "describe", "deployments", idB))

        // Deleted; the audit log names every change by the secret's name alone.
        let removed = run(try await daemon.cli(dora, "secret", "rm", "p-dev-a", "DB_PASSWORD"))
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(removed.stdout == "secret DB_PASSWORD of p-dev-a deleted\n")
        let again = run(try await daemon.cli(dora, "secret", "rm", "p-dev-a", "DB_PASSWORD"))
        #expect(again.stderr.contains("instance p-dev-a has no secret DB_PASSWORD (not_found)"))
        let audit = run(try await daemon.cli(vera, "audit", "--limit", "500", "-o", "json"))
        let secretEntries = try Value(json: audit.stdout)["items"]?.arrayValue?.filter {
            $0["action"]?.stringValue?.hasPrefix("secret.") == true
        }
        #expect(
            secretEntries?.map { $0["action"] } == ["secret.delete", "secret.set", "secret.set", "secret.set"],
            "newest first")
        #expect(secretEntries?.last?["after"] == ["secret": "DB_PASSWORD"])
        #expect(secretEntries?.last?["actor"] == "dora")

        // The values and the tokens: in none of the answers, the log, the events, the audit log or the database.
        let events =
            try await store.events(of: idA, after: nil, limit: 500).items
            + store.events(of: idB, after: nil, limit: 500).items
        let database = try [daemon.database, daemon.database + "-wal"].compactMap {
            FileManager.default.contents(atPath: $0)
        }
        for value in [first, rotated, vera, dora, alice] {
            #expect(!daemon.logText.contains(value), "the daemon's log")
            for output in outputs {
                #expect(!output.stdout.contains(value) && !output.stderr.contains(value), "\(output.stdout)")
            }
            #expect(!events.contains { $0.message.contains(value) || $0.data?.canonicalJSON.contains(value) == true })
            #expect(try await store.deployment(idB).error?.contains(value) == false)
            for bytes in database { #expect(bytes.range(of: Data(value.utf8)) == nil, "the database file") }
        }
        try await daemon.stop()
    }

    @Test func serve_withoutAUsableKeyFile_exitsTwoWithOneLine_andInitKeyNeverOverwrites() async throws {
        let directory = try SettingsDirectory()
        let key = directory.url.appendingPathComponent("converge.key").path
        let arguments = ["--manifests", directory.manifests, "--db", "sqlite:\(directory.url.path)/c.sqlite"]

        let missing = try await runServe(arguments + ["--secrets-key-file", key])
        #expect(missing.status == 2)
        #expect(
            missing.stderr
                == "converge serve: the secrets key file \(key) does not exist; create it with converge init-key --secrets-key-file \(key)\n"
        )

        let created = try await ConvergeBinary.run("init-key", "--secrets-key-file", key)
        #expect(created.status == 0, "\(created.stderr)")
        let attributes = try FileManager.default.attributesOfItem(atPath: key)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect((attributes[.size] as? Int) == 32)
        let original = FileManager.default.contents(atPath: key)
        let overwrite = try await ConvergeBinary.run("init-key", "--secrets-key-file", key)
        #expect(overwrite.status == 1)
        #expect(overwrite.stderr.contains("it already exists, and a key is never overwritten"))
        #expect(FileManager.default.contents(atPath: key) == original)

        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: key)
        let readable = try await runServe(arguments, environment: ["CONVERGE_SECRETS_KEY_FILE": key])
        #expect(readable.status == 2)
        #expect(
            readable.stderr
                == "converge serve: the secrets key file \(key) must be readable by its owner only (chmod 600), but its mode is 640\n"
        )

        let short = directory.url.appendingPathComponent("short.key").path
        FileManager.default.createFile(
            atPath: short, contents: Data(repeating: 7, count: 16),
            attributes: [
                .posixPermissions: 0o600
            ])
        let wrongSize = try await runServe(arguments + ["--secrets-key-file", short])
        #expect(wrongSize.status == 2)
        #expect(
            wrongSize.stderr
                == "converge serve: the secrets key file \(short) must hold 32 bytes (made by converge init-key), it holds 16\n"
        )
    }
}
