import CCurl
import Foundation

/// One HTTP request: the webhook provisioner's POST, or any call of `CurlHTTPClient.send(_:)` and `stream(_:)`.
public struct HTTPRequest: Sendable {
    /// The method, upper-case as sent: `GET`, `POST`, `PUT`, `DELETE`, `PATCH`, `HEAD`, ….
    public var method: String
    public var url: String
    /// Sent in this order, names as given; libcurl adds only `Host` and, with a body, `Content-Length`.
    public var headers: [(name: String, value: String)]
    /// nil sends no body; an empty array sends `Content-Length: 0`. `POST`, `PUT` and `PATCH` always send one.
    public var body: [UInt8]?
    /// How long the TCP connect and the TLS handshake may take.
    public var connectTimeout: Duration
    /// How long the whole call may take; a stream has none.
    public var timeout: Duration
    /// The largest response body `send(_:)` accepts; a stream has no cap.
    public var maxResponseBytes: Int
    /// Signs the request with AWS Signature Version 4 (libcurl's `CURLOPT_AWS_SIGV4`); nil sends it unsigned.
    public var aws: AWSSigning?
    /// A PEM file of the certificate authorities an https server's certificate must chain to, instead of the
    /// system's (libcurl's `CURLOPT_CAINFO`); nil trusts the system's store.
    public var certificateAuthority: String?

    /// A request; `method` defaults to the webhook's POST.
    public init(
        method: String = "POST", url: String, headers: [(name: String, value: String)], body: [UInt8]?,
        connectTimeout: Duration, timeout: Duration, maxResponseBytes: Int, aws: AWSSigning? = nil,
        certificateAuthority: String? = nil
    ) {
        self.aws = aws
        self.certificateAuthority = certificateAuthority
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.connectTimeout = connectTimeout
        self.timeout = timeout
        self.maxResponseBytes = maxResponseBytes
    }
}

/// How libcurl signs a request for AWS: the provider string (`aws:amz:<region>:<service>`) and the key. A session
/// token goes in the `X-Amz-Security-Token` header, which the signature then covers.
public struct AWSSigning: Sendable, Equatable {
    public var provider: String
    public var accessKeyID: String
    public var secretAccessKey: String

    public init(region: String, service: String, accessKeyID: String, secretAccessKey: String) {
        self.provider = "aws:amz:\(region):\(service)"
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
    }
}

/// A response: its status, its header fields and its body.
public struct HTTPResponse: Sendable, Equatable {
    public var status: Int
    /// The header fields of the final response (not of a `100 Continue` before it), in the order received.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    /// A response with `status`, `headers` and `body`.
    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The value of the first header field named `name`, in any case.
    public func header(_ name: String) -> String? {
        headers.firstValue(named: name)
    }

    /// Same status, same body, and the same header fields in the same order.
    public static func == (left: HTTPResponse, right: HTTPResponse) -> Bool {
        left.status == right.status && left.body == right.body && left.headers.elementsEqual(right.headers) { $0 == $1 }
    }
}

/// A response whose body arrives piece by piece, as libcurl receives it: a stream of Server-Sent Events.
///
/// `body` throws an `HTTPTransportError` when the connection breaks. Once nobody iterates `body` any more (the
/// iterating task was cancelled, or the body was dropped), the transfer is aborted and its connection closed.
public struct HTTPStreamingResponse: Sendable {
    public var status: Int
    /// The header fields of the final response, in the order received.
    public var headers: [(name: String, value: String)]
    public var body: AsyncThrowingStream<[UInt8], any Error>

    /// The value of the first header field named `name`, in any case.
    public func header(_ name: String) -> String? {
        headers.firstValue(named: name)
    }
}

/// Why a request got no response.
public enum HTTPTransportError: Error, Equatable, CustomStringConvertible {
    /// No connection to the server could be made (refused, unknown host, a connect or TLS-handshake timeout or
    /// failure): the request was never sent, so sending it again cannot do anything twice.
    case unreachable(String)
    /// The connection broke after the request may have been sent, before the whole response arrived: worth retrying
    /// with the same key, a bounded number of times.
    case connection(String)
    /// The whole call took longer than its timeout.
    case timeout(Duration)
    /// The response was larger than the cap.
    case responseTooLarge(Int)
    /// The calling task was cancelled; the transfer was aborted.
    case cancelled
    /// Anything else libcurl refused (a bad URL, a TLS failure), or a request that cannot be sent.
    case other(String)

