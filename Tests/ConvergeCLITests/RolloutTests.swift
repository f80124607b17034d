import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Synchronization
import Testing

/// `converge env deploy|decommission`: whole environments in waves from their connections, through the real daemon
/// and CLI against a provisioner on loopback that records when each call came and was answered.
@Suite(.serialized) struct RolloutTests {
    /// Six instances wired as a diamond and a tail: a → b, c → d → e, f.
    static func diamond(url: String, policy: String = "auto") -> [String: String] {
        var files = repository(url: url, instances: ["a": ["size": 1]], policy: policy)
        files["join.yaml"] = """
            apiVersion: converge/v1
            kind: Bundle
            metadata: {name: join}
            spec:
              provisioner: hook
              connections: {left: {type: thing-out}, right: {type: thing-out}}
              artifacts: {out: {type: thing-out}}
            """
        let wiring = [
            "b": ("child", "{upstream: a.out}"), "c": ("child", "{upstream: a.out}"),
            "d": ("join", "{left: b.out, right: c.out}"), "e": ("child", "{upstream: d.out}"),
            "f": ("child", "{upstream: d.out}"),
        ]
        for (name, (bundle, connections)) in wiring {
            files["\(name).yaml"] = """
                apiVersion: converge/v1
                kind: Instance
                metadata: {name: \(name), project: p, environment: dev}
                spec: {bundle: \(bundle), version: 1.0.0, connections: \(connections)}
                """
        }
        return files
    }

    static let waves = [["p-dev-a"], ["p-dev-b", "p-dev-c"], ["p-dev-d"], ["p-dev-e", "p-dev-f"]]

    /// The instances whose provisions the test provisioner fails, changed as a test goes.
    final class Failing: Sendable {
        let instances = Mutex<Set<String>>([])
        /// How long each answer takes.
        let delay = Mutex<Duration>(.milliseconds(100))
        func set(_ instances: Set<String>) { self.instances.withLock { $0 = instances } }
        func contains(_ instance: String) -> Bool { instances.withLock { $0.contains(instance) } }
    }

