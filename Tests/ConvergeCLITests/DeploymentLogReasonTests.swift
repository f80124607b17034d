import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

/// Regression (issue 13): `converge logs ID` of a FAILED deployment showed `RUNNING -> FAILED` but not why. The
/// event of every FAILED, ABORTED and REJECTED names who ended it and why, so a log alone tells the story.
@Suite(.serialized) struct DeploymentLogReasonTests {
    @Test func logs_ofAFailedAndOfAnAbortedDeployment_showTheReasonAndTheActor() async throws {
        // Size 1 fails at once; size 2 is held long enough to be aborted while RUNNING.
        let server = try await LoopbackServer.start { _, request in
            let deployment = request.json?["deployment"] as? [String: Any]
            let size = (deployment?["params"] as? [String: Any])?["size"] as? Int
            return size == 1
                ? ScriptedResponse(status: 200, body: #"{"status": "failed", "error": "quota exceeded for db.r6g"}"#)
                : ScriptedResponse(status: 200, body: completedAnswer, delay: .seconds(30))
        }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(files: repository(url: server.url, instances: ["a": ["size": 1]]))
        let dora = try await daemon.token("dora", role: "deployer")
        try await daemon.start()
        let store = try daemon.store()
        func newest(_ status: Deployment.Status) async throws -> Deployment {
            try await eventually("a \(status.rawValue) deployment", timeout: .seconds(30)) {
                try await store.history("p-dev-a").first?.status == status
            }
            return try #require(try await store.history("p-dev-a").first)
        }

        let failed = try await newest(.failed)
        let failedLog = try await daemon.cli(dora, "logs", failed.id)
        #expect(failedLog.status == 0, "\(failedLog.stderr)")
        let ending = try #require(failedLog.stdout.split(separator: "\n").last { $0.contains("RUNNING -> FAILED") })
        #expect(ending.contains("RUNNING -> FAILED by "), "the daemon that ran it: \(ending)")
        #expect(ending.hasSuffix(": quota exceeded for db.r6g"), "\(ending)")

        try daemon.write(repository(url: server.url, instances: ["a": ["size": 2]]))
        let running = try await newest(.running)
        let aborted = try await daemon.cli(dora, "abort", running.id, "--reason", "wrong window")
        #expect(aborted.status == 0, "\(aborted.stderr)")
        let abortedLog = try await daemon.cli(dora, "logs", running.id)
        #expect(abortedLog.stdout.contains("RUNNING -> ABORTED by dora: wrong window"), "\(abortedLog.stdout)")
        let json = try await daemon.cli(dora, "logs", running.id, "-o", "json")
        #expect(json.stdout.contains(#""actor":"dora""#) || json.stdout.contains(#""actor": "dora""#), "\(json.stdout)")
        try await daemon.stop()
    }
}
