import CCurl
import Foundation

/// A blocking HTTP client for the daemon's own endpoints (`/readyz`, `/metrics`, `/v1/sync`): one libcurl handle
/// reused across requests, so they share a keep-alive connection as a Prometheus scraper's would.
final class LoopbackHTTP {
    private let handle: UnsafeMutableRawPointer
    private let sink = ResponseBytes()

    init() throws {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        guard let handle = curl_easy_init() else { throw BenchError("cannot create a curl handle") }
        self.handle = handle
    }

    deinit {
        curl_easy_cleanup(handle)
    }

    /// A response's status and body.
    struct Response {
        var status: Int
        var body: String
    }

    func get(_ url: String) throws -> Response {
        try perform(url, post: false)
    }

    /// POSTs an empty body to `url` with `Authorization: Bearer <token>`.
    func post(_ url: String, token: String) throws -> Response {
        var headers: UnsafeMutablePointer<curl_slist>? = curl_slist_append(nil, "Authorization: Bearer \(token)")
        defer {
            converge_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, nil)
            curl_slist_free_all(headers)
            headers = nil
        }
        converge_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, headers)
        return try perform(url, post: true)
    }

    private func perform(_ url: String, post: Bool) throws -> Response {
        sink.bytes.removeAll(keepingCapacity: true)
        converge_curl_setopt_string(handle, CURLOPT_URL, url)
        converge_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        converge_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, 2_000)
        converge_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, 30_000)
        if post {
            converge_curl_setopt_long(handle, CURLOPT_POST, 1)
            converge_curl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, 0)
            converge_curl_setopt_string(handle, CURLOPT_COPYPOSTFIELDS, "")
        } else {
            converge_curl_setopt_long(handle, CURLOPT_HTTPGET, 1)
        }
        converge_curl_setopt_write_callback(handle, CURLOPT_WRITEFUNCTION, collect)
        converge_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, Unmanaged.passUnretained(sink).toOpaque())
        let code = curl_easy_perform(handle)
        guard code == CURLE_OK else {
            throw BenchError("\(post ? "POST" : "GET") \(url): \(String(cString: curl_easy_strerror(code)))")
        }
        var status = 0
        converge_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return Response(status: status, body: String(decoding: sink.bytes, as: UTF8.self))
    }
}

/// Collects a response body; used only by the thread running `curl_easy_perform`.
private final class ResponseBytes {
    var bytes: [UInt8] = []
}

private let collect: converge_curl_write_callback = { data, size, count, userdata in
    guard let data, let userdata else { return 0 }
    let sink = Unmanaged<ResponseBytes>.fromOpaque(userdata).takeUnretainedValue()
    let length = size * count
    sink.bytes.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length))
    return length
}

/// Runs blocking work on a thread of its own, never on a Swift concurrency thread (two on this machine).
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    let result: Result<T, any Error> = await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: Result { try body() }) }
        thread.start()
    }
    return try result.get()
}
