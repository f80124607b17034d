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

    /// Every endpoint, registered on the router and known to the error middleware (404 versus 405).
    var routes: [Route] {
        [
            Route(.get, "healthz") { _, _ in JSONValueResponse(["status": "ok"]).response },
            Route(.get, "readyz") { _, _ in await self.readiness().response },
            Route(.get, "metrics") { _, _ in await self.prometheusText() },
            Route(.post, "v1/sync") { _, _ in
                self.engine.manifests.requestSync()
                return JSONValueResponse(["status": "sync requested"], status: .accepted).response
            },
            Route(.post, "v1/hooks/git") { request, _ in try await self.gitPush(request).response },
            Route(.post, "v1/deployments/:id/events") { request, context in
                try await self.callback(request, deploymentID: context.parameters.require("id"))
            },
        ]
    }

    var router: Router<BasicRequestContext> {
        let routes = self.routes
        let router = Router()
        router.add(middleware: APIErrorMiddleware(routes: RouteTable(routes), maxBodyBytes: Self.maxBodyBytes))
        for route in routes {
            router.on(RouterPath(route.path), method: route.method, use: route.handler)
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

    /// A provisioner's report on a deployment. The bearer token is checked before the body is read, so a caller
    /// without a valid token cannot make the daemon read or parse anything.
    func callback(_ request: Request, deploymentID: String) async throws -> Response {
        let authorization = request.headers[.authorization] ?? ""
        guard authorization.hasPrefix("Bearer ") else {
            throw APIError(.unauthenticated, "a callback needs Authorization: Bearer <token>")
        }
        let token = String(authorization.dropFirst("Bearer ".count))
        try await authenticateCallback(token: token, deploymentID: deploymentID)
        let body = try RequestBodyReader.decode(CallbackBody.self, from: try await collect(request))
        guard CallbackReport.Kind(rawValue: body.type) != nil else {
            let kinds = CallbackReport.Kind.allCases.map(\.rawValue).joined(separator: ", ")
            throw APIError(
                .invalidArgument, "body: field \"type\": expected one of \(kinds), got \"\(body.type)\"",
                details: ["field": "type"])
        }
        try await engine.callbacks.handle(
            try CallbackReport(json: body.report), deploymentID: deploymentID, token: token)
        return Response(status: .noContent)
    }

    /// Refuses `token` unless it is the callback token of one of deployment `id`'s attempts (the body, read later,
    /// says which one, and `DeploymentCallbacks` holds it to that). An unknown deployment is refused the same way,
    /// so the answer tells a caller without a token nothing.
    func authenticateCallback(token: String, deploymentID id: String) async throws {
        let refusal = APIError(.permissionDenied, "the callback token is not valid for deployment \(id)")
        let deployment: Deployment
        do {
            deployment = try await store.deployment(id)
        } catch let error as ConvergeError where error.code == .notFound {
            throw refusal
        }
        // The current attempt is tried first: it is nearly always the one.
        guard
            stride(from: deployment.attempt, through: 1, by: -1).contains(where: { attempt in
                engine.callbacks.isValid(token, deploymentID: id, attempt: attempt)
            })
        else {
            throw refusal
        }
    }

    /// The request body, refused with 413 past `maxBodyBytes`.
    func collect(_ request: Request) async throws -> Data {
        try await RequestBodyReader.collect(request, limit: Self.maxBodyBytes)
    }
}

/// A callback's body as it is decoded, so that a wrong field is named (`body: field "attempt": expected an
/// integer`); `report` hands it to `CallbackReport`, which keeps the meaning of each field.
struct CallbackBody: Decodable {
    var type: String
    var attempt: Int
    var message: String?
    var outputs: [String: Value]?
    var planResult: Value?
    var error: String?

    var report: Value {
        var report: [String: Value] = ["type": .string(type), "attempt": .int(attempt)]
        report["message"] = message.map { .string($0) }
        report["outputs"] = outputs.map { .object($0) }
        report["planResult"] = planResult
        report["error"] = error.map { .string($0) }
        return .object(report)
    }
}
