import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

/// kubectl habits of `converge` (issue 13 §4) on the real binary: `get -l` label selectors, `-o wide` columns, the
/// AGE column, `diff -o json` and the changes `plan --wait` shows.
@Suite(.serialized) struct KubectlOutputTests {
    /// Instances `i0`…`i6` of p-dev: `tier=data` on the even ones, `tier=web` on the odd ones.
    static func labeledRepository(url: String, policy: String = "auto") -> [String: String] {
        var files = repository(
            url: url, instances: Dictionary(uniqueKeysWithValues: (0..<7).map { ("i\($0)", ["size": 1] as Value) }),
            policy: policy)
        for index in 0..<7 {
            files["i\(index).yaml"] = files["i\(index).yaml"]!.replacingOccurrences(
                of: "environment: dev}", with: "environment: dev, labels: {tier: \(index % 2 == 0 ? "data" : "web")}}")
        }
        return files
    }

    /// Every page of `get instances -l SELECTOR --limit LIMIT -o json`, following the cursor: each page's ids.
    static func pages(_ daemon: DaemonProcess, _ token: String, selector: String, limit: Int) async throws
        -> [[String]]
    {
        var pages: [[String]] = []
        var cursor: String?
        repeat {
            let arguments =
                ["get", "instances", "-l", selector, "--limit", String(limit), "-o", "json"]
                + (cursor.map { ["--cursor", $0] } ?? [])
            let result = try await daemon.cli(token, environment: [:], arguments)
            #expect(result.status == 0, "\(result.stderr)")
            let page = try Value(json: result.stdout)
            pages.append(page["items"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? [])
            cursor = page["nextCursor"]?.stringValue
        } while cursor != nil && pages.count < 10
        return pages
    }

    @Test func getWithASelector_pagesThroughFullPages_andAMalformedOneIsRefused() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200, body: completedAnswer) }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(files: Self.labeledRepository(url: server.url))
        let vera = try await daemon.token("vera", role: "viewer")
        try await daemon.start()
        try await eventually("the manifests are loaded") { await daemon.isReady() }

        #expect(
            try await Self.pages(daemon, vera, selector: "tier=data", limit: 2)
                == [["p-dev-i0", "p-dev-i2"], ["p-dev-i4", "p-dev-i6"]])
        #expect(
            try await Self.pages(daemon, vera, selector: "tier!=data", limit: 2)
                == [["p-dev-i1", "p-dev-i3"], ["p-dev-i5"]])
        let table = try await daemon.cli(vera, "get", "instances", "-l", "tier=web,tier!=data", "-o", "name")
        #expect(table.stdout == "instance/p-dev-i1\ninstance/p-dev-i3\ninstance/p-dev-i5\n")
        let projects = try await daemon.cli(vera, "get", "projects", "--selector", "!tier", "-o", "name")
        #expect(projects.stdout == "project/p\n", "\(projects.stderr)")

        let malformed = try await daemon.cli(vera, "get", "instances", "-l", "tier=data,,x")
        #expect(malformed.status == 1)
        #expect(malformed.stdout.isEmpty)
        #expect(
            malformed.stderr
                == "converge: labelSelector: position 11: expected a label key, got \",\" (invalid_argument)\n")
        let onDeployments = try await daemon.cli(vera, "get", "deployments", "-l", "tier=data")
        #expect(onDeployments.status != 0)
        #expect(onDeployments.stderr.contains("-l selects instances and desired resources by their labels"))
        try await daemon.stop()
    }

    @Test func wideShowsMoreColumns_andTablesHaveAnAge() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200, body: completedAnswer) }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(files: Self.labeledRepository(url: server.url))
        let vera = try await daemon.token("vera", role: "viewer")
        try await daemon.start()
        let store = try daemon.store()
        try await eventually("i0 is deployed") {
            try await store.history(of: "p-dev-i0", after: nil, limit: 1).items.first?.status == .completed
        }
        let deployment = try #require(try await store.history(of: "p-dev-i0", after: nil, limit: 1).items.first)

        func lines(_ arguments: String...) async throws -> [[String]] {
            let result = try await daemon.cli(vera, environment: [:], arguments)
            #expect(result.status == 0, "\(result.stderr)")
            return result.stdout.split(separator: "\n").map {
                $0.split(separator: "  ").map { $0.trimmingCharacters(in: .whitespaces) }
            }
        }
        let narrow = try await lines("get", "instances", "-l", "tier=data")
        #expect(narrow.first == ["ID", "ENVIRONMENT", "BUNDLE", "VERSION", "STATUS", "READY", "AGE"])
        #expect(narrow.dropFirst().allSatisfy { $0.last?.wholeMatch(of: /[0-9]+(s|m[0-9]*s?)/) != nil }, "\(narrow)")
        let wide = try await lines("get", "instances", "p-dev-i0", "-o", "wide")
        #expect(wide.first?.suffix(4) == ["AGE", "PROVISIONER", "LABELS", "LAST DEPLOYMENT"])
        #expect(wide.last?.suffix(3) == ["hook", "tier=data", deployment.id])

        let deployments = try await lines("get", "deployments", "--instance", "p-dev-i0", "-o", "wide")
        #expect(
            deployments.first
                == [
                    "ID", "INSTANCE", "ACTION", "STATUS", "AWAITING", "CREATED BY", "AGE", "ERROR", "MODE",
                    "APPROVED BY", "VERSION", "ATTEMPT", "COMMIT", "CREATED", "FINISHED",
                ])
        let row = try #require(deployments.last)
        #expect(row.first == deployment.id)
        #expect(row.contains("direct") && row.contains("1.0.0"), "\(row)")
        let resources = try await lines("get", "bundles", "-o", "wide")
        #expect(resources.first == ["KIND", "ID", "OWNER", "GENERATION", "SOURCE", "AGE", "LABELS"])
        try await daemon.stop()
    }

    @Test func diffAsJSON_listsEachChangeForScripts() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200, body: completedAnswer) }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(files: repository(url: server.url, instances: ["a": ["size": 1]]))
        let dora = try await daemon.token("dora", role: "deployer")
        try await daemon.start()
        func instance(_ name: String, size: Int) -> String {
            """
            apiVersion: converge/v1
            kind: Instance
            metadata: {name: \(name), project: p, environment: dev}
            spec: {bundle: thing, version: 1.0.0, params: {size: \(size)}}
            """
        }
        let file = daemon.directory.appendingPathComponent("b.yaml")
        try instance("b", size: 2).write(to: file, atomically: true, encoding: .utf8)
        let applied = try await daemon.cli(dora, "apply", "-f", file.path)
        #expect(applied.status == 0, "\(applied.stderr)")
        try instance("b", size: 7).write(to: file, atomically: true, encoding: .utf8)

        let json = try await daemon.cli(dora, "diff", "-f", file.path, "-o", "json")
        #expect(json.status == 1, "\(json.stderr)")
        #expect(
            try Value(json: json.stdout)
                == [
                    "items": [
                        [
                            "resource": "instance/p-dev-b", "path": "params.size", "before": 2, "after": 7,
                            "action": "change",
                        ]
                    ]
                ])
        let yaml = try await daemon.cli(dora, "diff", "-f", file.path, "-o", "yaml")
        #expect(yaml.stdout.contains("path: params.size"), "\(yaml.stdout)")
        let name = try await daemon.cli(dora, "diff", "-f", file.path, "-o", "name")
        #expect(name.stdout == "instance/p-dev-b\n")
        let text = try await daemon.cli(dora, "diff", "-f", file.path)
        #expect(text.stdout == "instance/p-dev-b\n  params.size: 2 -> 7\n")
        try await daemon.stop()
    }

    @Test func planWait_showsTheChangesAfterTheRow() async throws {
        let answer = #"{"status": "completed", "outputs": {"out": {"id": "x"}}, "planResult": {"changes": ["size"]}}"#
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200, body: answer) }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(
            files: repository(url: server.url, instances: ["a": ["size": 1]], policy: "review"))
        let vera = try await daemon.token("vera", role: "viewer")
        let dora = try await daemon.token("dora", role: "deployer")
        let ann = try await daemon.token("ann", role: "approver")
        try await daemon.start()
        var proposal = ""
        try await eventually("a change is proposed") {
            proposal = try await daemon.cli(vera, "get", "deployments", "--status", "PROPOSED", "-o", "name").stdout
            return !proposal.isEmpty
        }
        let approved = try await daemon.cli(
            ann, "approve", proposal.trimmingCharacters(in: .whitespacesAndNewlines), "--wait")
        #expect(approved.status == 0, "\(approved.stderr)")
        try daemon.write(repository(url: server.url, instances: ["a": ["size": 2]], policy: "review"))
        #expect(try await daemon.sync() == 202)

        let plan = try await daemon.cli(dora, "plan", "p-dev-a", "--wait")
        #expect(plan.status == 0, "\(plan.stderr)")
        let lines = plan.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.first?.hasPrefix("ID") == true)
        #expect(lines[1].contains("plan") && lines[1].contains("COMPLETED"), "\(plan.stdout)")
        #expect(
            lines.dropFirst(2).joined(separator: "\n")
                == "\nchanges:\n  params.size: 1 -> 2\nthe provisioner reports: [\"size\"]\n", "\(plan.stdout)")
        let json = try Value(json: try await daemon.cli(dora, "plan", "p-dev-a", "--wait", "-o", "json").stdout)
        #expect(json["planResult"] == ["changes": ["size"]])
        try await daemon.stop()
    }
}
