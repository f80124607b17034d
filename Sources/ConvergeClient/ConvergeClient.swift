import ConvergeAPI
import ConvergeCore
import Foundation
import HTTPTypes
import OpenAPIRuntime

/// An error the daemon answered with, in the API's one shape: its stable code, its message and details.
public struct APIFailure: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var details: Value?
    public var status: Int

    public init(code: String, message: String, details: Value?, status: Int) {
        self.code = code
        self.message = message
        self.details = details
        self.status = status
    }

    public var description: String { "\(message) (\(code))" }
}

/// Where the daemon is, who calls it and which certificate authorities vouch for it, resolved from flags
/// (`--server`, `--token`, `--certificate-authority`, `--context`), then `CONVERGE_SERVER` / `CONVERGE_TOKEN` /
/// `CONVERGE_CERTIFICATE_AUTHORITY`, then the config file's current context (`ClientConfig`), then the default server
/// `http://127.0.0.1:8787` and the system's certificate store.
public struct ClientSettings: Equatable, Sendable {
    public var server: URL
    public var token: String?
    /// A PEM file of the certificate authorities an https daemon's certificate must chain to; nil trusts the
    /// system's store.
    public var certificateAuthority: String?

    public init(server: URL, token: String?, certificateAuthority: String? = nil) {
        self.server = server
        self.token = token
        self.certificateAuthority = certificateAuthority
    }

    /// The settings from the layers, first given wins; `context` names a context of `config` (at `path`).
    public static func resolve(
        server: String?, token: String?, certificateAuthority: String? = nil, context: String?, config: ClientConfig,
        path: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ClientSettings {
        let named = try context.map { try config.context(named: $0, path: path) }
        let current = config.currentContext.flatMap { config.contexts[$0] }
        // An empty value is no value: `CONVERGE_TOKEN= converge …` calls without a token.
        func first(_ layers: String?...) -> String? { layers.compactMap { $0 }.first { !$0.isEmpty } }
        let text =
            first(server, named?.server, environment["CONVERGE_SERVER"], current?.server) ?? "http://127.0.0.1:8787"
        let token = first(token, named?.token, environment["CONVERGE_TOKEN"], current?.token)
        let authority = first(
            certificateAuthority, named?.certificateAuthority, environment["CONVERGE_CERTIFICATE_AUTHORITY"],
            current?.certificateAuthority)
        if let authority, !FileManager.default.isReadableFile(atPath: authority) {
            throw ConvergeError(.invalidArgument, "certificate authority \(authority): no readable file there")
        }
        return ClientSettings(server: try url(text), token: token, certificateAuthority: authority)
    }

    /// `text` as a daemon's URL: http or https, with a host; a trailing slash is dropped.
    public static func url(_ text: String) throws -> URL {
        guard let url = URL(string: text.hasSuffix("/") ? String(text.dropLast()) : text),
            let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil
        else {
            throw ConvergeError(.invalidArgument, "server \"\(text)\": expected an http or https URL")
        }
        return url
    }
}

/// The daemon's API as the CLI uses it: the client generated from `openapi.yaml`, over libcurl, with the bearer
/// token added and every error answer turned into an `APIFailure`.
public struct ConvergeClient: Sendable {
    /// The generated client, for the operations the CLI calls.
    public let api: Client

    public init(settings: ClientSettings, limits: CurlClientTransport.Settings = .standard) {
        api = Client(
            serverURL: settings.server,
            transport: CurlClientTransport(settings: limits, certificateAuthority: settings.certificateAuthority),
            middlewares: [BearerTokenMiddleware(token: settings.token), ErrorAnswerMiddleware()])
    }

    /// JSON as the API writes it: ISO 8601 times.
    public static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()

    /// A generated value as a `Value`, with the API's field names, for output.
    public static func value(_ item: some Encodable) throws -> Value {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = .sortedKeys
        return try Value(json: String(decoding: try encoder.encode(item), as: UTF8.self))
    }

    /// Deployment `id`'s events after sequence `after`, as the daemon streams them, until it is terminal.
    public func followEvents(of id: String, after: String?) async throws -> AsyncThrowingStream<
        Components.Schemas.DeploymentEvent, any Error
    > {
        let output = try await api.listDeploymentEvents(
            path: .init(id: id), query: .init(follow: true),
            headers: .init(lastEventID: after, accept: [.init(contentType: .textEventStream)]))
        return Self.events(try output.ok.body.textEventStream, of: Components.Schemas.DeploymentEvent.self)
    }

    /// Every deployment change after sequence `after` (nil: from now on), as the daemon streams them.
    public func watch(after: String?) async throws -> AsyncThrowingStream<
        Components.Schemas.DeploymentChange, any Error
    > {
        let output = try await api.watchDeployments(headers: .init(lastEventID: after))
        return Self.events(try output.ok.body.textEventStream, of: Components.Schemas.DeploymentChange.self)
    }

    private static func events<T: Decodable & Hashable & Sendable>(_ body: HTTPBody, of type: T.Type)
        -> AsyncThrowingStream<
            T, any Error
        >
    {
        let decoded = body.asDecodedServerSentEventsWithJSONData(of: T.self, decoder: decoder)
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    for try await event in decoded {
                        if let data = event.data { continuation.yield(data) }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

/// Adds `Authorization: Bearer <token>` to every request when there is a token.
struct BearerTokenMiddleware: ClientMiddleware {
    let token: String?

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        var request = request
        if let token { request.headerFields[.authorization] = "Bearer \(token)" }
        return try await next(request, body, baseURL)
    }
}

/// Turns every answer of 400 or more into an `APIFailure` from its `{code, message, details}` body, so callers
/// handle only success; except readiness's 503 (not serving), an answer with a body of its own that `converge status`
/// shows.
struct ErrorAnswerMiddleware: ClientMiddleware {
    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        let (response, responseBody) = try await next(request, body, baseURL)
        guard response.status.code >= 400,
            !(operationID == Operations.GetReadiness.id && response.status == .serviceUnavailable)
        else { return (response, responseBody) }
        var bytes: [UInt8] = []
        if let responseBody { bytes = try await [UInt8](collecting: responseBody, upTo: 1 << 20) }
        guard let error = try? Value(json: String(decoding: bytes, as: UTF8.self)),
            let code = error["code"]?.stringValue, let message = error["message"]?.stringValue
        else {
            throw APIFailure(
                code: "internal", message: "the server answered \(response.status.code) without an error body",
                details: nil, status: response.status.code)
        }
        throw APIFailure(code: code, message: message, details: error["details"], status: response.status.code)
    }
}