    /// A provisioner answering after `delay`, failing the provisions of the instances in `failing`.
    static func provisioner(failing: Failing) async throws
        -> LoopbackServer
    {
        try await LoopbackServer.start { _, request in
            let deployment = request.json?["deployment"] as? [String: Any]
            let instance = deployment?["instance"] as? String ?? ""
            let action = deployment?["action"] as? String ?? ""
            let delay = failing.delay.withLock { $0 }
            if action == "provision" && failing.contains(instance) {
                return ScriptedResponse(status: 200, body: #"{"status": "failed", "error": "boom"}"#, delay: delay)
            }
            return ScriptedResponse(status: 200, body: completedAnswer, delay: delay)
        }
    }

    /// The calls of `action` the provisioner received after the first `skipping`, by instance.
    static func calls(_ server: LoopbackServer, action: String, skipping: Int = 0) async -> [String: RecordedRequest] {
        var calls: [String: RecordedRequest] = [:]
        for request in await server.requests.dropFirst(skipping) {
            let deployment = request.json?["deployment"] as? [String: Any]
            guard deployment?["action"] as? String == action, let instance = deployment?["instance"] as? String
            else { continue }
            calls[instance] = request
        }
        return calls
    }

    /// Every call of a wave came after every call of the wave before was answered.
    static func expectOrder(_ calls: [String: RecordedRequest], waves: [[String]]) {
        for (earlier, later) in zip(waves, waves.dropFirst()) {
            for before in earlier {
                for after in later {
                    guard let first = calls[before], let second = calls[after], let answered = first.answeredAt else {
                        Issue.record("missing call of \(before) or \(after)")
                        continue
                    }
                    #expect(second.receivedAt >= answered, "\(after) was called before \(before) was answered")
                }
            }
        }
    }

    @Test func decommissionAndDeploy_goInWaves_aRerunChangesNothing_andAFailureStopsTheLaterWaves() async throws {
        let failing = Failing()
        let server = try await Self.provisioner(failing: failing)
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(files: Self.diamond(url: server.url))
        let dora = try await daemon.token("dora", role: "deployer")
        try await daemon.start()
        let store = try daemon.store()
        let all = Self.waves.flatMap { $0 }
        func statuses() async throws -> [InstanceStatus?] {
            var statuses: [InstanceStatus?] = []
            for id in all { statuses.append(try? await store.instance(id).status) }
            return statuses
        }
        try await eventually("the reconciler deploys the diamond") {
            try await statuses().allSatisfy { $0 == .provisioned }
        }

        // Down, downstream first; it stays down.
        var seen = await server.requests.count
        let down = try await daemon.cli(dora, "env", "decommission", "p-dev", "--follow")
        #expect(down.status == 0, "\(down.stderr)")
        #expect(down.stdout.contains("decommission p-dev COMPLETED, wave 4/4"), "\(down.stdout)")
        #expect(try await statuses().allSatisfy { $0 == .decommissioned })
        Self.expectOrder(await Self.calls(server, action: "decommission", skipping: seen), waves: Self.waves.reversed())
        #expect(try await daemon.cli(dora, "sync").status == 0)
        let held = try await store.instance("p-dev-a").conditions.first { $0.type == .progressing }
        #expect(held?.reason == "EnvironmentDecommissioned", "\(String(describing: held))")
        #expect(await Self.calls(server, action: "provision", skipping: seen).isEmpty, "nothing came back up")
        let calls = await server.requests.count
        let downAgain = try await daemon.cli(dora, "env", "decommission", "p-dev", "-o", "json")
        #expect(downAgain.status == 0, "\(downAgain.stderr)")
        #expect(try Value(json: downAgain.stdout)["status"] == "COMPLETED")
        #expect(
            try Value(json: downAgain.stdout)["items"]?.arrayValue?.compactMap { $0["outcome"]?.stringValue }
                == Array(repeating: "unchanged", count: 6))
        #expect(await server.requests.count == calls, "nothing is decommissioned twice")

        // Up again, upstream first, each wave after the one before completed.
        seen = await server.requests.count
        let up = try await daemon.cli(dora, "env", "deploy", "p-dev", "--follow")
        #expect(up.status == 0, "\(up.stderr)")
        #expect(up.stderr.contains("wave 4 of 4"), "\(up.stderr)")
        #expect(try await statuses().allSatisfy { $0 == .provisioned })
        Self.expectOrder(await Self.calls(server, action: "provision", skipping: seen), waves: Self.waves)

        // Again: every instance is as declared, so nothing is deployed.
        seen = await server.requests.count
        let again = try await daemon.cli(dora, "env", "deploy", "p-dev", "--follow", "-o", "json")
        #expect(again.status == 0, "\(again.stderr)")
        let outcomes = try Value(json: again.stdout)["items"]?.arrayValue?.compactMap { $0["outcome"]?.stringValue }
        #expect(outcomes == Array(repeating: "unchanged", count: 6))
        #expect(await server.requests.count == seen)

        // A failure in the second wave stops the rollout there: d, e and f are never deployed.
        #expect(try await daemon.cli(dora, "env", "decommission", "p-dev", "--follow").status == 0)
        failing.set(["p-dev-b"])
        seen = await server.requests.count
        let failed = try await daemon.cli(dora, "env", "deploy", "p-dev", "--follow")
        #expect(failed.status == 3, "\(failed.stdout) \(failed.stderr)")
        #expect(failed.stderr.contains("failed: instance p-dev-b: deployment"), "\(failed.stderr)")
        #expect(try await daemon.cli(dora, "sync").status == 0)
        let provisioned = await Self.calls(server, action: "provision", skipping: seen)
        #expect(Set(provisioned.keys) == ["p-dev-a", "p-dev-b", "p-dev-c"])
        let waiting = try await store.instance("p-dev-d").conditions.first { $0.type == .progressing }
        #expect(waiting?.reason == "WaitingForRollout", "\(String(describing: waiting))")
        #expect(waiting?.message.contains("stopped at wave 2") == true)
        let listed = try await daemon.cli(dora, "env", "rollouts", "p-dev", "-o", "json")
        let rollouts = try Value(json: listed.stdout)["items"]?.arrayValue ?? []
        #expect(
            rollouts.compactMap { $0["status"]?.stringValue } == [
                "FAILED", "COMPLETED", "COMPLETED", "COMPLETED", "COMPLETED", "COMPLETED",
            ])

        // Fixed, a new rollout finishes the job.
        failing.set([])
        let fixed = try await daemon.cli(dora, "env", "deploy", "p-dev", "--follow")
        #expect(fixed.status == 0, "\(fixed.stderr)")
        #expect(try await statuses().allSatisfy { $0 == .provisioned })

