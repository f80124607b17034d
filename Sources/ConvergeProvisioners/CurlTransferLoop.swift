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
        // A call holds the loop until it ends; a stream may outlive it, and the thread ends only once none is left.
        driver.stop()
    }

    /// Runs `request` to its end; a cancelled task ends it at once with `.cancelled`.
    func perform(_ request: HTTPRequest) async -> Result<HTTPResponse, HTTPTransportError> {
        await run(CurlTransfer(request: request, destination: .collect(limit: request.maxResponseBytes)))
    }

    /// Runs `request` until its response's head has arrived, and hands its body on as it arrives; a cancelled task
    /// ends it at once with `.cancelled` until then, and the body's consumer ends it once it stops iterating.
    func stream(_ request: HTTPRequest) async -> Result<HTTPStreamingResponse, HTTPTransportError> {
        let (body, bodyContinuation) = AsyncThrowingStream.makeStream(of: [UInt8].self)
        let transfer = CurlTransfer(request: request, destination: .stream(bodyContinuation))
        // The closure holds the transfer, which holds the continuation: the cycle ends with the stream.
        bodyContinuation.onTermination = { [driver] termination in
            if case .cancelled = termination { driver.cancel(transfer) }
        }
        let head = await run(transfer)
        if case .failure(let error) = head { bodyContinuation.finish(throwing: error) }
        return head.map { HTTPStreamingResponse(status: $0.status, headers: $0.headers, body: body) }
    }

    /// Hands `transfer` to the loop's thread and waits for its response (for a stream, its head).
    private func run(_ transfer: CurlTransfer) async -> Result<HTTPResponse, HTTPTransportError> {
        await withTaskCancellationHandler {
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

        func finish(_ transfer: CurlTransfer, _ outcome: Result<Void, HTTPTransportError>) {
            if let handle = transfer.handle {
                transfer.handle = nil
                if idleHandles.count < maxIdleConnections {
                    // The handle points at the transfer's headers, callbacks and error buffer, which go with it.
                    curl_easy_reset(handle)
                    idleHandles.append(handle)
                } else {
                    curl_easy_cleanup(handle)
                }
            }
            transfer.complete(outcome)
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
                finish(transfer, transfer.outcome(of: code, handle: handle))
            }
            // curl_multi_poll returns earlier when a transfer's timer is due, or at curl_multi_wakeup.
            var ready: Int32 = 0
            curl_multi_poll(multi, nil, 0, active.isEmpty ? 60_000 : 1_000, &ready)
        }
    }
}

/// One request on its way through the loop, and its response as it arrives.
///
/// `cancelRequested` and `continuation` are set under the loop's lock before the loop's thread takes the transfer;
/// everything else, the libcurl callbacks and the continuation's resumption belong to the loop's thread.
final class CurlTransfer: @unchecked Sendable {
    /// Where the response body goes.
    enum Destination {
        /// Into `body`, up to `limit` bytes; the continuation is resumed with the whole response.
        case collect(limit: Int)
        /// Into the stream, chunk by chunk; the continuation is resumed with the head (and an empty body).
        case stream(AsyncThrowingStream<[UInt8], any Error>.Continuation)
    }

