import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

/// A provisioner that echoes an instance's secret back, in every encoding it is likely to use, into its log lines,
/// outputs, plan result and error: the real binary records and shows none of them.
@Suite(.serialized) struct SecretEchoTests {
    static let secret = SecretEncodings.secret
    static let encodings = SecretEncodings.encodings(of: secret)

    /// Regression: outputs and plan results were stored and shown in plain text, and the redactor matched the value
    /// only as is (a secret in an exec command's JSON line showed JSON-escaped in `converge logs`).
    @Test func anEchoedSecret_isInNoAnswerEventOrDatabaseByte_inAnyEncoding() async throws {
        let daemon = try DaemonProcess(files: Self.repository())
        try Self.echoScript().write(
            to: daemon.directory.appendingPathComponent("echo.sh"), atomically: true, encoding: .utf8)
        let vera = try await daemon.token("vera", role: "viewer")
        let dora = try await daemon.token("dora", role: "deployer")
        let alice = try await daemon.token("alice", role: "approver")
        try await daemon.start()
        let store = try daemon.store()
        try await eventually("a and b are proposed") {
            let a = try await store.history("p-dev-a").first?.status
            let b = try await store.history("p-dev-b").first?.status
            return a == .proposed && b == .proposed
        }
        let file = daemon.directory.appendingPathComponent("secret.txt")
        try Self.secret.write(to: file, atomically: true, encoding: .utf8)
        var ids: [String] = []
        for instance in ["p-dev-a", "p-dev-b"] {
            let set = try await daemon.cli(dora, "secret", "set", instance, "TOKEN", "--from-file", file.path)
            #expect(set.status == 0, "\(set.stderr)")
            let id = try #require(try await store.history(instance).first?.id)
            let approved = try await daemon.cli(alice, "approve", id)
            #expect(approved.status == 0, "\(approved.stderr)")
            ids.append(id)
        }
        let planned = try await daemon.cli(dora, "plan", "p-dev-a", "-o", "json")
        #expect(planned.status == 0, "\(planned.stderr)")
        ids.append(try #require(try Value(json: planned.stdout)["id"]?.stringValue))
        try await eventually("the deployments end") {
            for id in ids where !(try await store.deployment(id).status.isTerminal) { return false }
            return true
        }
        let (provision, failure, plan) = (
            try await store.deployment(ids[0]), try await store.deployment(ids[1]), try await store.deployment(ids[2])
        )
        #expect(provision.status == .completed && failure.status == .failed && plan.status == .completed)
        // The provisioner ran and echoed: what it said is recorded, redacted.
        #expect(provision.outputs?["out"]?["id"] == "x")
        #expect(provision.outputs?.canonicalJSON.contains("[redacted]") == true)
        #expect(plan.planResult?.canonicalJSON.contains("[redacted]") == true)
        #expect(failure.error?.hasPrefix("login refused: [redacted]") == true, "\(failure.error ?? "")")

        var shown: [String] = []
        for id in ids {
            for arguments in [["get", "deployments", id, "-o", "json"], ["logs", id, "-o", "json"], ["logs", id]] {
                let result = try await daemon.cli(vera, environment: [:], arguments)
                #expect(result.status == 0, "\(result.stderr)")
                shown.append(result.stdout)
            }
        }
        shown.append(try await daemon.cli(vera, "get", "instances", "p-dev-a", "-o", "json").stdout)
        shown.append(try await daemon.cli(vera, "audit", "--limit", "500", "-o", "json").stdout)
        var events: [String] = []
        for id in ids {
            events += try await store.events(of: id, after: nil, limit: 500).items.map {
                $0.message + ($0.data?.canonicalJSON ?? "")
            }
        }
        #expect(events.contains { $0.contains("echo 1: [redacted]") })
        let database = [daemon.database, daemon.database + "-wal"].compactMap {
            FileManager.default.contents(atPath: $0)
        }
        for (encoder, encoded) in Self.encodings {
            for text in shown { #expect(!text.contains(encoded), "\(encoder) in an answer:\n\(text)") }
            for text in events { #expect(!text.contains(encoded), "\(encoder) in an event: \(text)") }
            #expect(!daemon.logText.contains(encoded), "\(encoder) in the daemon's log")
            for bytes in database {
                #expect(bytes.range(of: Data(encoded.utf8)) == nil, "\(encoder) in the database file")
            }
        }
        try await daemon.stop()
    }

    /// Project p, environment dev under review, an exec provisioner running `echo.sh` (in the daemon's directory),
    /// and instances a (applied) and b (failing).
    static func repository() -> [String: String] {
        [
            "repository.yaml": baseManifests(
                environment: "policy: review", provisioner: "echo",
                spec: "{exec: {command: [/bin/sh, ../echo.sh], timeoutSeconds: 30}}")
                    + """
                    apiVersion: converge/v1
                    kind: Bundle
                    metadata: {name: thing}
                    spec:
                      provisioner: echo
                      artifacts: {out: {type: thing-out}}
                      paramsSchema: {type: object, properties: {fail: {type: boolean}}}
                    ---
                    apiVersion: converge/v1
                    kind: Instance
                    metadata: {name: a, project: p, environment: dev}
                    spec: {bundle: thing, version: 1.0.0, params: {}}
                    ---
                    apiVersion: converge/v1
                    kind: Instance
                    metadata: {name: b, project: p, environment: dev}
                    spec: {bundle: thing, version: 1.0.0, params: {fail: true}}
                    """
        ]
    }

    /// A careless provisioner script: every encoding of the secret on a log line (stdout and stderr), then, in its
    /// final JSON line, in b's error, in a plan's result, or in a's outputs (as values and as keys).
    static func echoScript() throws -> String {
        func line(_ object: [String: Any]) throws -> String {
            String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        }
        var echoed: [String: Any] = [:]
        for (index, (_, encoded)) in encodings.enumerated() {
            echoed["echo\(index)"] = encoded
            echoed[encoded] = "as a key"
        }
        let all = encodings.map(\.encoded).joined(separator: " ")
        let logLines = encodings.enumerated().map { "echo \($0.offset): \($0.element.encoded)" }
        func quoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: #"'\''"#) + "'" }
        return """
            cat > /dev/null
            printf '%s\\n' \(logLines.map(quoted).joined(separator: " "))
            printf '%s\\n' \(quoted("on stderr: \(all)")) >&2
            if [ "$CONVERGE_INSTANCE_ID" = p-dev-b ]; then
              printf '%s\\n' \(quoted(try line(["status": "failed", "error": "login refused: \(all)"])))
            elif [ "$CONVERGE_DEPLOYMENT_ACTION" = plan ]; then
              printf '%s\\n' \(quoted(try line(["status": "completed", "planResult": ["changes": [echoed]]])))
            else
              printf '%s\\n' \(quoted(try line(["status": "completed", "outputs": ["out": echoed.merging(["id": "x"]) { $1 }], "planResult": echoed])))
            fi

            """
    }
}
