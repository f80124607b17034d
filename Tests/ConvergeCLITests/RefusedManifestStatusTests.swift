import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

@testable import converge

/// Regression (issue 13): with broken manifests `converge status` said `ready: true` and listed the problems
/// comma-joined on one line, while the daemon logged the same error on every poll.
@Suite(.serialized) struct RefusedManifestStatusTests {
    /// A file with two errors: two unknown fields.
    static let broken = """
        apiVersion: converge/v1
        kind: Instance
        metadata: {name: extra, project: ecomm, environment: staging}
        spec:
          bundle: aws-rds-postgres
          surprise: true
          colour: blue
        """

    /// The manifests check of the daemon's readiness answer.
    func manifestsCheck(_ daemon: DaemonProcess) async throws -> [String: Any] {
        let body = try await daemon.get("/readyz").body
        return try #require((body["checks"] as? [String: Any])?["manifests"] as? [String: Any])
    }

    /// Waits until the daemon has read its manifests `count` more times (it polls every second).
    func polls(_ count: Int, of daemon: DaemonProcess) async throws {
        func checkedAt() async throws -> Date? {
            (try await manifestsCheck(daemon)["checkedAt"] as? String).flatMap { try? Date($0, strategy: .iso8601) }
        }
        let start = try #require(try await checkedAt())
        try await eventually("\(count) more reads of the manifests", timeout: .seconds(Int64(count) * 5)) {
            try await checkedAt().map { $0.timeIntervalSince(start) >= Double(count) } == true
        }
    }

    func lines(_ daemon: DaemonProcess, containing text: String) -> Int {
        daemon.logText.split(separator: "\n").count { $0.contains(text) }
    }

    @Test func brokenManifests_statusShowsTheRefusedLoadAndFails_logsOnce_andRecovers() async throws {
        let provisioner = try ExampleProvisioner()
        defer { withExtendedLifetime(provisioner) {} }
        let daemon = try await provisioner.startDaemon()
        let vera = try await daemon.token("vera", role: "viewer")
        try await eventually("the first load") { try await manifestsCheck(daemon)["loadedAt"] != nil }
        let good = try await daemon.cli(vera, "status")
        #expect(good.status == 0, "\(good.stdout)\(good.stderr)")
        #expect(good.stdout.contains("ready:     true"), "\(good.stdout)")
        // The one daemon of a SQLite file lists itself, with its version.
        #expect(good.stdout.contains("daemons:   1 alive"), "\(good.stdout)")
        #expect(good.stdout.contains(", version \(convergeVersion), since "), "\(good.stdout)")

        // Broken: the daemon keeps serving the last good load, status says so and fails, each error on its line.
        let brokenFile = daemon.manifests.appendingPathComponent("broken.yaml")
        try Self.broken.write(to: brokenFile, atomically: true, encoding: .utf8)
        try await eventually("the load is refused") { try await manifestsCheck(daemon)["refused"] != nil }
        let refused = try await daemon.cli(vera, "status")
        #expect(refused.status == 1, "\(refused.stdout)")
        let output = refused.stdout.split(separator: "\n").map(String.init)
        #expect(output.contains("ready:     false"), "\(refused.stdout)")
        #expect(output.contains("serving:   true"), "\(refused.stdout)")
        #expect(output.contains { $0.hasPrefix("manifests: version ") && $0.contains("last good at ") })
        #expect(output.contains { $0.hasPrefix("refused:   the latest load, since ") && $0.contains("(2 errors)") })
        let errors = output.filter { $0.hasPrefix("  broken.yaml:") }
        #expect(errors.count == 2, "\(refused.stdout)")
        #expect(errors.contains { $0.hasPrefix("  broken.yaml:6:3: spec.surprise: unknown field") }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("  broken.yaml:7:3: spec.colour: unknown field") }, "\(errors)")
        let readyz = try await daemon.get("/readyz")
        #expect(readyz.status == 200, "the daemon still serves its last good load")
        #expect(readyz.body["ready"] as? Bool == false)
        #expect(readyz.body["serving"] as? Bool == true)
        let json = try Value(json: try await daemon.cli(vera, "status", "-o", "json").stdout)
        #expect(json["checks"]?["manifests"]?["refused"]?["errors"]?.arrayValue?.count == 2)

        // The same errors at every poll: one log line.
        try await polls(3, of: daemon)
        #expect(lines(daemon, containing: "manifest load refused") == 1, "\(daemon.logTail())")

        // Fixed: ready again, one line says so; broken differently: one more refusal line.
        try FileManager.default.removeItem(at: brokenFile)
        try await eventually("the load is accepted") { try await manifestsCheck(daemon)["refused"] == nil }
        let fixed = try await daemon.cli(vera, "status")
        #expect(fixed.status == 0, "\(fixed.stdout)")
        #expect(!fixed.stdout.contains("refused"), "\(fixed.stdout)")
        #expect(lines(daemon, containing: "manifest load accepted again") == 1, "\(daemon.logTail())")
        try Self.broken.replacingOccurrences(of: "\n  colour: blue", with: "")
            .write(to: brokenFile, atomically: true, encoding: .utf8)
        try await eventually("the other load is refused") { try await manifestsCheck(daemon)["refused"] != nil }
        try await polls(2, of: daemon)
        #expect(lines(daemon, containing: "manifest load refused") == 2, "\(daemon.logTail())")
        try await daemon.stop()
    }
}