        // Bad input changes nothing.
        let unknown = try await daemon.cli(dora, "env", "deploy", "p-nope")
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("environment p-nope not found (not_found)"), "\(unknown.stderr)")
    }

    @Test func aSecondDeploy_replacesTheFirst_abortingWhatHadNotStarted() async throws {
        let failing = Failing()
        let server = try await Self.provisioner(failing: failing)
        defer { Task { await server.stop() } }
        var files = Self.diamond(url: server.url)
        files["g.yaml"] = """
            apiVersion: converge/v1
            kind: Instance
            metadata: {name: g, project: p, environment: dev}
            spec: {bundle: thing, version: 1.0.0}
            """
        let daemon = try DaemonProcess(files: files, arguments: ["--max-concurrent-deployments", "1"])
        let dora = try await daemon.token("dora", role: "deployer")
        try await daemon.start()
        let store = try daemon.store()
        try await eventually("the reconciler deploys everything", timeout: .seconds(60)) {
            for id in Self.waves.flatMap({ $0 }) + ["p-dev-g"]
            where (try? await store.instance(id))?.status != .provisioned {
                return false
            }
            return true
        }
        #expect(try await daemon.cli(dora, "env", "decommission", "p-dev", "--follow").status == 0)

        // The first wave holds a and g; with one slot, one runs (slowly) and the other waits queued.
        failing.delay.withLock { $0 = .seconds(2) }
        let first = try await daemon.cli(dora, "env", "deploy", "p-dev", "-o", "json")
        #expect(first.status == 0, "\(first.stderr)")
        let firstID = try #require(try Value(json: first.stdout)["id"]?.stringValue)
        let second = try await daemon.cli(dora, "env", "deploy", "p-dev", "-o", "json")
        #expect(second.status == 0, "\(second.stderr)")
        let secondID = try #require(try Value(json: second.stdout)["id"]?.stringValue)

        let replaced = try await store.rollout(firstID)
        #expect(replaced.status == .replaced)
        #expect(replaced.replacedBy == secondID)
        var aborted = 0
        for item in replaced.items where item.deploymentID != nil {
            let deployment = try await store.deployment(item.deploymentID!)
            if deployment.status == .aborted {
                aborted += 1
                #expect(deployment.error == "rollout \(firstID) was replaced by rollout \(secondID)")
                #expect(deployment.startedAt == nil, "only what had not started is aborted")
            }
        }
        #expect(aborted == 1, "the queued one of a and g")
        failing.delay.withLock { $0 = .milliseconds(100) }

        let followed = try await daemon.cli(dora, "env", "rollouts", "--id", secondID, "--follow", "--timeout", "120")
        #expect(followed.status == 0, "\(followed.stderr)")
        for id in Self.waves.flatMap({ $0 }) + ["p-dev-g"] {
            #expect(try await store.instance(id).status == .provisioned, "\(id)")
        }
        let audit = try await daemon.cli(dora, "audit", "--action", "rollout.replaced", "-o", "json")
        #expect(audit.stdout.contains(firstID), "the replacement is audited")
    }

    @Test func killedMidRollout_andRestartedAfterItsLeasesExpired_finishesItWithoutDuplicates() async throws {
        let failing = Failing()
        let server = try await Self.provisioner(failing: failing)
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(files: Self.diamond(url: server.url), arguments: ["--lease-seconds", "2"])
        let dora = try await daemon.token("dora", role: "deployer")
        try await daemon.start()
        let store = try daemon.store()
        let all = Self.waves.flatMap { $0 }
        try await eventually("the reconciler deploys the diamond") {
            for id in all where (try? await store.instance(id))?.status != .provisioned { return false }
            return true
        }
        #expect(try await daemon.cli(dora, "env", "decommission", "p-dev", "--follow").status == 0)

        // Killed while the second wave runs.
        failing.delay.withLock { $0 = .seconds(1) }
        let started = try await daemon.cli(dora, "env", "deploy", "p-dev", "-o", "json")
        let id = try #require(try Value(json: started.stdout)["id"]?.stringValue)
        try await eventually("the second wave runs") { try await store.rollout(id).wave >= 1 }
        _ = try await daemon.stop(signal: SIGKILL)
        try await eventually("what it held has expired") { try await store.leasesExpired(of: all) }
        failing.delay.withLock { $0 = .milliseconds(100) }
        try await daemon.start()

        let followed = try await daemon.cli(dora, "env", "rollouts", "--id", id, "--follow", "--timeout", "60")
        #expect(followed.status == 0, "\(followed.stdout) \(followed.stderr)")
        let rollout = try await store.rollout(id)
        for item in rollout.items {
            #expect(item.outcome == .completed, "\(item.instance)")
            let provisions = try await store.history(item.instance).filter {
                $0.action == .provision && $0.createdAt >= rollout.createdAt
            }
            #expect(provisions.count == 1, "\(item.instance): one deployment, resumed, not repeated")
        }
        Self.expectOrder(await Self.calls(server, action: "provision", skipping: 0), waves: Self.waves)
    }
}
