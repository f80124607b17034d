import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Outputs a provisioner marks sensitive (`{"value": …, "sensitive": true}`) by each way a completion arrives (a
/// webhook's answer, a callback, an exec command's last line): stored sealed, shown by name only, opened only for the
/// provisioner of a connected instance, and redacted from what that one echoes back.
@Suite(.serialized) struct SensitiveOutputTests {
    /// What each upstream marks sensitive, by instance: the webhook's answer, a callback, an exec line.
    static let values = [
        "p-dev-a": SecretEncodings.secret, "p-dev-l": "callback " + SecretEncodings.secret,
        "p-dev-e": "exec-Pa55word-7Q",
    ]
    /// Each downstream instance and its upstream.
    static let downstream = ["p-dev-b": "p-dev-a", "p-dev-m": "p-dev-l", "p-dev-c": "p-dev-e"]

    /// Issue 13: an output that must carry a sensitive value downstream had no way to, but in plain text.
    @Test func aSensitiveOutput_isSealedShownByName_andOpenedOnlyForTheConnectedProvisioner() async throws {
        let server = try await Self.provisioner()
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(files: Self.repository(url: server.url))
        try Self.execScript().write(
            to: daemon.directory.appendingPathComponent("emit.sh"), atomically: true, encoding: .utf8)
        let vera = try await daemon.token("vera", role: "viewer")
        try await daemon.start()
        let store = try daemon.store()
        let instances = Array(Self.values.keys) + Array(Self.downstream.keys)
        func newest(_ instance: String) async throws -> Deployment? {
            try await store.history(of: instance, after: nil, limit: 1).items.first
        }
        try await eventually("every deployment ends", timeout: .seconds(60)) {
            for instance in instances where try await newest(instance)?.status.isTerminal != true { return false }
            return true
        }
        var deployments: [String: Deployment] = [:]
        for instance in instances { deployments[instance] = try #require(try await newest(instance)) }
        for (instance, deployment) in deployments {
            #expect(deployment.status == .completed, "\(instance): \(deployment.error ?? "")")
        }

        // Stored sealed: in the upstream's outputs and record, and in the downstream's snapshot and record.
        for upstream in Self.values.keys {
            let outputs = try #require(deployments[upstream]?.outputs)
            #expect(SensitiveValue.sealedText(of: outputs["out"]?["password"] ?? nil) != nil, "\(outputs)")
            #expect(outputs["out"]?["id"] == .string(upstream))
            let record = try await store.instance(upstream)
            #expect(SensitiveValue.sealedText(of: record.outputs?["out"]?["password"] ?? nil) != nil)
        }
        for (child, upstream) in Self.downstream {
            let snapshot = try #require(deployments[child]).snapshot.connectionParams
            #expect(SensitiveValue.sealedText(of: snapshot["upstream"]?["password"] ?? nil) != nil, "\(snapshot)")
            // Its provisioner got the plain value, in the call's body, and echoed it: recorded redacted.
            let call = try #require(
                await server.requests.last {
                    ($0.json?["deployment"] as? [String: Any])?["instance"] as? String == child
                })
            let sent = (call.json?["deployment"] as? [String: Any])?["connectionParams"] as? [String: Any]
            #expect((sent?["upstream"] as? [String: Any])?["password"] as? String == Self.values[upstream])
            let echoed = try #require(deployments[child]?.outputs?["out"])
            #expect(echoed["echo"] == "[redacted]" && echoed["echo64"] == "[redacted]", "\(echoed)")
            #expect(echoed["note"] == "x")
        }

        // Shown by name only: the API, the CLI's views, the exec command's last line in its log.
        var shown: [String] = []
        for (instance, deployment) in deployments {
            for arguments in [
                ["get", "deployments", deployment.id, "-o", "json"], ["get", "deployments", deployment.id],
                ["get", "instances", instance, "-o", "yaml"], ["logs", deployment.id],
            ] {
                let result = try await daemon.cli(vera, environment: [:], arguments)
                #expect(result.status == 0, "\(result.stderr)")
                shown.append(result.stdout)
            }
            // The API answer itself, as any client reads it.
            for path in ["/v1/deployments/\(deployment.id)", "/v1/instances/\(instance)"] {
                var request = URLRequest(url: URL(string: "http://127.0.0.1:\(daemon.port)\(path)")!)
                request.setValue("Bearer \(vera)", forHTTPHeaderField: "Authorization")
                let (data, response) = try await URLSession.shared.data(for: request)
                #expect((response as? HTTPURLResponse)?.statusCode == 200, "\(path)")
                shown.append(String(decoding: data, as: UTF8.self))
            }
        }
        let compared = try await daemon.cli(
            vera, "compare", deployments["p-dev-b"]!.id, deployments["p-dev-m"]!.id, "-o", "json")
        #expect(compared.status == 0, "\(compared.stderr)")
        shown.append(compared.stdout)
        let answer = try await daemon.cli(vera, "get", "deployments", deployments["p-dev-a"]!.id, "-o", "json")
        #expect(try Value(json: answer.stdout)["outputs"]?["out"]?["password"] == "[sensitive]", "\(answer.stdout)")
        let child = try await daemon.cli(vera, "get", "instances", "p-dev-b", "-o", "json")
        #expect(try Value(json: child.stdout)["connectionParams"]?["upstream"]?["password"] == "[sensitive]")
        let execLog = try await daemon.cli(vera, "logs", deployments["p-dev-e"]!.id)
        #expect(execLog.stdout.contains(#""password":"[sensitive]""#), "\(execLog.stdout)")
        shown.append(try await daemon.cli(vera, "audit", "--limit", "500", "-o", "json").stdout)
        var events: [String] = []
        for deployment in deployments.values {
            events += try await store.events(of: deployment.id, after: nil, limit: 500).items.map {
                $0.message + ($0.data?.canonicalJSON ?? "")
            }
        }
        let database = [daemon.database, daemon.database + "-wal"].compactMap {
            FileManager.default.contents(atPath: $0)
        }
        #expect(!database.isEmpty)
        for value in Self.values.values {
            for (encoder, encoded) in SecretEncodings.encodings(of: value) {
                for text in shown { #expect(!text.contains(encoded), "\(encoder) in an answer:\n\(text)") }
                for text in events { #expect(!text.contains(encoded), "\(encoder) in an event: \(text)") }
                #expect(!daemon.logText.contains(encoded), "\(encoder) in the daemon's log")
                for bytes in database {
                    #expect(bytes.range(of: Data(encoded.utf8)) == nil, "\(encoder) in the database file")
                }
            }
        }
        try await daemon.stop()
    }

    /// Project p, environment dev (auto); webhook `hook` on the test's provisioner, exec `run` running `emit.sh`;
    /// upstreams a and l (webhook) and e (exec), each wired to a downstream child: b, m and c.
    static func repository(url: String) -> [String: String] {
        var files = [
            "base.yaml": baseManifests(spec: #"{webhook: {url: "\#(url)", timeoutSeconds: 30}}"#)
                + """
                apiVersion: converge/v1
                kind: Provisioner
                metadata: {name: run}
                spec:
                  exec: {command: [/bin/sh, ../emit.sh], timeoutSeconds: 30}
                ---
                apiVersion: converge/v1
                kind: Bundle
                metadata: {name: thing}
                spec: {provisioner: hook, artifacts: {out: {type: thing-out}}}
                ---
                apiVersion: converge/v1
                kind: Bundle
                metadata: {name: made}
                spec: {provisioner: run, artifacts: {out: {type: thing-out}}}
                ---
                apiVersion: converge/v1
                kind: Bundle
                metadata: {name: child}
                spec:
                  provisioner: hook
                  connections: {upstream: {type: thing-out}}
                  artifacts: {out: {type: thing-out}}
                """
        ]
        for (name, bundle, wiring) in [
            ("a", "thing", ""), ("l", "thing", ""), ("e", "made", ""), ("b", "child", "a"), ("m", "child", "l"),
            ("c", "child", "e"),
        ] {
            files["\(name).yaml"] = """
                apiVersion: converge/v1
                kind: Instance
                metadata: {name: \(name), project: p, environment: dev}
                spec:
                  bundle: \(bundle)
                  version: 1.0.0
                  params: {}
                """ + (wiring.isEmpty ? "" : "\n  connections: {upstream: \(wiring)}")
        }
        return files
    }

    /// The outputs of an upstream: its id, and its value marked sensitive.
    static func outputs(of instance: String) -> [String: Any] {
        ["out": ["id": instance, "password": ["value": values[instance]!, "sensitive": true]]]
    }

    /// The webhook: a answered at once; l with 202 then a completion callback; a child echoes the password it was
    /// sent, as is and in base64, in its outputs.
    static func provisioner() async throws -> LoopbackServer {
        try await LoopbackServer.start { _, request in
            let body = request.json ?? [:]
            let deployment = body["deployment"] as? [String: Any] ?? [:]
            let instance = deployment["instance"] as? String ?? ""
            func json(_ object: [String: Any]) -> String {
                String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
            }
            if let upstream = (deployment["connectionParams"] as? [String: Any])?["upstream"] as? [String: Any] {
                let password = upstream["password"] as? String ?? "none"
                let echo = ["echo": password, "echo64": Data(password.utf8).base64EncodedString(), "note": "x"]
                return ScriptedResponse(status: 200, body: json(["status": "completed", "outputs": ["out": echo]]))
            }
            guard instance == "p-dev-l", let callback = body["callback"] as? [String: String],
                let url = callback["url"], let token = callback["token"]
            else {
                return ScriptedResponse(
                    status: 200, body: json(["status": "completed", "outputs": outputs(of: instance)]))
            }
            let report: [String: Any] = [
                "type": "completed", "attempt": deployment["attempt"] as? Int ?? 1, "outputs": outputs(of: instance),
            ]
            Task {
                var request = URLRequest(url: URL(string: url)!)
                request.httpMethod = "POST"
                request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
                request.setValue("application/json", forHTTPHeaderField: "Content-Type")
                request.httpBody = Data(json(report).utf8)
                _ = try? await URLSession.shared.data(for: request)
            }
            return ScriptedResponse(status: 202)
        }
    }

    /// The exec command: a log line, then its outcome as its last line, with e's output marked sensitive.
    static func execScript() throws -> String {
        let line = String(
            decoding: try JSONSerialization.data(
                withJSONObject: ["status": "completed", "outputs": outputs(of: "p-dev-e")], options: [.sortedKeys]),
            as: UTF8.self)
        return """
            cat > /dev/null
            echo applying
            printf '%s\\n' '\(line)'

            """
    }
}
