import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

/// The deployment lifecycle through the API, driven by the real CLI against the real daemon: every operation a
/// person uses, and every forbidden path answered with its code.
@Suite(.serialized) struct APITests {
    /// The JSON a command printed.
    func json(_ result: ConvergeBinary.Result) throws -> Value {
        try Value(json: result.stdout)
    }

    /// A provisioner that completes every deployment, except those whose params have `fail: true`.
    func provisioner() async throws -> LoopbackServer {
        try await LoopbackServer.start { _, request in
            let deployment = request.json?["deployment"] as? [String: Any]
            if let params = deployment?["params"] as? [String: Any], params["fail"] as? Bool == true {
                return ScriptedResponse(status: 200, body: #"{"status": "failed", "error": "asked to fail"}"#)
            }
            return ScriptedResponse(status: 200, body: completedAnswer, delay: .milliseconds(200))
        }
    }

    @Test func review_approvalThroughTheCLI_deploys_andEveryForbiddenPathAnswersWithItsCode() async throws {
        let server = try await provisioner()
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(
            files: repository(url: server.url, instances: ["a": ["size": 1]], policy: "review"))
        let vera = try await daemon.token("vera", role: "viewer")
        let dora = try await daemon.token("dora", role: "deployer")
        let alice = try await daemon.token("alice", role: "approver")
        let bob = try await daemon.token("bob", role: "approver")
        try await daemon.start()
        try await eventually("the reconciler proposes a") {
            try await daemon.store().history("p-dev-a").first?.status == .proposed
        }
        let listed = try await daemon.cli(vera, "get", "deployments", "--status", "PROPOSED", "-o", "json")
        #expect(listed.status == 0, "\(listed.stderr)")
        let proposal = try #require(try json(listed)["items"]?.arrayValue?.first?["id"]?.stringValue)

        // Who may do what.
        let anonymous = try await daemon.cli(nil, "get", "deployments")
        #expect(anonymous.status == 1)
        #expect(anonymous.stderr.contains("(unauthenticated)"))
        let forged = try await daemon.cli("cvg_forged", "get", "deployments")
        #expect(forged.status == 1)
        #expect(forged.stderr.contains("the bearer token is not valid (unauthenticated)"))
        let viewerApproves = try await daemon.cli(vera, "approve", proposal)
        #expect(viewerApproves.status == 1)
        #expect(viewerApproves.stderr.contains("(permission_denied)"))
        let viewerDeploys = try await daemon.cli(vera, "deploy", "p-dev-a")
        #expect(viewerDeploys.stderr.contains("vera has the role viewer; createDeployment needs deployer"))
        let deployerApproves = try await daemon.cli(dora, "approve", proposal)
        #expect(deployerApproves.stderr.contains("(permission_denied)"))
        let directInReview = try await daemon.cli(dora, "deploy", "p-dev-a")
        #expect(directInReview.status == 1)
        #expect(directInReview.stderr.contains("must be proposed and approved (failed_precondition)"))

        // The approval, followed until the deployment ends.
        let approved = try await daemon.cli(alice, "approve", proposal, "--wait", "-o", "json")
        #expect(approved.status == 0, "\(approved.stderr)")
        #expect(try json(approved)["status"] == "COMPLETED")
        #expect(try json(approved)["approvedBy"] == "alice")
        #expect(approved.stderr.contains("RUNNING -> COMPLETED"), "progress goes to stderr")
        let abortDone = try await daemon.cli(dora, "abort", proposal)
        #expect(abortDone.status == 1)
        #expect(abortDone.stderr.contains("cannot move from COMPLETED to ABORTED (failed_precondition)"))

        // A person's own proposal: never approved by them.
        let proposed = try await daemon.cli(alice, "propose", "p-dev-a", "-o", "json")
        #expect(proposed.status == 0, "\(proposed.stderr)")
        let own = try #require(try json(proposed)["id"]?.stringValue)
        #expect(try json(proposed)["createdBy"] == "alice")
        let selfApproval = try await daemon.cli(alice, "approve", own)
        #expect(selfApproval.status == 1)
        #expect(selfApproval.stderr.contains("(permission_denied)"))
        let rejected = try await daemon.cli(bob, "reject", own, "--reason", "not now", "-o", "json")
        #expect(try json(rejected)["status"] == "REJECTED")

        // The audit log names who did what; no token appears in it, in any answer, or in the daemon's log.
        let audit = try await daemon.cli(vera, "audit", "--actor", "alice", "-o", "json")
        let actions = try json(audit)["items"]?.arrayValue?.compactMap { $0["action"]?.stringValue } ?? []
        #expect(actions.contains("deployment.approved"))
        let everything = try await daemon.cli(vera, "audit", "--limit", "500", "-o", "json").stdout
        for token in [vera, dora, alice, bob] {
            #expect(!everything.contains(token))
            #expect(!daemon.logText.contains(token))
            #expect(!listed.stdout.contains(token) && !approved.stdout.contains(token))
        }
        try await daemon.stop()
    }

    @Test func rollback_toAnEarlierCompletedProvision_holdsTheInstance_untilTheManifestsChangeIt() async throws {
        let server = try await provisioner()
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(
            files: repository(url: server.url, instances: ["a": ["size": 1], "b": ["size": 1]]))
        let dora = try await daemon.token("dora", role: "deployer")
        try await daemon.start()
        let store = try daemon.store()
        func deployed(_ params: Value) async throws -> Deployment {
            try daemon.write(repository(url: server.url, instances: ["a": params, "b": ["size": 1]]))
            try await eventually("a is deployed with \(params.canonicalJSON)", timeout: .seconds(30)) {
                let newest = try await store.history("p-dev-a").first
                return newest?.snapshot.params == params && newest?.status.isTerminal == true
            }
            return try #require(try await store.history("p-dev-a").first)
        }
        try await eventually("a and b are deployed") {
            let a = try await store.history("p-dev-a").first?.status
            let b = try await store.history("p-dev-b").first?.status
            return a == .completed && b == .completed
        }
        let first = try #require(try await store.history("p-dev-a").first)
        let second = try await deployed(["size": 2])
        let failed = try await deployed(["size": 3, "fail": true])
        #expect(second.status == .completed && failed.status == .failed)
        let other = try #require(try await store.history("p-dev-b").first)

        let toFailed = try await daemon.cli(dora, "rollback", "p-dev-a", "--to", failed.id)
        #expect(toFailed.status == 1)
        #expect(toFailed.stderr.contains("a rollback needs a COMPLETED provision (failed_precondition)"))
        let toOther = try await daemon.cli(dora, "rollback", "p-dev-a", "--to", other.id)
        #expect(toOther.stderr.contains("is of instance p-dev-b, not p-dev-a (failed_precondition)"))

        let rolledBack = try await daemon.cli(dora, "rollback", "p-dev-a", "--to", first.id, "--wait", "-o", "json")
        #expect(rolledBack.status == 0, "\(rolledBack.stderr)")
        let rollback = try json(rolledBack)
        #expect(rollback["rollbackOf"] == .string(first.id))
        #expect(rollback["params"] == ["size": 1])
        #expect(rollback["status"] == "COMPLETED")
        let compared = try await daemon.cli(dora, "compare", failed.id, first.id, "-o", "json")
        let paths = try json(compared)["changes"]?.arrayValue?.compactMap { $0["path"]?.stringValue }
        #expect(paths == ["params.fail", "params.size"])

        // The reconcile that follows the rollback's completion holds the instance: its condition names the
        // rollback, and no newer deployment undoes it.
        let rollbackID = try #require(rollback["id"]?.stringValue)
        try await eventually("the reconciler has seen the rollback complete") {
            try await store.instance("p-dev-a").conditions.contains { $0.message.contains(rollbackID) }
        }
        #expect(try await store.history("p-dev-a").first?.id == rollbackID)
        // A change of the instance in the manifests deploys again.
        let next = try await deployed(["size": 4])
        #expect(next.status == .completed && next.rollbackOf == nil)
        try await daemon.stop()
    }

    @Test func logsFollow_printsEveryEventInOrder_andEndsWhenTheDeploymentDoes() async throws {
        let server = try await provisioner()
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(files: repository(url: server.url, instances: ["a": ["size": 1]]))
        let vera = try await daemon.token("vera", role: "viewer")
        try await daemon.start()
        let store = try daemon.store()
        try await eventually("a has a deployment") {
            try await store.history("p-dev-a").first != nil
        }
        let id = try #require(try await store.history("p-dev-a").first?.id)
        let followed = try await daemon.cli(vera, "logs", "-f", id, "-o", "json")
        #expect(followed.status == 0, "\(followed.stderr)")
        let lines = followed.stdout.split(separator: "\n").map { try? Value(json: String($0)) }
        let recorded = try await store.events(of: id, after: nil, limit: 100).items
        #expect(lines.map { $0?["sequence"] } == recorded.map { .int(Int($0.sequence)) })
        #expect(lines.last??["message"] == "RUNNING -> COMPLETED")
        try await daemon.stop()
    }

    @Test func watch_resumedAfterItsLastChange_losesAndRepeatsNothing() async throws {
        let server = try await provisioner()
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(
            files: repository(url: server.url, instances: ["a": ["size": 1], "b": ["size": 1], "c": ["size": 1]]))
        let vera = try await daemon.token("vera", role: "viewer")
        try await daemon.start()
        let store = try daemon.store()
        try await eventually("every instance is deployed") {
            var done = 0
            for id in ["p-dev-a", "p-dev-b", "p-dev-c"] {
                if try await store.history(id).first?.status == .completed { done += 1 }
            }
            return done == 3
        }
        let feed = try await store.deploymentChanges(after: 0, limit: 100).map(\.sequence)
        #expect(feed.count == 9, "created, running and completed, three times")

        // A first watch from the start, cut off after four changes, then one resumed after the last it printed.
        let first = try await watchedSequences(daemon, token: vera, after: "0", count: 4)
        let second = try await watchedSequences(
            daemon, token: vera, after: String(first.last ?? 0), count: feed.count - first.count)
        #expect(first + second == feed)
        try await daemon.stop()
    }

    /// The sequences of the first `count` changes `converge watch --after AFTER -o json` prints; then it is stopped.
    func watchedSequences(_ daemon: DaemonProcess, token: String, after: String, count: Int) async throws -> [Int64] {
        let process = Process()
        process.executableURL = ConvergeBinary.executable
        process.arguments = ["watch", "--after", after, "-o", "json"]
        process.environment = ProcessInfo.processInfo.environment.merging([
            "CONVERGE_SERVER": "http://127.0.0.1:\(daemon.port)", "CONVERGE_TOKEN": token,
        ]) { $1 }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        let collected = Collected()
        output.fileHandleForReading.readabilityHandler = { handle in collected.append(handle.availableData) }
        defer { output.fileHandleForReading.readabilityHandler = nil }
        try await eventually("watch printed \(count) changes", timeout: .seconds(30)) {
            collected.lines.count >= count
        }
        return collected.lines.prefix(count).compactMap { line in
            (try? Value(json: line))?["sequence"].flatMap { if case .int(let n) = $0 { Int64(n) } else { nil } }
        }
    }
}

/// Bytes a process printed, split into lines as they arrive.
final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var buffer = Data()

    func append(_ data: Data) {
        lock.withLock { buffer.append(data) }
    }

    /// The complete lines so far.
    var lines: [String] {
        lock.withLock {
            String(decoding: buffer, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
                .dropLast().map(String.init)
        }
    }
}
