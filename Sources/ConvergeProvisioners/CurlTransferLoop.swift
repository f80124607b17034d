import CCurl
import Foundation
import Synchronization

/// A libcurl multi handle that runs HTTP transfers on one thread of its own; every `CurlHTTPClient()` of the process
/// shares one, `shared`.
///
/// `curl_multi_*` and `curl_easy_*` calls are not thread-safe, so only the loop's thread touches the multi handle
/// and the easy handles. Other threads hand transfers in and cancel them through `state`, and wake the thread with
/// `curl_multi_wakeup`, the one multi call that is thread-safe. The thread blocks in `curl_multi_poll`, never a Swift
/// concurrency thread, so a hanging provisioner cannot starve the cooperative pool; a cancelled transfer is removed
/// from the multi handle at the next wake-up, which aborts it at once.
///
/// The multi handle keeps the connections of finished transfers open for the next request to the same host
/// (keep-alive), at most `maxIdleConnections` of them; libcurl checks that a cached connection is still alive before
/// it reuses one, and resends a request whose reused connection was closed under it. Easy handles are pooled too, and
/// reset with `curl_easy_reset` when their transfer ends, so no option, header, body or error of one request reaches
/// the next.
final class CurlTransferLoop: Sendable {
    /// How many idle connections the process keeps open for reuse, and how many easy handles it keeps for reuse.
    ///
    /// Provisioner hosts are few (one per declared webhook); 16 keeps each warm under the dispatcher's concurrency.
    /// When more connections than this are open at once, libcurl closes each that becomes idle, the oldest first.
    static let maxIdleConnections = 16

    /// The loop every `CurlHTTPClient()` of the process shares, started on first use.
    static let shared = CurlTransferLoop(maxIdleConnections: maxIdleConnections)

    private static let globalInit: Void = {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        // A TLS write to a peer that went away raises SIGPIPE, which must fail the transfer, not end the daemon.
        signal(SIGPIPE, SIG_IGN)
    }()

    private let driver: CurlMultiDriver

    /// A loop with its own connections and thread, which stops when the loop is released.
    init(maxIdleConnections: Int) {
        _ = Self.globalInit
        driver = CurlMultiDriver(maxIdleConnections: maxIdleConnections)
        let thread = Thread { [driver] in driver.run() }
        thread.name = "converge-curl"
        thread.start()
    }

    deinit {
        // No transfer is under way: each holds the loop until it ends.
        driver.stop()
    }

    /// Runs `request` to its end; a cancelled task ends it at once with `.cancelled`.
    func perform(_ request: HTTPRequest) async -> Result<HTTPResponse, HTTPTransportError> {
        let transfer = CurlTransfer(request: request)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in driver.submit(transfer, continuation) }
        } onCancel: {
            driver.cancel(transfer)
        }
    }
}

/// The multi handle of a `CurlTransferLoop` and the thread that drives it.
private final class CurlMultiDriver: Sendable {
    /// What other threads hand to the loop's thread.
    private struct State {
        var submitted: [CurlTransfer] = []
        var cancelled: [CurlTransfer] = []
        var stopped = false
    }

    private let state = Mutex(State())
    /// Touched by the loop's thread only, except `curl_multi_wakeup`.
    nonisolated(unsafe) private let multi: UnsafeMutableRawPointer
    private let maxIdleConnections: Int

