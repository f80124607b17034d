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

/// Where the daemon is and who calls it, resolved from flags, then `CONVERGE_SERVER` / `CONVERGE_TOKEN`, then the
/// config file (`$XDG_CONFIG_HOME/converge/config.json`, else `~/.config/converge/config.json`, with `server` and
/// `token`), then the default server `http://127.0.0.1:8787`.
public struct ClientSettings: Equatable, Sendable {
    public var server: URL
    public var token: String?

    public init(server: URL, token: String?) {
        self.server = server
        self.token = token
    }

    /// The settings from the layers, first given wins.
    public static func resolve(
        server: String?, token: String?, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ClientSettings {
        let file = try configFile(environment: environment)
        let text = server ?? environment["CONVERGE_SERVER"] ?? file["server"] ?? "http://127.0.0.1:8787"
        guard let url = URL(string: text.hasSuffix("/") ? String(text.dropLast()) : text),
            let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil
        else {
            throw ConvergeError(.invalidArgument, "server \"\(text)\": expected an http or https URL")
        }
        let token = [token, environment["CONVERGE_TOKEN"], file["token"]].compactMap { $0 }.first { !$0.isEmpty }
        return ClientSettings(server: url, token: token)
    }

    /// The config file's settings; none when it does not exist.
    static func configFile(environment: [String: String]) throws -> [String: String] {
        let base =
            environment["XDG_CONFIG_HOME"].map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: environment["HOME"] ?? NSHomeDirectory()).appendingPathComponent(".config")
        let path = base.appendingPathComponent("converge/config.json").path
        guard let data = FileManager.default.contents(atPath: path) else { return [:] }
        guard let settings = try? JSONDecoder().decode([String: String].self, from: data) else {
            throw ConvergeError(
                .invalidArgument, "\(path): expected a JSON object of strings, such as {\"server\": …, \"token\": …}")
        }
        return settings
    }
}

/// The daemon's API as the CLI uses it: the client generated from `openapi.yaml`, over libcurl, with the bearer
/// token added and every error answer turned into an `APIFailure`.
public struct ConvergeClient: Sendable {
    /// The generated client, for the operations the CLI calls.
    public let api: Client

    public init(settings: ClientSettings, transport: CurlClientTransport = CurlClientTransport()) {
        api = Client(
            serverURL: settings.server, transport: transport,
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