    public var description: String {
        switch self {
        case .unreachable(let message), .connection(let message): "connection failed: \(message)"
        case .timeout(let duration): "no response within \(duration.secondsText)"
        case .responseTooLarge(let limit): "response larger than \(limit) bytes"
        case .cancelled: "the call was cancelled"
        case .other(let message): message
        }
    }
}

/// Sends HTTP requests through the system libcurl: no redirects, http and https only, TLS verification on, a
/// response cap, and connections kept alive between calls.
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

    /// Sends `request` with its method and returns the response, whatever its status.
    ///
    /// Throws `.cancelled` as soon as the calling task is cancelled, `.unreachable` for a failed or timed-out connect
    /// (TCP or TLS), `.connection` for a connection that broke or a response cut short, `.timeout` when the whole call outlasts `request.timeout`,
    /// `.responseTooLarge` past `request.maxResponseBytes`, and `.other` for a method or header that cannot be sent.
    public func send(_ request: HTTPRequest) async throws(HTTPTransportError) -> HTTPResponse {
        try request.validate()
        return try await loop.perform(request).get()
    }

    /// Sends `request` and returns once the response's head has arrived, with its body still arriving.
    ///
    /// Only `request.connectTimeout` applies: a stream may stay open for as long as its consumer iterates it, and
    /// has no size cap. Throws as `send(_:)` does until the head has arrived; after that, the body's iteration throws.
    public func stream(_ request: HTTPRequest) async throws(HTTPTransportError) -> HTTPStreamingResponse {
        try request.validate()
        return try await loop.stream(request).get()
    }

    /// Sends `request` as a POST, whatever its `method`, and returns the response, whatever its status; see
    /// `send(_:)` for what it throws.
    public func post(_ request: HTTPRequest) async throws(HTTPTransportError) -> HTTPResponse {
        var request = request
        request.method = "POST"
        return try await send(request)
    }

    /// POSTs `body` to `url` and returns the response, whatever its status: the webhook's request path, for
    /// measurements such as `make bench` and for callers without a provisioner.
    ///
    /// The connect timeout is 5 s (or `timeout`, when shorter) and the response is capped at 1 MiB; see
    /// `send(_:)` for what it throws.
    public func post(
        url: String, body: [UInt8], headers: [(name: String, value: String)] = [], timeout: Duration = .seconds(30)
    ) async throws(HTTPTransportError) -> HTTPResponse {
        try await post(
            HTTPRequest(
                url: url, headers: headers, body: body, connectTimeout: min(.seconds(5), timeout), timeout: timeout,
                maxResponseBytes: 1 << 20))
    }
}

extension HTTPRequest {
    /// Refuses a method that is not an HTTP token and a header that would break the request's head.
    fileprivate func validate() throws(HTTPTransportError) {
        guard !method.isEmpty, method.utf8.allSatisfy(\.isTokenCharacter) else {
            throw .other("the method \"\(method)\" is not an HTTP method")
        }
        for header in headers {
            guard !header.name.isEmpty, header.name.utf8.allSatisfy(\.isTokenCharacter) else {
                throw .other("the header name \"\(header.name)\" is not an HTTP token")
            }
            guard !header.value.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D || $0 == 0 }) else {
                throw .other("the value of the header \(header.name) contains a line break")
            }
        }
    }
}

extension [(name: String, value: String)] {
    /// The value of the first field named `name`, in any case.
    fileprivate func firstValue(named name: String) -> String? {
        first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }
}

extension UInt8 {
    /// A character of an RFC 9110 token: a method or a header name.
    fileprivate var isTokenCharacter: Bool {
        switch self {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            "!#$%&'*+-.^_`|~".utf8.contains(self)
        }
    }
}
