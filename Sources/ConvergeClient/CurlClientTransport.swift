import ConvergeProvisioners
import Foundation
import HTTPTypes
import OpenAPIRuntime

/// Sends the generated API client's requests through the system libcurl, the one HTTP stack of converge.
///
/// Requests go through `CurlHTTPClient` on the process's shared connections (kept alive between calls). A request
/// whose `Accept` asks for `text/event-stream` gets its response as soon as the head arrives, with a body that streams
/// as the server sends it, no total timeout and no cap; any other gets its whole response, within `timeout` and
/// `maxResponseBytes`. The transport adds no header of its own: authentication is a `ClientMiddleware`'s job.
public struct CurlClientTransport: ClientTransport {
    /// The limits of one request.
    public struct Settings: Sendable, Equatable {
        /// How long the TCP connect and the TLS handshake may take, for every request.
        public var connectTimeout: Duration
        /// How long a whole request may take; a stream of events has no total timeout.
        public var timeout: Duration
        /// The largest response body accepted; a stream of events has no cap.
        public var maxResponseBytes: Int

        /// The settings of a CLI call: 5 s to connect, 60 s for the whole call, responses up to 64 MiB.
        public static let standard = Settings(
            connectTimeout: .seconds(5), timeout: .seconds(60), maxResponseBytes: 64 << 20)

        /// Limits of a request; each must be positive.
        public init(connectTimeout: Duration, timeout: Duration, maxResponseBytes: Int) {
            self.connectTimeout = connectTimeout
            self.timeout = timeout
            self.maxResponseBytes = maxResponseBytes
        }
    }

    public let settings: Settings
    /// The PEM file of the certificate authorities an https daemon's certificate must chain to; nil trusts the
    /// system's store.
    public let certificateAuthority: String?
    private let client = CurlHTTPClient()

    /// A transport with `settings`, on the process's shared connections.
    public init(settings: Settings = .standard, certificateAuthority: String? = nil) {
        self.settings = settings
        self.certificateAuthority = certificateAuthority
    }

    /// Sends `request` (and `body`) to `baseURL` joined with the request's path, and returns the response, whatever
    /// its status.
    ///
    /// Throws a `ClientTransportError` when no response arrived, and `CancellationError` when the calling task was
    /// cancelled.
    public func send(
        _ request: HTTPTypes.HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String
    ) async throws -> (HTTPTypes.HTTPResponse, HTTPBody?) {
        let url = try Self.url(of: request, baseURL: baseURL)
        let server = Self.serverText(of: baseURL)
        let bytes: [UInt8]? = if let body { try await [UInt8](collecting: body, upTo: .max) } else { nil }
        let curlRequest = ConvergeProvisioners.HTTPRequest(
            method: request.method.rawValue, url: url,
            headers: request.headerFields.map { (name: $0.name.rawName, value: $0.value) }, body: bytes,
            connectTimeout: settings.connectTimeout, timeout: settings.timeout,
            maxResponseBytes: settings.maxResponseBytes, certificateAuthority: certificateAuthority)
        do {
            if Self.acceptsEventStream(request.headerFields) {
                let response = try await client.stream(curlRequest)
                let events = EventStreamBody(base: response.body) { error in
                    Self.failure(error, server: server, url: url, duringBody: true)
                }
                return (
                    Self.responseHead(status: response.status, headers: response.headers),
                    HTTPBody(events, length: .unknown, iterationBehavior: .single)
                )
            }
            let response = try await client.send(curlRequest)
            return (
                Self.responseHead(status: response.status, headers: response.headers),
                request.method == .head ? nil : HTTPBody(response.body)
            )
        } catch {
            throw Self.failure(error, server: server, url: url, duringBody: false)
        }
    }

    /// `baseURL` joined with the request's path (and query), which the generated client percent-encoded already.
    static func url(of request: HTTPTypes.HTTPRequest, baseURL: URL) throws(ClientTransportError) -> String {
        guard let scheme = baseURL.scheme?.lowercased(), scheme == "http" || scheme == "https", baseURL.host != nil
        else {
            throw ClientTransportError(
                .invalidRequest, "the server URL \(baseURL.absoluteString) is not an http or https URL")
        }
        var base = baseURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        let path = request.path ?? ""
        return base + (path.isEmpty || path.hasPrefix("/") ? path : "/" + path)
    }

    /// Whether an `Accept` field of `headers` lists `text/event-stream`, with a quality above zero.
    static func acceptsEventStream(_ headers: HTTPFields) -> Bool {
        headers[values: .accept].lazy.flatMap { $0.split(separator: ",") }.contains { range in
            let parts = range.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard parts.first == "text/event-stream" else { return false }
            let quality = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) }
            return (quality ?? 1) > 0
        }
    }

    private static func responseHead(status: Int, headers: [(name: String, value: String)]) -> HTTPTypes.HTTPResponse {
        var fields = HTTPFields()
        for header in headers {
            guard let name = HTTPField.Name(header.name) else { continue }
            fields.append(HTTPField(name: name, value: header.value))
        }
        return HTTPTypes.HTTPResponse(status: .init(code: min(max(status, 0), 999)), headerFields: fields)
    }

    /// The server as a message names it: the base URL without a trailing slash.
    private static func serverText(of baseURL: URL) -> String {
        var text = baseURL.absoluteString
        while text.hasSuffix("/") { text.removeLast() }
        return text
    }

    /// The error a caller sees for a transfer that failed, before the response's head or while its body streamed.
    private static func failure(_ error: HTTPTransportError, server: String, url: String, duringBody: Bool)
        -> any Error
    {
        switch error {
        case .cancelled:
            return CancellationError()
        case .connection(let message) where duringBody:
            return ClientTransportError(.unreachable, "lost the connection to \(server): \(message)")
        case .unreachable(let message), .connection(let message):
            return ClientTransportError(.unreachable, "cannot reach \(server): \(message)")
        case .timeout:
            return ClientTransportError(.timedOut, "\(error) from \(server)")
        case .responseTooLarge(let limit):
            return ClientTransportError(.failed, "the response of \(url) is larger than \(limit) bytes")
        case .other(let message):
            return ClientTransportError(.failed, "request to \(url) failed: \(message)")
        }
    }
}

/// Why a request to the daemon got no response: a message for the user, and its kind for the exit code.
public struct ClientTransportError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, coarsely.
    public enum Kind: Sendable, Equatable {
        /// The server could not be reached, or the connection broke.
        case unreachable
        /// No whole response within the transport's timeout.
        case timedOut
        /// The request could not be sent as it is (a server URL that is not http or https).
        case invalidRequest
        /// Anything else: a TLS failure, a response over the cap.
        case failed
    }

    public var kind: Kind
    /// Lower-case, and says what was tried: `cannot reach http://127.0.0.1:8787: connection refused (…)`.
    public var message: String

    /// An error of `kind` that says `message`.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// The body of a stream of events, with transport errors turned into the transport's own.
private struct EventStreamBody: AsyncSequence, Sendable {
    typealias Element = [UInt8]

    let base: AsyncThrowingStream<[UInt8], any Error>
    let mapError: @Sendable (HTTPTransportError) -> any Error

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<[UInt8], any Error>.AsyncIterator
        let mapError: @Sendable (HTTPTransportError) -> any Error

        mutating func next() async throws -> [UInt8]? {
            do {
                return try await base.next()
            } catch let error as HTTPTransportError {
                throw mapError(error)
            }
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), mapError: mapError)
    }
}
