import ConvergeAPI
import ConvergeCore
import ConvergeEngine
import ConvergeStore
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import OpenAPIHummingbird
import OpenAPIRuntime

/// The daemon's HTTP surface: the API of `openapi.yaml` (health, readiness, metrics, the `/v1` operations and
/// provisioner callbacks), served by Hummingbird.
public struct ConvergeServer: Sendable {
    /// The largest request body accepted (callbacks, git push payloads).
    public static let maxBodyBytes = 1 << 20

    let engine: Engine
    let store: any Store
    let metrics: DaemonMetrics
    /// The secret of the inbound git push webhook; nil leaves the endpoint off.
    let gitWebhookSecret: [UInt8]?
    /// The bearer tokens of the API.
    let tokens: TokensFile
    let settings: Settings
    let logger: Logger

    public init(
        engine: Engine, store: any Store, metrics: DaemonMetrics, gitWebhookSecret: [UInt8]?,
        tokens: TokensFile, settings: Settings, logger: Logger
    ) {
        self.engine = engine
        self.store = store
        self.metrics = metrics
        self.gitWebhookSecret = gitWebhookSecret
        self.tokens = tokens
        self.settings = settings
        self.logger = logger
    }

    /// The application listening on `host:port`, a service for the daemon's `ServiceGroup`: at most
    /// `settings.maxConnections` connections at once, each closed when a request takes longer than
    /// `settings.requestTimeout` to arrive.
    /// The HTTP server on `host:port`; over TLS with `certificate`.
    public func application(
        host: String, port: Int, certificate: ServerCertificate? = nil,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws
        -> some ApplicationProtocol
    {
        let timeout = settings.requestTimeout
        let http1 = HTTPServerBuilder.http1(
            configuration: .init(additionalChannelHandlers: [RequestDeadlineHandler(timeout: timeout)]))
        return Application(
            router: router,
            server: try certificate.map { try .tls(http1, tlsConfiguration: try $0.tlsConfiguration) } ?? http1,
            configuration: .init(
                address: .hostname(host, port: port), serverName: "converge",
                availableConnectionsDelegate: .maximum(settings.maxConnections, logger: logger)),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? port) }, logger: logger)
    }

    /// The routes of `openapi.yaml`, behind the error middleware (which knows them all, to tell a wrong method from
    /// an unknown path) and the authentication middleware.
    var router: Router<BasicRequestContext> {
        let handler = APIHandler(server: self)
        let middlewares: [any ServerMiddleware] = [
            AuthenticationMiddleware(
                tokens: tokens,
                authenticateCallback: { token, id in try await self.authenticateCallback(token: token, deploymentID: id)
                },
                maxBodyBytes: Self.maxBodyBytes)
        ]
        // Registered once on a router of its own to learn the routes, since the error middleware must be in place
        // before the routes it wraps.
        let listing = Router()
        try! handler.registerHandlers(on: listing, middlewares: middlewares)
        let router = Router()
        router.add(
            middleware: APIErrorMiddleware(
                routes: RouteTable(listing.routes.map { ($0.method, $0.path.description) }),
                maxBodyBytes: Self.maxBodyBytes))
        // The generator's registration fails only for a path the router cannot parse, which the tests would show.
        try! handler.registerHandlers(on: router, middlewares: middlewares)
        return router
    }

    /// Serving when the store answers and can write (`"store": "cannot write: …"` while its writes fail for want of
    /// storage) and a good load of the manifests is in force: `/readyz` answers 200 then, so a
    /// refused load (a bad commit) never takes every daemon out of a load balancer while each keeps serving its last
    /// good load. Ready when serving and the latest load was not refused. The manifests check shows when they were
    /// last read, the load in force (version, commit, when a load was last good) and, while loads are refused, since
    /// when and each error; the daemons alive on the database are listed with the leases each holds.
    func readiness() async -> (serving: Bool, ready: Bool, checks: Value) {
        var storeCheck: Value = "ok"
        var serving = true
        do {
            try await withDeadline(Self.storePingDeadline) { [store] in try await store.ping() }
        } catch {
            storeCheck = .string("unreachable: \(error)")
            serving = false
        }
        do {
            if serving { try await withDeadline(Self.storePingDeadline) { [store] in try await store.checkWritable() } }
        } catch {
            storeCheck = .string((error as? ConvergeError)?.message ?? "\(error)")
            serving = false
        }
        let status = engine.manifests.status
        var manifests: [String: Value] = ["loaded": .bool(status.current != nil)]
        if let current = status.current {
            manifests["version"] = .int(Int(current.version))
            if let commit = current.commit { manifests["commit"] = .string(commit.sha) }
        }
        if let checkedAt = status.checkedAt { manifests["checkedAt"] = .string(checkedAt.formatted(.iso8601)) }
        if let goodAt = status.goodAt { manifests["loadedAt"] = .string(goodAt.formatted(.iso8601)) }
        if let refusedAt = status.refusedAt {
            manifests["refused"] = [
                "since": .string(refusedAt.formatted(.iso8601)), "errors": .array(status.problems.map { .string($0) }),
            ]
        }
        if status.current == nil { serving = false }
        var checks: [String: Value] = ["store": storeCheck, "manifests": .object(manifests)]
        if storeCheck == "ok",
            let daemons = try? await withDeadline(Self.storePingDeadline, { [store] in try await store.daemonsAlive() })
        {
            checks["daemons"] = .array(
                daemons.map { daemon in
                    [
                        "id": .string(daemon.id), "host": .string(daemon.host), "version": .string(daemon.version),
                        "since": .string(daemon.startedAt.formatted(.iso8601)), "leasesHeld": .int(daemon.leasesHeld),
                    ]
                })
        }
        return (serving, serving && status.refusedAt == nil, .object(checks))
    }

    /// How long readiness waits for the store to answer: a probe (Kubernetes waits 1 s by default) must get an answer,
    /// and a database that takes longer is not one to send traffic to.
    static let storePingDeadline: Duration = .milliseconds(900)

    /// The metrics in the Prometheus text format, with the gauges read at scrape time brought up to date: the
    /// deployments by status, the work queue, whether the latest manifest load was refused, and the process.
    func prometheusText() async -> [UInt8] {
        if let counts = try? await store.deploymentCounts() {
            for status in Deployment.Status.allCases {
                metrics.set(
                    .deploymentsByStatus, labels: [("status", status.rawValue)], to: Double(counts[status] ?? 0))
            }
        }
        metrics.set(.workqueueDepth, to: Double(await engine.queue.depth))
        metrics.set(.manifestLoadRefused, to: engine.manifests.status.refusedAt == nil ? 0 : 1)
        metrics.recordProcess()
        return metrics.text()
    }

    /// Refuses `token` as `unauthenticated` unless it is the callback token of one of deployment `id`'s attempts
    /// (the body, read later, says which one, and `DeploymentCallbacks` holds it to that). An unknown deployment is
    /// refused the same way, so the answer tells a caller without a token nothing.
    func authenticateCallback(token: String, deploymentID id: String) async throws {
        let refusal = APIError(.unauthenticated, "the callback token is not valid for deployment \(id)")
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

}
