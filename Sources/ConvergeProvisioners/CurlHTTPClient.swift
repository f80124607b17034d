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
    /// The connection could not be made or broke before a response: worth retrying with the same key.
    case connection(String)
    /// The whole call took longer than its timeout.
    case timeout(Duration)
    /// The response was larger than the cap.
    case responseTooLarge(Int)
    /// Anything else libcurl refused (a bad URL, a TLS failure).
    case other(String)

    public var description: String {
        switch self {
        case .connection(let message): "connection failed: \(message)"
        case .timeout(let duration): "no response within \(duration)"
        case .responseTooLarge(let limit): "response larger than \(limit) bytes"
        case .other(let message): message
        }
    }
}

/// POSTs through the system libcurl: no redirects, http and https only, TLS verification on, a response cap.
///
/// `curl_easy_perform` blocks, so each request runs on a thread of its own, never on a Swift concurrency thread
/// or a shared dispatch pool that a hanging provisioner could starve; the dispatcher bounds how many run at once.
public struct CurlHTTPClient: Sendable {
    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    public init() {
        _ = Self.globalInit
    }

    /// Sends `request` as a POST and returns the response, whatever its status.
    public func post(_ request: HTTPRequest) async throws(HTTPTransportError) -> HTTPResponse {
        let result: Result<HTTPResponse, HTTPTransportError> = await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: Self.perform(request)) }
            thread.name = "converge-curl"
            thread.start()
        }
        return try result.get()
    }

    private static func perform(_ request: HTTPRequest) -> Result<HTTPResponse, HTTPTransportError> {
        guard let handle = curl_easy_init() else { return .failure(.other("cannot create a curl handle")) }
        defer { curl_easy_cleanup(handle) }
        var headers: UnsafeMutablePointer<curl_slist>? = nil
        for header in request.headers { headers = curl_slist_append(headers, "\(header.name): \(header.value)") }
        defer { curl_slist_free_all(headers) }
        let sink = ResponseSink(limit: request.maxResponseBytes)
        let unmanaged = Unmanaged.passRetained(sink)
        defer { unmanaged.release() }

        converge_curl_setopt_string(handle, CURLOPT_URL, request.url)
        converge_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https")
        converge_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0)
        converge_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        converge_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1)
        converge_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2)
        converge_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, milliseconds(request.connectTimeout))
        converge_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, milliseconds(request.timeout))
        converge_curl_setopt_long(handle, CURLOPT_POST, 1)
        converge_curl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, request.body.count)
        converge_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, headers)
        converge_curl_setopt_write_callback(handle, CURLOPT_WRITEFUNCTION, writeToSink)
        converge_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, unmanaged.toOpaque())
        let code = request.body.withUnsafeBufferPointer { body in
            // COPYPOSTFIELDS copies the body, so it need not outlive this call.
            converge_curl_setopt_pointer(
                handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: body.baseAddress))
            return curl_easy_perform(handle)
        }
        guard code == CURLE_OK else {
            let message = String(cString: curl_easy_strerror(code))
            switch code {
            case CURLE_WRITE_ERROR where sink.exceeded:
                return .failure(.responseTooLarge(request.maxResponseBytes))
            case CURLE_OPERATION_TIMEDOUT:
                return .failure(.timeout(request.timeout))
            case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_SEND_ERROR, CURLE_RECV_ERROR,
                CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE:
                return .failure(.connection(message))
            default:
                return .failure(.other(message))
            }
        }
        var status = 0
        converge_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return .success(HTTPResponse(status: status, body: sink.bytes))
    }

    private static func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }
}

/// Collects a response body up to a limit; used only by the thread running `curl_easy_perform`.
private final class ResponseSink {
    let limit: Int
    var bytes: [UInt8] = []
    var exceeded = false

    init(limit: Int) {
        self.limit = limit
    }
}

private let writeToSink: converge_curl_write_callback = { data, size, count, userdata in
    guard let data, let userdata else { return 0 }
    let sink = Unmanaged<ResponseSink>.fromOpaque(userdata).takeUnretainedValue()
    let length = size * count
    guard sink.bytes.count + length <= sink.limit else {
        sink.exceeded = true
        return 0
    }
    sink.bytes.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length))
    return length
}