    init(maxIdleConnections: Int) {
        guard let multi = curl_multi_init() else { fatalError("curl_multi_init failed: libcurl is unusable") }
        converge_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, maxIdleConnections)
        self.multi = multi
        self.maxIdleConnections = maxIdleConnections
    }

    func submit(
        _ transfer: CurlTransfer, _ continuation: CheckedContinuation<Result<HTTPResponse, HTTPTransportError>, Never>
    ) {
        let cancelledAlready = state.withLock { state in
            if transfer.cancelRequested { return true }
            transfer.continuation = continuation
            state.submitted.append(transfer)
            return false
        }
        if cancelledAlready {
            continuation.resume(returning: .failure(.cancelled))
        } else {
            curl_multi_wakeup(multi)
        }
    }

    func cancel(_ transfer: CurlTransfer) {
        state.withLock { state in
            transfer.cancelRequested = true
            state.cancelled.append(transfer)
        }
        curl_multi_wakeup(multi)
    }

    /// Ends the thread once no transfer is left, closing the connections and the multi handle.
    func stop() {
        state.withLock { $0.stopped = true }
        curl_multi_wakeup(multi)
    }

    /// The loop's thread: adds submitted transfers, removes cancelled ones, drives the rest, and finishes them.
    func run() {
        var active: [UnsafeMutableRawPointer: CurlTransfer] = [:]
        var idleHandles: [UnsafeMutableRawPointer] = []

        func finish(_ transfer: CurlTransfer, _ result: Result<HTTPResponse, HTTPTransportError>) {
            if let handle = transfer.handle {
                transfer.handle = nil
                if idleHandles.count < maxIdleConnections {
                    // The handle points at the transfer's headers, sink and error buffer, which go with it.
                    curl_easy_reset(handle)
                    idleHandles.append(handle)
                } else {
                    curl_easy_cleanup(handle)
                }
            }
            transfer.continuation?.resume(returning: result)
            transfer.continuation = nil
        }

        while true {
            let (submitted, cancelled, stopped) = state.withLock { state in
                defer {
                    state.submitted = []
                    state.cancelled = []
                }
                // A transfer cancelled before the loop saw it is finished here; a later cancellation is in a later
                // batch, by when the transfer is in `active`.
                return (state.submitted.map { ($0, $0.cancelRequested) }, state.cancelled, state.stopped)
            }
            if stopped && submitted.isEmpty && active.isEmpty {
                for handle in idleHandles { curl_easy_cleanup(handle) }
                curl_multi_cleanup(multi)
                return
            }
            for (transfer, cancelledAlready) in submitted {
                if cancelledAlready {
                    finish(transfer, .failure(.cancelled))
                    continue
                }
                let handle: UnsafeMutableRawPointer
                if let idle = idleHandles.popLast() {
                    handle = idle
                } else if let new = curl_easy_init() {
                    handle = new
                } else {
                    finish(transfer, .failure(.other("cannot create a curl handle")))
                    continue
                }
                transfer.handle = handle
                transfer.configure(handle)
                let added = curl_multi_add_handle(multi, handle)
                guard added == CURLM_OK else {
                    let message = String(cString: curl_multi_strerror(added))
                    finish(transfer, .failure(.other("cannot start the transfer: \(message)")))
                    continue
                }
                active[handle] = transfer
            }
            for transfer in cancelled {
                guard let handle = transfer.handle, active[handle] === transfer else { continue }
                active[handle] = nil
                curl_multi_remove_handle(multi, handle)
                finish(transfer, .failure(.cancelled))
            }

            var running: Int32 = 0
            curl_multi_perform(multi, &running)
            var queued: Int32 = 0
            while let message = curl_multi_info_read(multi, &queued) {
                guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle,
                    let transfer = active.removeValue(forKey: handle)
                else { continue }
                let code = converge_curl_msg_result(message)
                curl_multi_remove_handle(multi, handle)
                finish(transfer, transfer.result(of: code, handle: handle))
            }
            // curl_multi_poll returns earlier when a transfer's timer is due, or at curl_multi_wakeup.
            var ready: Int32 = 0
            curl_multi_poll(multi, nil, 0, active.isEmpty ? 60_000 : 1_000, &ready)
        }
    }
}

