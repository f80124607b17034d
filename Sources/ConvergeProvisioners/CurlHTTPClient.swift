import CCurl
import Foundation

/// One HTTP request as the webhook provisioner sends it.
public struct HTTPRequest: Sendable {
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    public var connectTimeout: Duration
    public var timeout: Duration
    public var maxResponseBytes: Int

    public init(
        url: String, headers: [(name: String, value: String)], body: [UInt8], connectTimeout: Duration,
        timeout: Duration, maxResponseBytes: Int
    ) {
        self.url = url
        self.headers = headers
        self.body = body
        self.connectTimeout = connectTimeout
        self.timeout = timeout
        self.maxResponseBytes = maxResponseBytes
    }
}

/// A response: its status and body.
public struct HTTPResponse: Sendable, Equatable {
    public var status: Int
    public var body: [UInt8]
}

/// Why a request got no response.
public enum HTTPTransportError: Error, Equatable, CustomStringConvertible {
    /// The connection could not be made, or broke before the whole response arrived: worth retrying with the same
    /// key. A connect timeout (TCP connect or TLS handshake) is one of these.
    case connection(String)
    /// The whole call took longer than its timeout.
    case timeout(Duration)
    /// The response was larger than the cap.
    case responseTooLarge(Int)
    /// The calling task was cancelled; the transfer was aborted.
    case cancelled
    /// Anything else libcurl refused (a bad URL, a TLS failure).
    case other(String)

    public var description: String {
        switch self {
        case .connection(let message): "connection failed: \(message)"
        case .timeout(let duration): "no response within \(duration.secondsText)"
        case .responseTooLarge(let limit): "response larger than \(limit) bytes"
        case .cancelled: "the call was cancelled"
        case .other(let message): message
        }
    }
}

/// POSTs through the system libcurl: no redirects, http and https only, TLS verification on, a response cap, and
/// connections kept alive between calls.
///
/// Every client of the process shares one libcurl multi handle driven by a thread of its own (`CurlTransferLoop`),
/// so `curl_easy_perform` never blocks a Swift concurrency thread, idle connections are reused by the next call to
/// the same host (at most `CurlTransferLoop.maxIdleConnections` kept), and a cancelled task aborts its transfer at
/// once. The dispatcher bounds how many calls run at once.
public struct CurlHTTPClient: Sendable {
    private let loop: CurlTransferLoop

    /// A client on the process's shared connections.
    public init() {
        loop = .shared
    }

    /// A client with connections of its own, at most `maxIdleConnections` kept idle; they close when the last copy
    /// of the client is gone.
    init(maxIdleConnections: Int) {
        loop = CurlTransferLoop(maxIdleConnections: maxIdleConnections)
    }

    /// Sends `request` as a POST and returns the response, whatever its status.
    ///
    /// Throws `.cancelled` as soon as the calling task is cancelled, `.connection` for a failed or timed-out connect
    /// (TCP or TLS) or a response cut short, `.timeout` when the whole call outlasts `request.timeout`.
    public func post(_ request: HTTPRequest) async throws(HTTPTransportError) -> HTTPResponse {
        try await loop.perform(request).get()
    }

    /// POSTs `body` to `url` and returns the response, whatever its status: the webhook's request path, for
    /// measurements such as `make bench` and for callers without a provisioner.
    ///
    /// The connect timeout is 5 s (or `timeout`, when shorter) and the response is capped at 1 MiB; see
    /// `post(_:)` for what it throws.
    public func post(
        url: String, body: [UInt8], headers: [(name: String, value: String)] = [], timeout: Duration = .seconds(30)
    ) async throws(HTTPTransportError) -> HTTPResponse {
        try await post(
            HTTPRequest(
                url: url, headers: headers, body: body, connectTimeout: min(.seconds(5), timeout), timeout: timeout,
                maxResponseBytes: 1 << 20))
    }
}
