import ConvergeCore
import ConvergeEngine
import ConvergeStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@testable import ConvergeServer

/// A provisioner the router tests never reach: they run no engine service.
struct UnusedProvisioner: DeploymentProvisioner {
    func provision(_ job: ProvisionJob, events: @escaping @Sendable ([DeploymentEventDraft]) async -> Void)
        async throws -> ProvisionOutcome
    {
        .failed("the router tests run no deployment")
    }
}

/// A server on a fresh SQLite store, with one deployment RUNNING at attempt 1 whose callback token is `token`; with
/// `loaded`, the manifests (none) are loaded first, as the routes that read or change resources need.
final class ServerFixture: Sendable {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
        "converge-server-\(UUID().uuidString)")
    let store: SQLiteStore
    let engine: Engine
    let server: ConvergeServer
    let tokens: TokensFile
    let deploymentID: String
    let token: String

    init(
        loaded: Bool = false, gitWebhookSecret: [UInt8]? = nil,
        settings: ConvergeServer.Settings = ServerFixture.settings
    ) async throws {
        let manifests = directory.appendingPathComponent("manifests")
        try FileManager.default.createDirectory(at: manifests, withIntermediateDirectories: true)
        let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        store = try SQLiteStore(path: directory.appendingPathComponent("c.sqlite").path, logger: quiet)
        var configuration = EngineConfiguration(manifests: manifests)
        configuration.callbackBaseURL = "http://127.0.0.1:1"
        // The daemon refuses to start without a secrets key, so the router always has one.
        configuration.secretBox = try SecretBox(key: SecretBox.newKey())
        engine = try await Engine(
            configuration: configuration, store: store, clock: SystemClock(),
            makeProvisioner: { _ in UnusedProvisioner() }, logger: quiet)
        tokens = TokensFile(path: directory.appendingPathComponent("tokens.json").path)
        server = ConvergeServer(
            engine: engine, store: store, metrics: DaemonMetrics(version: "test"), gitWebhookSecret: gitWebhookSecret,
            tokens: tokens,
            settings: settings, logger: quiet)
        let instance = DesiredResource(
            kind: .instance, id: "shop-dev-db",
            spec: ["id": "shop-dev-db", "environment": "shop-dev", "bundle": "database", "params": [:]], source: nil)
        _ = try await store.replaceDesiredState([instance], expectedVersion: nil, actor: "test")
        let snapshot = DeploymentSnapshot(
            action: .provision, params: [:], connectionParams: [:], version: "1.0.0", metadata: [:])
        let created = try await store.createDeployment(
            DeploymentRequest(instanceID: "shop-dev-db", snapshot: snapshot, mode: .direct, actor: "test"))
        deploymentID = created.deployment.id
        let claimed = try await store.claimNextDeployments(owner: "test", leaseDuration: 600, limit: 1)
        #expect(claimed.map(\.attempt) == [1])
        token = CallbackToken(key: try await store.secret(named: "callback-token-key")).token(
            deploymentID: deploymentID, attempt: 1)
        if loaded { #expect(await engine.manifests.load()) }
    }

    /// The daemon's defaults: no exec command allowed through the API.
    static let settings = ConvergeServer.Settings(
        allowedExecCommands: [], requestTimeout: .seconds(30), maxConnections: 512)

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }

    /// The Authorization header of a new token of `role` (named after it).
    func bearer(_ role: Role) throws -> HTTPFields {
        [.authorization: "Bearer \(try tokens.create(name: role.rawValue, role: role))"]
    }

    var eventsPath: String { "/v1/deployments/\(deploymentID)/events" }

    /// Runs `body` with a client of the server's router, without sockets.
    func withClient(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        try await Application(router: server.router).test(.router, body)
    }
}

/// A response body as JSON, for assertions.
func json(_ response: TestResponse) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
}

/// The error document of `response` after checking its status and code; the caller checks the message.
func refusal(
    _ response: TestResponse, _ status: HTTPResponse.Status, code: String,
    sourceLocation: Testing.SourceLocation = #_sourceLocation
) throws -> [String: Any] {
    #expect(response.status == status, sourceLocation: sourceLocation)
    let object = try json(response)
    #expect(object["code"] as? String == code, sourceLocation: sourceLocation)
    return object
}

/// A JSON request body.
func body(_ text: String) -> ByteBuffer {
    ByteBuffer(string: text)
}
