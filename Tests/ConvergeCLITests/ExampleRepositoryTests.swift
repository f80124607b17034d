import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Crypto
import Foundation
import Testing

/// What `make demo` shows, checked: the example repository served by the daemon with the example provisioner.
@Suite(.serialized) struct ExampleRepositoryTests {
    @Test func exampleRepository_deploysStagingInDependencyOrder_andProposesProduction() async throws {
        let provisioner = try ExampleProvisioner()
        defer { withExtendedLifetime(provisioner) {} }
        let daemon = try await provisioner.startDaemon()
        let store = try daemon.store()
        try await eventually("staging is deployed", timeout: .seconds(60)) {
            for name in ["db", "queue", "app"]
            where try await store.history("ecomm-staging-\(name)").first?.status != .completed {
                return false
            }
            return true
        }
        let db = try #require(try await store.history("ecomm-staging-db").first)
        let queue = try #require(try await store.history("ecomm-staging-queue").first)
        let app = try #require(try await store.history("ecomm-staging-app").first)
        #expect(
            app.createdAt >= db.finishedAt! && app.createdAt >= queue.finishedAt!, "the app waited for its upstreams")
        #expect(app.snapshot.connectionParams["database"]?["endpoint"] == "endpoint.ecomm-staging-db.example.internal")
        // The database's password is a sensitive output: sealed where it is stored, in the app's snapshot too.
        #expect(SensitiveValue.sealedText(of: db.outputs?["endpoint"]?["password"] ?? nil) != nil)
        #expect(SensitiveValue.sealedText(of: app.snapshot.connectionParams["database"]?["password"] ?? nil) != nil)
        #expect(
            app.snapshot.connectionParams["network"] == [
                "vpc_id": "vpc-0a1b2c3d4e5f", "cidr": "10.20.0.0/16", "region": "eu-west-1",
            ])
        // The queue and the app go through the exec provisioner, whose output lines are the log.
        let log = try await store.events(of: app.id, after: nil, limit: 100).items.map(\.message)
        #expect(log.contains { $0.hasPrefix("provision ecomm-staging-app at version 2.3.0") })
        #expect(try await store.history("ecomm-production-network").first?.status == .proposed)
        #expect(try await store.history("ecomm-production-queue").first?.status == .proposed)
        #expect(try await store.history("ecomm-production-db").first == nil)
        let blocked = try await store.instance("ecomm-production-db").conditions.first { $0.type == .blocked }
        #expect(blocked?.message == "waiting for ecomm-production-network to produce vpc")
        try await daemon.stop()
    }

    @Test func gitPushWebhook_needsAValidSignature_andMetricsAreExposed() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200, body: completedAnswer) }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(
            files: repository(url: server.url, instances: ["a": ["size": 1]]),
            arguments: ["--git-webhook-secret-env", "TEST_GIT_SECRET"])
        daemon.environment = ["TEST_GIT_SECRET": "s3cret"]
        try await daemon.start()
        try await eventually("a is deployed") {
            try await daemon.store().history("p-dev-a").first?.status == .completed
        }
        let payload = Data(#"{"ref": "refs/heads/main"}"#.utf8)
        let signature = HMAC<SHA256>.authenticationCode(for: payload, using: SymmetricKey(data: Data("s3cret".utf8)))
        let good = try await daemon.post(
            "/v1/hooks/git", body: payload, headers: ["X-Hub-Signature-256": "sha256=" + signature.hexString])
        #expect(good.status == 202)
        let bad = try await daemon.post(
            "/v1/hooks/git", body: payload,
            headers: ["X-Hub-Signature-256": "sha256=" + String(repeating: "0", count: 64)])
        #expect(bad.status == 401)
        #expect(bad.body["code"] as? String == "unauthenticated")
        let huge = try await daemon.post("/v1/hooks/git", body: Data(count: 2 << 20), headers: [:])
        #expect(huge.status == 413)
        #expect(huge.body["code"] as? String == "resource_exhausted")

        let metrics = try await daemon.getText("/metrics")
        for name in [
            "converge_reconciles_total", "converge_workqueue_depth", "converge_dispatch_duration_seconds_bucket",
            #"converge_deployments_by_status{status="COMPLETED"} 1"#,
        ] {
            #expect(metrics.contains(name), "\(name) missing from /metrics")
        }
        #expect(try await daemon.get("/healthz").status == 200)
        try await daemon.stop()
    }
}