/// One request on its way through the loop.
///
/// `cancelRequested` and `continuation` are set under the loop's lock before the loop's thread takes the transfer;
/// everything else, and the continuation's resumption, belongs to the loop's thread.
final class CurlTransfer: @unchecked Sendable {
    let request: HTTPRequest
    let sink: ResponseSink
    var cancelRequested = false
    var continuation: CheckedContinuation<Result<HTTPResponse, HTTPTransportError>, Never>?
    var handle: UnsafeMutableRawPointer?
    private var headers: UnsafeMutablePointer<curl_slist>?
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))

    init(request: HTTPRequest) {
        self.request = request
        self.sink = ResponseSink(limit: request.maxResponseBytes)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit {
        curl_slist_free_all(headers)
        errorBuffer.deallocate()
    }

    /// Sets every option of this request on a fresh or freshly reset easy handle.
    func configure(_ handle: UnsafeMutableRawPointer) {
        for header in request.headers { headers = curl_slist_append(headers, "\(header.name): \(header.value)") }
        if !request.headers.contains(where: { $0.name.lowercased() == "expect" }) {
            // No `Expect: 100-continue` round trip before a large body.
            headers = curl_slist_append(headers, "Expect:")
        }
        converge_curl_setopt_string(handle, CURLOPT_URL, request.url)
        converge_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https")
        converge_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0)
        converge_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        converge_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1)
        converge_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2)
        converge_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, request.connectTimeout.milliseconds)
        converge_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, request.timeout.milliseconds)
        converge_curl_setopt_long(handle, CURLOPT_POST, 1)
        converge_curl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, request.body.count)
        if request.body.isEmpty {
            // A null body would make libcurl read the POST body from the daemon's stdin.
            converge_curl_setopt_string(handle, CURLOPT_COPYPOSTFIELDS, "")
        } else {
            request.body.withUnsafeBufferPointer { body in
                // COPYPOSTFIELDS copies the body, so it need not outlive this call.
                _ = converge_curl_setopt_pointer(
                    handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: body.baseAddress))
            }
        }
        converge_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, headers)
        converge_curl_setopt_write_callback(handle, CURLOPT_WRITEFUNCTION, writeToSink)
        converge_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, Unmanaged.passUnretained(sink).toOpaque())
        converge_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer)
    }

    /// What a finished transfer amounts to, read from `handle` before it is reused.
    func result(of code: CURLcode, handle: UnsafeMutableRawPointer) -> Result<HTTPResponse, HTTPTransportError> {
        guard code == CURLE_OK else { return .failure(error(of: code, handle: handle)) }
        var status = 0
        converge_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return .success(HTTPResponse(status: status, body: sink.bytes))
    }

    private func error(of code: CURLcode, handle: UnsafeMutableRawPointer) -> HTTPTransportError {
        let detail = String(cString: errorBuffer)
        let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        switch code {
        case CURLE_WRITE_ERROR where sink.exceeded:
            return .responseTooLarge(request.maxResponseBytes)
        case CURLE_OPERATION_TIMEDOUT:
            return timeoutError(handle: handle)
        case CURLE_PARTIAL_FILE:
            var expected: curl_off_t = -1
            converge_curl_getinfo_off_t(handle, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &expected)
            guard expected >= 0 else { return .connection(message) }
            return .connection(
                "the answer ended after \(sink.bytes.count) of the \(expected) bytes its Content-Length announced")
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_SEND_ERROR, CURLE_RECV_ERROR,
            CURLE_GOT_NOTHING:
            return .connection(message)
        default:
            return .other(message)
        }
    }

    /// Which of the two timers fired: the connect timeout (TCP connect and TLS handshake, a connection failure worth
    /// retrying) or the whole call's.
    ///
    /// libcurl reports both as `CURLE_OPERATION_TIMEDOUT`; the connect timeout is the shorter, so a transfer that
    /// ended before the whole call's timeout ran out ended on the connect timeout.
    private func timeoutError(handle: UnsafeMutableRawPointer) -> HTTPTransportError {
        var total: curl_off_t = 0
        converge_curl_getinfo_off_t(handle, CURLINFO_TOTAL_TIME_T, &total)
        guard request.connectTimeout < request.timeout, total < request.timeout.microseconds else {
            return .timeout(request.timeout)
        }
        // libcurl counts the TLS handshake into the connect time, which stays 0 until it is done; the local port is
        // set once the TCP connection is.
        var localPort = 0
        converge_curl_getinfo_long(handle, CURLINFO_LOCAL_PORT, &localPort)
        let phase: String
        if localPort == 0 {
            phase = "no TCP connection to \(target(handle: handle))"
        } else if request.url.lowercased().hasPrefix("https:") {
            phase = "TLS handshake with \(target(handle: handle)) did not finish"
        } else {
            phase = "connecting to \(target(handle: handle))"
        }
        return .connection("connect timed out after \(request.connectTimeout.secondsText) (\(phase))")
    }

    /// The address a transfer connected to, or the URL's host and port when it got none.
    private func target(handle: UnsafeMutableRawPointer) -> String {
        var address: UnsafePointer<CChar>? = nil
        converge_curl_getinfo_string(handle, CURLINFO_PRIMARY_IP, &address)
        var port = 0
        converge_curl_getinfo_long(handle, CURLINFO_PRIMARY_PORT, &port)
        if let address, address.pointee != 0, port > 0 {
            let ip = String(cString: address)
            return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
        }
        guard let components = URLComponents(string: request.url), let host = components.host else {
            return "the provisioner"
        }
        return components.port.map { "\(host):\($0)" } ?? host
    }
}

/// Collects a response body up to a limit; used only by the loop's thread.
final class ResponseSink {
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

extension Duration {
    /// Whole milliseconds, rounded down.
    var milliseconds: Int {
        Int(components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000)
    }

    /// Whole microseconds, rounded down, as libcurl's `*_TIME_T` values count.
    var microseconds: Int64 {
        components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000
    }

    /// Seconds for a message, to the nearest millisecond and no longer: `5s`, `0.25s`.
    var secondsText: String {
        let milliseconds = Int((Double(microseconds) / 1000).rounded())
        guard milliseconds % 1000 != 0 else { return "\(milliseconds / 1000)s" }
        var text = String(format: "%.3f", Double(milliseconds) / 1000)
        while text.hasSuffix("0") { text.removeLast() }
        return text + "s"
    }
}
