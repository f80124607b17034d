import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

/// Drift checks end to end: the daemon plans a drift-checked environment's instances on its schedule with the example
/// provisioner, which compares its state with what converge last applied; a user sees a changed instance drifted.
@Suite(.serialized) struct DriftTests {
    @Test func outOfBandChange_isReportedDrifted_andListedByGetInstancesDrifted() async throws {
        let provisioner = try ExampleProvisioner(delay: 0, secret: nil)
        defer { withExtendedLifetime(provisioner) {} }
        var files = repository(
            url: "http://127.0.0.1:\(provisioner.port)/apply", instances: ["a": ["size": 1], "b": ["size": 2]])
        files["base.yaml"] = files["base.yaml"]!.replacingOccurrences(
            of: "spec: {policy: auto}", with: "spec: {policy: auto, driftCheck: {every: 2s}}")
        let daemon = try DaemonProcess(files: files)
        try await daemon.start()
        let store = try daemon.store()
        try await eventually("a and b are provisioned", timeout: .seconds(60)) {
            for id in ["p-dev-a", "p-dev-b"] where (try? await store.instance(id))?.status != .provisioned {
                return false
            }
            return true
        }
        let viewer = try await daemon.token("vera", role: "viewer")
        func drifted() async throws -> [String] {
            let listed = try await daemon.cli(viewer, "get", "instances", "--drifted", "-o", "json")
            #expect(listed.status == 0, "\(listed.stderr)")
            return try Value(json: listed.stdout)["items"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
        }
        // Checked, and not drifted: the provisioner's state is what converge applied.
        try await eventually("a drift check of a completed", timeout: .seconds(60)) {
            try await store.history("p-dev-a").contains {
                $0.action == .plan && $0.status == .completed && $0.snapshot.metadata["driftCheck"] == true
            }
        }
        #expect(try await drifted().isEmpty)

        // Someone changes a's infrastructure behind converge's back.
        let stateFile = provisioner.state.appendingPathComponent("p-dev-a.json")
        var applied = try Value(json: String(contentsOf: stateFile, encoding: .utf8))
        #expect(applied["params"] == ["size": 1])
        applied = applied.merged(with: ["params": ["size": 5]])
        try applied.canonicalJSON.write(to: stateFile, atomically: true, encoding: .utf8)

        try await eventually("a is listed drifted", timeout: .seconds(60)) { try await drifted() == ["p-dev-a"] }
        let instance = try await daemon.cli(viewer, "get", "instances", "p-dev-a", "-o", "json")
        let condition = try Value(json: instance.stdout)["conditions"]?.arrayValue?.first { $0["type"] == "Drifted" }
        #expect(condition?["status"] == true)
        #expect(condition?["reason"] == "Drifted")
        #expect(condition?["message"]?.stringValue?.contains("1 change: size") == true)
        let described = try await daemon.cli(viewer, "describe", "instances", "p-dev-a")
        #expect(described.stdout.contains("Drifted"))
        let b = try await daemon.cli(viewer, "get", "instances", "p-dev-b", "-o", "json")
        let bDrifted = try Value(json: b.stdout)["conditions"]?.arrayValue?.first { $0["type"] == "Drifted" }
        #expect(bDrifted?["status"] == false)
        // The plans of a drift check move nothing: a is still provisioned with what converge applied.
        #expect(try await store.instance("p-dev-a").params == ["size": 1])
        #expect(try await store.instance("p-dev-a").status == .provisioned)

        let metrics = try await daemon.getText("/metrics")
        #expect(metrics.contains("converge_drift_plans_queued_total"), "\(metrics)")
        let gauge = metrics.split(separator: "\n").first { $0.hasPrefix("converge_instances_drifted ") }
        #expect(gauge.flatMap { Double($0.split(separator: " ").last ?? "") } == 1, "\(metrics)")

        // Put back as it was: the next check clears it.
        try applied.merged(with: ["params": ["size": 1]]).canonicalJSON.write(
            to: stateFile, atomically: true, encoding: .utf8)
        try await eventually("a is no longer drifted", timeout: .seconds(60)) { try await drifted().isEmpty }
        try await daemon.stop()
    }
}
