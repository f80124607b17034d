import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

/// `converge serve` run as a user would: the real binary, a temporary SQLite file, a provisioner on loopback.
@Suite(.serialized) struct DaemonTests {
    /// The deployments of instance `name` of the test repository, newest first.
    func history(_ daemon: DaemonProcess, _ name: String) async throws -> [Deployment] {
        try await daemon.store().history("p-dev-\(name)")
    }

    func instance(of request: RecordedRequest) -> String? {
        (request.json?["deployment"] as? [String: Any])?["instance"] as? String
    }

    @Test func manifestEdit_createsOneDeployment_andAnUnchangedResyncOrRestartCreatesNone() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200, body: completedAnswer) }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(
            files: repository(url: server.url, instances: ["a": ["size": 1], "b": ["size": 1]]))
        try await daemon.start()
        try await eventually("a and b are deployed") {
            let a = try await history(daemon, "a").first?.status
            let b = try await history(daemon, "b").first?.status
            return a == .completed && b == .completed
        }
        try daemon.write(repository(url: server.url, instances: ["a": ["size": 2], "b": ["size": 1]]))
        #expect(try await daemon.sync() == 202)
        try await eventually("the edit of a is deployed") {
            let deployments = try await history(daemon, "a")
            return deployments.count == 2 && deployments.first?.status == .completed
        }
        #expect(try await history(daemon, "a").first?.snapshot.params == ["size": 2])

        // Unchanged resyncs, then a restart: once a later edit of b is deployed, they have been processed too.
        #expect(try await daemon.sync() == 202)
        #expect(try await daemon.stop() == 0)
        try await daemon.start()
        try await eventually("the daemon is ready again") { await daemon.isReady() }
        try daemon.write(repository(url: server.url, instances: ["a": ["size": 2], "b": ["size": 3]]))
        try await eventually("the edit of b is deployed") {
            let deployments = try await history(daemon, "b")
            return deployments.count == 2 && deployments.first?.status == .completed
        }
        #expect(try await history(daemon, "a").count == 2)
        #expect(await server.requests.count == 4)
        try await daemon.stop()
    }

    @Test func sighup_rereadsTheManifests() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200, body: completedAnswer) }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(
            files: repository(url: server.url, instances: ["a": ["size": 1]]), arguments: ["--poll-seconds", "3600"])
        try await daemon.start()
        try await eventually("a is deployed") { try await history(daemon, "a").first?.status == .completed }
        try daemon.write(repository(url: server.url, instances: ["a": ["size": 2]]))
        kill(try #require(daemon.process).processIdentifier, SIGHUP)
        try await eventually("the edit is deployed") {
            let deployments = try await history(daemon, "a")
            return deployments.count == 2 && deployments.first?.status == .completed
        }
        #expect(try await daemon.stop() == 0)
        #expect(daemon.logText.contains("store closed"))
    }

    @Test func serverErrors_thenSuccess_completeOneDeploymentWithOneIdempotencyKey() async throws {
        let server = try await LoopbackServer.start { index, _ in
            index <= 2
                ? ScriptedResponse(status: 500, body: "busy") : ScriptedResponse(status: 200, body: completedAnswer)
        }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(files: repository(url: server.url, instances: ["a": ["size": 1]]))
        try await daemon.start()
        try await eventually("a completes") { try await history(daemon, "a").first?.status == .completed }
        let deployments = try await history(daemon, "a")
        #expect(deployments.count == 1)
        let keys = await server.requests.map { $0.header("Idempotency-Key") }
        #expect(keys == Array(repeating: "\(deployments[0].id)/1", count: 3))
        #expect(try await daemon.store().instance("p-dev-a").outputs == ["out": ["id": "x"]])
        try await daemon.stop()
    }

    @Test func hangingProvisioner_failsTheDeploymentAfterItsTimeout() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200, delay: .seconds(30)) }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(
            files: repository(url: server.url, timeoutSeconds: 1, instances: ["a": ["size": 1]]))
        try await daemon.start()
        try await eventually("a fails") { try await history(daemon, "a").first?.status == .failed }
        #expect(
            try await history(daemon, "a").first?.error?.hasPrefix("webhook call failed: no response within 1") == true)
        #expect(try await daemon.store().instance("p-dev-a").status == .failed)
        try await daemon.stop()
    }

    @Test func provisionerSilentAfterAccepting_keepsItsLease_andFailsAtItsTimeout() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 202) }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(
            files: repository(url: server.url, timeoutSeconds: 5, instances: ["a": ["size": 1]]),
            arguments: ["--lease-seconds", "2"])
        try await daemon.start()
        try await eventually("a fails", timeout: .seconds(30)) {
            try await history(daemon, "a").first?.status == .failed
        }
        let deployment = try #require(try await history(daemon, "a").first)
        #expect(
            deployment.error?.hasPrefix("timed out: no verdict from the provisioner within its timeout of 5s") == true)
        // Longer than two leases, and the daemon renewed its own lease meanwhile: no takeover, no second call.
        #expect(await server.requests.map { $0.header("Idempotency-Key") } == ["\(deployment.id)/1"])
        try await daemon.stop()
    }

    @Test func acceptedDeployment_isCompletedByItsCallbacks_andForeignCallbacksAreRefused() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 202) }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(files: repository(url: server.url, instances: ["a": ["size": 1]]))
        try await daemon.start()
        try await eventually("the provisioner is called") { await server.requests.count == 1 }
        let request = try #require(await server.requests.first)
        let callback = try #require(request.json?["callback"] as? [String: String])
        let path = try #require(URL(string: callback["url"]!)).path
        let token = try #require(callback["token"])
        func report(_ body: String, token: String, to path: String) async throws -> Int {
            try await daemon.post(path, body: Data(body.utf8), headers: ["Authorization": "Bearer \(token)"]).status
        }
        #expect(
            try await report(
                #"{"type": "completed", "attempt": 1}"#, token: String(repeating: "0", count: 64), to: path) == 401)
        #expect(try await report(#"{"type": "bogus", "attempt": 1}"#, token: token, to: path) == 400)
        #expect(
            try await report(#"{"type": "log", "attempt": 1, "message": "applying"}"#, token: token, to: path) == 204)
        #expect(try await report(#"{"type": "heartbeat", "attempt": 1}"#, token: token, to: path) == 204)
        let done = #"{"type": "completed", "attempt": 1, "outputs": {"out": {"id": "async"}}}"#
        #expect(try await report(done, token: token, to: path) == 204)
        #expect(try await report(done, token: token, to: path) == 412)
        let deployment = try #require(try await history(daemon, "a").first)
        #expect(deployment.status == .completed)
        #expect(deployment.outputs == ["out": ["id": "async"]])
        let events = try await daemon.store().events(of: deployment.id, after: nil, limit: 100).items.map(\.message)
        #expect(events.contains("applying"))
        try await daemon.stop()
        // Issue 13: a callback ending the deployment is its usual end, not a lost lease.
        #expect(!daemon.logText.contains("stopping the provisioner call"), "\(daemon.logTail())")
    }

    @Test func malformedManifestsWhileRunning_keepTheLastGoodStateAndShowTheErrors() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200, body: completedAnswer) }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(files: repository(url: server.url, instances: ["a": ["size": 1]]))
        try await daemon.start()
        try await eventually("a is deployed") { try await history(daemon, "a").first?.status == .completed }
        var broken = repository(url: server.url, instances: ["a": ["size": 5]])
        broken["a.yaml"]! += "\n  surprise: true\n"
        try daemon.write(broken)
        #expect(try await daemon.sync() == 202)
        var readiness: [String: Any] = [:]
        func refused() -> [String: Any]? {
            ((readiness["checks"] as? [String: Any])?["manifests"] as? [String: Any])?["refused"] as? [String: Any]
        }
        try await eventually("readyz shows the error") {
            readiness = try await daemon.get("/readyz").body
            return refused() != nil
        }
        #expect(refused()?["errors"] as? [String] == [#"a.yaml:8:3: spec.surprise: unknown field "surprise""#])
        #expect(readiness["serving"] as? Bool == true)
        #expect(readiness["ready"] as? Bool == false)
        #expect(try await history(daemon, "a").count == 1)
        #expect(
            try await daemon.store().desiredState().resources.contains { $0.resource.spec["params"] == ["size": 1] })
        try await daemon.stop()
    }

    @Test func killNine_inTheMiddleOf50Deployments_thenRestart_losesAndDuplicatesNothing() async throws {
        let server = try await LoopbackServer.start { _, _ in
            ScriptedResponse(status: 200, body: completedAnswer, delay: .milliseconds(150))
        }
        defer { Task { await server.stop() } }
        let names = (0..<25).map { "i\($0)" }
        let first = Dictionary(uniqueKeysWithValues: names.map { ($0, Value.object(["size": 1])) })
        let second = Dictionary(uniqueKeysWithValues: names.map { ($0, Value.object(["size": 2])) })
        let daemon = try DaemonProcess(
            files: repository(url: server.url, instances: first),
            arguments: ["--lease-seconds", "2", "--max-concurrent-deployments", "4"])
        try await daemon.start()
        try await eventually("the first deployments run") { await server.requests.count >= 4 }
        try daemon.write(repository(url: server.url, instances: second))
        #expect(try await daemon.sync() == 202)
        let store = try daemon.store()
        try await eventually("all 50 deployments exist") {
            var count = 0
            for name in names {
                count += try await store.history("p-dev-\(name)").count
            }
            return count == 50
        }
        try await eventually("some deployments completed") { await server.requests.count >= 12 }
        #expect(try await daemon.stop(signal: SIGKILL) == SIGKILL)
        var runningAtKill = 0
        for name in names {
            runningAtKill += try await store.history("p-dev-\(name)").filter {
                $0.status == .running
            }.count
        }
        #expect(runningAtKill > 0, "nothing was running when the daemon was killed: the test proves nothing")
        try await daemon.start()
        try await eventually("every deployment ends", timeout: .seconds(90)) {
            for name in names {
                let items = try await store.history("p-dev-\(name)")
                if items.count != 2 || items.contains(where: { !$0.status.isTerminal }) { return false }
            }
            return true
        }
        try await daemon.stop()

        var deployments: [Deployment] = []
        for name in names { deployments += try await store.history("p-dev-\(name)") }
        #expect(deployments.count == 50)
        #expect(deployments.allSatisfy { $0.status == .completed })
        let requests = await server.requests
        var keysByDeployment: [String: Set<String>] = [:]
        for request in requests {
            let id = try #require(request.header("X-Converge-Deployment"))
            keysByDeployment[id, default: []].insert(request.header("Idempotency-Key") ?? "")
        }
        #expect(keysByDeployment.count == 50)
        #expect(keysByDeployment.values.allSatisfy { $0.count == 1 }, "a deployment was sent under two keys")
        // Never two deployments of one instance at the provisioner at once.
        for name in names {
            let calls = requests.filter { instance(of: $0) == "p-dev-\(name)" }
            for (a, b) in zip(calls, calls.dropFirst())
            where a.header("X-Converge-Deployment") != b.header("X-Converge-Deployment") {
                let end = try #require(a.answeredAt ?? Optional(.now))
                #expect(b.receivedAt >= end, "\(name): two deployments ran at once")
            }
        }
    }
}