    let request: HTTPRequest
    let destination: Destination
    var cancelRequested = false
    var continuation: CheckedContinuation<Result<HTTPResponse, HTTPTransportError>, Never>?
    var handle: UnsafeMutableRawPointer?
    private var headers: UnsafeMutablePointer<curl_slist>?
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))

    /// The response's status and header fields, complete once `headComplete`.
    private var status = 0
    private var responseHeaders: [(name: String, value: String)] = []
    private var headComplete = false
    /// The collected body, and how many body bytes arrived (collected or streamed).
    private var body: [UInt8] = []
    private var received = 0
    /// The collected body outgrew its limit, or the stream's consumer went away: why the write callback refused.
    private var exceeded = false
    private var abandoned = false

    init(request: HTTPRequest, destination: Destination) {
        self.request = request
        self.destination = destination
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit {
        curl_slist_free_all(headers)
        errorBuffer.deallocate()
    }

    /// The whole call's timeout; a stream has none.
    private var timeout: Duration? {
        if case .collect = destination { request.timeout } else { nil }
    }

    /// Sets every option of this request on a fresh or freshly reset easy handle.
    func configure(_ handle: UnsafeMutableRawPointer) {
        for header in request.headers {
            // libcurl (7.88) signs every line of this list for AWS: a User-Agent goes unsigned, as the AWS SDKs send
            // it (moto, which checks signatures with botocore, refuses a signed one).
            if request.aws != nil, header.name.caseInsensitiveCompare("User-Agent") == .orderedSame {
                converge_curl_setopt_string(handle, CURLOPT_USERAGENT, header.value)
                continue
            }
            // `Name:` would remove a header that libcurl adds; `Name;` sends one with an empty value.
            let line = header.value.isEmpty ? "\(header.name);" : "\(header.name): \(header.value)"
            headers = curl_slist_append(headers, line)
        }
        // Nothing of libcurl's own: no `Expect: 100-continue` round trip before a large body, no `Accept: */*`, no
        // form Content-Type for a body that is none. Not for an AWS request: libcurl (7.88) signs these removal lines
        // as headers with an empty value, which are not sent, so the signature would not match.
        for name in ["Expect", "Accept", "Content-Type"]
        where request.aws == nil
            && !request.headers.contains(where: { $0.name.caseInsensitiveCompare(name) == .orderedSame })
        {
            headers = curl_slist_append(headers, "\(name):")
        }
        converge_curl_setopt_string(handle, CURLOPT_URL, request.url)
        converge_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https")
        converge_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0)
        converge_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        converge_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1)
        converge_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2)
        if let authority = request.certificateAuthority {
            converge_curl_setopt_string(handle, CURLOPT_CAINFO, authority)
        }
        converge_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, request.connectTimeout.milliseconds)
        converge_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, timeout?.milliseconds ?? 0)
        // A proxy's answer to CONNECT is not the response's head.
        converge_curl_setopt_long(handle, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1)
        configureMethod(handle)
        converge_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, headers)
        let this = Unmanaged.passUnretained(self).toOpaque()
        converge_curl_setopt_write_callback(handle, CURLOPT_HEADERFUNCTION, receiveHeaderLine)
        converge_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, this)
        converge_curl_setopt_write_callback(handle, CURLOPT_WRITEFUNCTION, receiveBodyBytes)
        converge_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, this)
        converge_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer)
        if let aws = request.aws {
            // libcurl signs the request itself (AWS Signature Version 4), headers and body as sent.
            converge_curl_setopt_string(handle, CURLOPT_AWS_SIGV4, aws.provider)
            converge_curl_setopt_string(handle, CURLOPT_USERNAME, aws.accessKeyID)
            converge_curl_setopt_string(handle, CURLOPT_PASSWORD, aws.secretAccessKey)
        }
    }

    /// The method, and the body with it: libcurl's POST machinery sends any body, under a custom method if need be.
    private func configureMethod(_ handle: UnsafeMutableRawPointer) {
        let method = request.method
        let sendsBody = ["POST", "PUT", "PATCH"].contains(method)
        if method == "HEAD" {
            converge_curl_setopt_long(handle, CURLOPT_NOBODY, 1)
        } else if let body = request.body ?? (sendsBody ? [] : nil) {
            converge_curl_setopt_long(handle, CURLOPT_POST, 1)
            converge_curl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, body.count)
            if body.isEmpty {
                // A null body would make libcurl read the POST body from the daemon's stdin.
                converge_curl_setopt_string(handle, CURLOPT_COPYPOSTFIELDS, "")
            } else {
                body.withUnsafeBufferPointer { body in
                    // COPYPOSTFIELDS copies the body, so it need not outlive this call.
                    _ = converge_curl_setopt_pointer(
                        handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: body.baseAddress))
                }
            }
            if method != "POST" { converge_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method) }
        } else {
            converge_curl_setopt_long(handle, CURLOPT_HTTPGET, 1)
            if method != "GET" { converge_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method) }
        }
    }

    /// One line of a response's head, CR LF included.
    ///
    /// A status line starts a head, an empty line ends it; an interim head (`100 Continue`, `103 Early Hints`) is
    /// dropped, and lines after the final head (trailers) are ignored.
    fileprivate func receiveHeader(_ line: UnsafeRawBufferPointer) {
        guard !headComplete else { return }
        var end = line.count
        while end > 0, line[end - 1] == 0x0A || line[end - 1] == 0x0D { end -= 1 }
        let text = String(decoding: line[..<end], as: UTF8.self)
        if text.hasPrefix("HTTP/") {
            status = text.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
            responseHeaders = []
        } else if text.isEmpty {
            guard !(100..<200).contains(status) else { return }
            headComplete = true
            if case .stream = destination { deliverHead() }
        } else if let first = text.first, first == " " || first == "\t", !responseHeaders.isEmpty {
            // An obsolete folded line continues the field before it.
            responseHeaders[responseHeaders.count - 1].value += " " + text.trimmingCharacters(in: .whitespaces)
        } else if let colon = text.firstIndex(of: ":") {
            let value = text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            responseHeaders.append((name: String(text[..<colon]), value: value))
        }
    }

    /// Body bytes as libcurl received them; returns false to abort the transfer.
    fileprivate func receiveBody(_ bytes: UnsafeRawBufferPointer) -> Bool {
        switch destination {
        case .collect(let limit):
            guard body.count + bytes.count <= limit else {
                exceeded = true
                return false
            }
            body.append(contentsOf: bytes)
        case .stream(let stream):
            deliverHead()
            guard case .enqueued = stream.yield(Array(bytes)) else {
                abandoned = true
                return false
            }
        }
        received += bytes.count
        return true
    }

    /// Resumes the caller of a stream with the response's head, once.
    private func deliverHead() {
        continuation?.resume(returning: .success(HTTPResponse(status: status, headers: responseHeaders, body: [])))
        continuation = nil
    }

    /// Hands the transfer's end to whoever waits for it: the caller, the stream's consumer, or both.
    func complete(_ outcome: Result<Void, HTTPTransportError>) {
        switch (destination, outcome) {
        case (.collect, _):
            continuation?.resume(
                returning: outcome.map { HTTPResponse(status: status, headers: responseHeaders, body: body) })
        case (.stream(let stream), .success):
            deliverHead()
            stream.finish()
        case (.stream(let stream), .failure(let error)):
            continuation?.resume(returning: .failure(error))
            stream.finish(throwing: error)
        }
        continuation = nil
    }

    /// What a finished transfer amounts to, read from `handle` before it is reused.
    func outcome(of code: CURLcode, handle: UnsafeMutableRawPointer) -> Result<Void, HTTPTransportError> {
        guard code == CURLE_OK else { return .failure(error(of: code, handle: handle)) }
        converge_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return .success(())
    }

    private func error(of code: CURLcode, handle: UnsafeMutableRawPointer) -> HTTPTransportError {
        let detail = String(cString: errorBuffer)
        let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        switch code {
        case CURLE_WRITE_ERROR where exceeded:
            return .responseTooLarge(request.maxResponseBytes)
        case CURLE_WRITE_ERROR where abandoned:
            return .cancelled
        case CURLE_OPERATION_TIMEDOUT:
            return timeoutError(handle: handle)
        case CURLE_PARTIAL_FILE:
            var expected: curl_off_t = -1
            converge_curl_getinfo_off_t(handle, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &expected)
            guard expected >= 0 else { return .connection(message) }
            return .connection(
                "the answer ended after \(received) of the \(expected) bytes its Content-Length announced")
        case CURLE_COULDNT_CONNECT:
            // The system's reason (`connection refused`, `no route to host`) says more than libcurl's message.
            var systemError = 0
            converge_curl_getinfo_long(handle, CURLINFO_OS_ERRNO, &systemError)
            guard systemError != 0 else { return .unreachable(message) }
            let reason = String(cString: strerror(Int32(systemError)))
            return .unreachable("\(reason.prefix(1).lowercased())\(reason.dropFirst()) (\(target(handle: handle)))")
        case CURLE_COULDNT_RESOLVE_HOST:
            let host = URLComponents(string: request.url)?.host ?? request.url
            return .unreachable("unknown host \(host)")
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION:
            return .unreachable("TLS handshake with \(target(handle: handle)) failed: \(message)")
        case CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING:
            return .connection(message)
        default:
            return .other(message)
        }
    }

    /// Which of the two timers fired: the connect timeout (TCP connect and TLS handshake, a connection failure worth
    /// retrying) or the whole call's.
    ///
    /// libcurl reports both as `CURLE_OPERATION_TIMEDOUT`; the connect timeout is the shorter, so a transfer that
    /// ended before the whole call's timeout ran out ended on the connect timeout. A stream has only the former.
    ///
    /// When the whole call's timer fired before the request was sent (the transfer never reached its pre-transfer
    /// point), the server was not reached either: that is `.unreachable` too, never a lost answer.
    private func timeoutError(handle: UnsafeMutableRawPointer) -> HTTPTransportError {
        var total: curl_off_t = 0
        converge_curl_getinfo_off_t(handle, CURLINFO_TOTAL_TIME_T, &total)
        var limit = request.connectTimeout
        if let timeout, request.connectTimeout >= timeout || total >= timeout.microseconds {
            var pretransfer: curl_off_t = 0
            converge_curl_getinfo_off_t(handle, CURLINFO_PRETRANSFER_TIME_T, &pretransfer)
            guard pretransfer == 0 else { return .timeout(timeout) }
            limit = timeout
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
        return .unreachable("connect timed out after \(limit.secondsText) (\(phase))")
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

/// libcurl's CURLOPT_HEADERFUNCTION: a line of the response's head, handed to its transfer.
private let receiveHeaderLine: converge_curl_write_callback = { data, size, count, userdata in
    guard let data, let userdata else { return 0 }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue()
    let length = size * count
    transfer.receiveHeader(UnsafeRawBufferPointer(start: data, count: length))
    return length
}

/// libcurl's CURLOPT_WRITEFUNCTION: body bytes, handed to their transfer.
private let receiveBodyBytes: converge_curl_write_callback = { data, size, count, userdata in
    guard let data, let userdata else { return 0 }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue()
    let length = size * count
    return transfer.receiveBody(UnsafeRawBufferPointer(start: data, count: length)) ? length : 0
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
