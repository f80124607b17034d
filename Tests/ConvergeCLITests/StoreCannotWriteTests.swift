import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

/// Regression (issue 13): `/readyz` answered 200 while the database's disk was full and every write failed.
///
/// The real binary, whose files stop growing: its file size limit is lowered to 0 while it runs (`prlimit`), so
/// every write SQLite makes fails in the kernel as on a full disk, with no privilege needed (a tmpfs to fill needs
/// one); lifting the limit is freeing the space.
@Suite(.serialized, .timeLimit(.minutes(3))) struct StoreCannotWriteTests {
    @Test func writesFailing_readyzIs503WithTheReason_thenReadyAgain_andNoDeploymentLost() async throws {
        let provisioner = try await RecordingProvisioner.start(delay: .fixed(.seconds(1)))
        defer { Task { await provisioner.stop() } }
        let names = (0..<6).map { "i\($0)" }
        let daemon = try DaemonProcess(
            files: repository(
                url: provisioner.url,
                instances: Dictionary(uniqueKeysWithValues: names.map { ($0, ["size": 1] as Value) })),
            arguments: ["--max-concurrent-deployments", "1", "--lease-seconds", "2"])
        try await daemon.start()
        let vera = try await daemon.token("vera", role: "viewer")
        func counts() async throws -> [Deployment.Status: Int] {
            try await daemon.store().deploymentCounts().filter { $0.value > 0 }
        }
        // One deployment at a time: the first is in flight, the others wait in the queue.
        try await eventually("every deployment is created and the first call is in flight") {
            let started = await provisioner.applies.count
            return try await counts().values.reduce(0, +) == names.count && started > 0
        }
        #expect(await daemon.isReady())

        try daemon.limitFileSize(to: 0)
        var readiness: (status: Int, body: [String: Any]) = (0, [:])
        try await eventually("/readyz says the store cannot write") {
            readiness = try await daemon.get("/readyz")
            return readiness.status == 503
        }
        let check = (readiness.body["checks"] as? [String: Any])?["store"] as? String
        #expect(check?.hasPrefix("cannot write: ") == true, "\(readiness.body)")
        #expect(readiness.body["serving"] as? Bool == false)
        let status = try await daemon.cli(vera, "status")
        #expect(status.status == 1, "\(status.stdout)\(status.stderr)")
        #expect(status.stdout.contains("store:     cannot write: "), "\(status.stdout)\(status.stderr)")
        // Still so once the call in flight has ended: its outcome could not be recorded either.
        try await eventually("the first call ended") { await provisioner.applies.first?.endedAt != nil }
        try await eventually("a readiness check after it") {
            let after = try await daemon.get("/readyz")
            return after.status == 503 && (after.body["checks"] as? [String: Any])?["store"] as? String == check
        }
        let stuck = try await counts()
        #expect(stuck[.completed, default: 0] < names.count, "\(stuck)")

        // Space freed: ready again, and every deployment completes, none failed or lost.
        try daemon.limitFileSize(to: nil)
        try await eventually("ready again", timeout: .seconds(30)) { await daemon.isReady() }
        #expect(
            try await daemon.get("/readyz").body["checks"].flatMap { ($0 as? [String: Any])?["store"] as? String }
                == "ok")
        try await eventually("every deployment completed", timeout: .seconds(90)) {
            try await counts() == [.completed: names.count]
        }
        for name in names {
            #expect(try await daemon.store().instance("p-dev-\(name)").status == .provisioned)
        }
        #expect(await provisioner.overlappingCalls.isEmpty)
        try await daemon.stop()
    }
}
