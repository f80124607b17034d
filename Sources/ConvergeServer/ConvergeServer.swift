import ConvergeCore
import ConvergeEngine
import ConvergeStore
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Prometheus

/// The daemon's HTTP surface: health, readiness, metrics, sync triggers and provisioner callbacks.
public struct ConvergeServer: Sendable {
    /// The largest request body accepted (callbacks, git push payloads).
    public static let maxBodyBytes = 1 << 20

    let engine: Engine
    let store: any Store
    let metrics: PrometheusCollectorRegistry
    /// The secret of the inbound git push webhook; nil leaves the endpoint off.
    let gitWebhookSecret: [UInt8]?
    let logger: Logger

    public init(
        engine: Engine, store: any Store, metrics: PrometheusCollectorRegistry, gitWebhookSecret: [UInt8]?,
        logger: Logger
    ) {
        self.engine = engine
        self.store = store
        self.metrics = metrics
        self.gitWebhookSecret = gitWebhookSecret
        self.logger = logger
    }

    /// The application listening on `host:port`, a service for the daemon's `ServiceGroup`.
    public func application(
        host: String, port: Int, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    )
        -> some ApplicationProtocol
    {
        Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "converge"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? port) }, logger: logger)
    }

    var router: Router<BasicRequestContext> {
        let router = Router()
        router.get("healthz") { _, _ in JSONValueResponse(["status": "ok"]) }
        router.get("readyz") { _, _ in await self.readiness() }
        router.get("metrics") { _, _ in await self.prometheusText() }
        router.post("v1/sync") { _, _ in
            self.engine.manifests.requestSync()
            return JSONValueResponse(["status": "sync requested"], status: .accepted)
        }
        router.post("v1/hooks/git") { request, _ in try await self.gitPush(request) }
        router.post("v1/deployments/:id/events") { request, context in
            try await self.callback(request, deploymentID: context.parameters.require("id"))
        }
        return router
    }

    /// Ready when the store answers and a first good load of the manifests is recorded; the detail shows the
    /// errors of the latest load even while the last good one is in force.
    func readiness() async -> JSONValueResponse {
        var storeCheck: Value = "ok"
        var ready = true
        do {
            try await store.ping()
        } catch {
            storeCheck = .string("unreachable: \(error)")
            ready = false
        }
        let status = engine.manifests.status
        var manifests: [String: Value] = [
            "loaded": .bool(status.current != nil), "problems": .array(status.problems.map { .string($0) }),
        ]
        if let current = status.current {
            manifests["version"] = .int(Int(current.version))
            if let commit = current.commit { manifests["commit"] = .string(commit.sha) }
        }
        if status.current == nil { ready = false }
        return JSONValueResponse(
            ["ready": .bool(ready), "checks": ["store": storeCheck, "manifests": .object(manifests)]],
            status: ready ? .ok : .serviceUnavailable)
    }

    func prometheusText() async -> Response {
        if let counts = try? await store.deploymentCounts() {
            for status in Deployment.Status.allCases {
                metrics.makeGauge(name: "converge_deployments_by_status", labels: [("status", status.rawValue)])
                    .set(Double(counts[status] ?? 0))
            }
        }
        metrics.makeGauge(name: "converge_workqueue_depth", labels: []).set(Double(await engine.queue.depth))
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
            body: .init(byteBuffer: ByteBuffer(bytes: metrics.emitToBuffer())))
    }

    /// A git push is only a hint to re-read the manifests now; its signature must match the shared secret.
    func gitPush(_ request: Request) async throws -> JSONValueResponse {
        guard let secret = gitWebhookSecret else {
            throw APIError(.failedPrecondition, "the git push webhook is not configured")
        }
        let body = try await collect(request)
        let signature = request.headers[HTTPField.Name("X-Hub-Signature-256")!] ?? ""
        guard signature.hasPrefix("sha256="), let mac = [UInt8](hex: String(signature.dropFirst(7))), mac.count == 32,
            HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: body, using: SymmetricKey(data: secret))
        else {
            throw APIError(.unauthenticated, "the X-Hub-Signature-256 header does not match the payload")
        }
        engine.manifests.requestSync()
        return JSONValueResponse(["status": "sync requested"], status: .accepted)
    }

    func callback(_ request: Request, deploymentID: String) async throws -> Response {
        let authorization = request.headers[.authorization] ?? ""
        guard authorization.hasPrefix("Bearer ") else {
            throw APIError(.unauthenticated, "a callback needs Authorization: Bearer <token>")
        }
        let body = try await collect(request)
        let report: CallbackReport
        do {
            report = try CallbackReport(json: try Value(json: String(decoding: body, as: UTF8.self)))
            try await engine.callbacks.handle(
                report, deploymentID: deploymentID, token: String(authorization.dropFirst("Bearer ".count)))
        } catch let error as ConvergeError {
            throw APIError(error)
        }
        return Response(status: .noContent)
    }

    /// The request body, refused with `resource_exhausted` past the cap.
    func collect(_ request: Request) async throws -> Data {
        do {
            return Data(buffer: try await request.body.collect(upTo: Self.maxBodyBytes))
        } catch {
            throw APIError(.resourceExhausted, "the request body is larger than \(Self.maxBodyBytes) bytes")
        }
    }
}
