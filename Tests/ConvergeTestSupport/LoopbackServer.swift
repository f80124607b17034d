import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A request the loopback server received.
public struct RecordedRequest: Sendable {
    /// The method, upper-case: `POST`, `GET`, ….
    public var method: String
    public var path: String
    /// The query string, without its `?`, when there is one.
    public var query: String?
    /// The client's port: requests on one connection share it.
    public var remotePort: Int?
    /// When the request arrived and when its answer was sent (nil while it is pending).
    public var receivedAt: ContinuousClock.Instant
    public var answeredAt: ContinuousClock.Instant?
    /// When the request's connection closed (nil while it is open).
    public var connectionClosedAt: ContinuousClock.Instant?
    /// Header values by lower-case name.
    public var headers: [String: String]
    public var body: Data

    /// A header's value, by name in any case.
    public func header(_ name: String) -> String? {
        headers[name.lowercased()]
    }

    /// The body as JSON, when it is.
    public var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
    }
}

/// What the scripted server answers, after an optional delay.
public struct ScriptedResponse: Sendable {
    public var status: Int
    public var body: String
    public var delay: Duration
    /// Header fields to send; `Content-Type: application/json` unless they name another.
    public var headers: [(name: String, value: String)]
    /// When set, the body goes on after `body` with each string of this stream, sent as soon as it is yielded, and
    /// ends when the stream finishes: a stream of Server-Sent Events.
    public var stream: AsyncStream<String>?

    public init(
        status: Int, body: String = "", delay: Duration = .zero, headers: [(name: String, value: String)] = [],
        stream: AsyncStream<String>? = nil
    ) {
        self.status = status
        self.body = body
        self.delay = delay
        self.headers = headers
        self.stream = stream
    }
}

/// An HTTP server on 127.0.0.1 with an ephemeral port that answers every request (GET, HEAD, POST, PUT, DELETE,
/// PATCH) with a script and records it.
public final class LoopbackServer: Sendable {
    public let port: Int
    private let task: Task<Void, any Error>
    private let recorder: Recorder

    private actor Recorder {
        var requests: [RecordedRequest] = []

        func record(_ request: RecordedRequest) -> Int {
            requests.append(request)
            return requests.count
        }

        func answered(_ index: Int) {
            requests[index - 1].answeredAt = .now
        }

        func connectionClosed(_ index: Int) {
            if requests[index - 1].connectionClosedAt == nil { requests[index - 1].connectionClosedAt = .now }
        }
    }

    private init(port: Int, task: Task<Void, any Error>, recorder: Recorder) {
        self.port = port
        self.task = task
        self.recorder = recorder
    }

    /// The request context of the scripted server: the basic one, the client's port, and when its connection closes.
    private struct Context: RequestContext {
        var coreContext: CoreRequestContextStorage
        let remotePort: Int?
        let connectionClosed: EventLoopFuture<Void>

        init(source: ApplicationRequestContextSource) {
            coreContext = .init(source: source)
            remotePort = source.channel.remoteAddress?.port
            connectionClosed = source.channel.closeFuture
        }
    }

    /// Starts a server whose answer to the n-th request (1-based) is `script(n, request)`; on `port`, when given
    /// (a restart of a stopped server), else on an ephemeral one.
    public static func start(
        port: Int = 0, script: @escaping @Sendable (Int, RecordedRequest) async -> ScriptedResponse
    ) async throws -> LoopbackServer {
        let recorder = Recorder()
        let router = Router(context: Context.self)
        let answer: @Sendable (Request, Context) async throws -> Response = { request, context in
            let body = try await request.body.collect(upTo: 16 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName.lowercased()] = field.value }
            let recorded = RecordedRequest(
                method: request.method.rawValue, path: request.uri.path, query: request.uri.query,
                remotePort: context.remotePort, receivedAt: .now, headers: headers, body: Data(buffer: body))
            let index = await recorder.record(recorded)
            context.connectionClosed.whenComplete { _ in Task { await recorder.connectionClosed(index) } }
            let answer = await script(index, recorded)
            if answer.delay > .zero { try? await Task.sleep(until: .now + answer.delay) }
            await recorder.answered(index)
            var fields: HTTPFields = [.contentType: "application/json"]
            for header in answer.headers {
                guard let name = HTTPField.Name(header.name) else { continue }
                if name == .contentType { fields[name] = nil }
                fields.append(HTTPField(name: name, value: header.value))
            }
            guard let stream = answer.stream else {
                return Response(
                    status: .init(code: answer.status), headers: fields,
                    body: .init(byteBuffer: ByteBuffer(string: answer.body)))
            }
            let first = answer.body
            return Response(
                status: .init(code: answer.status), headers: fields,
                body: ResponseBody { writer in
                    // The script's pieces, and an event-stream comment line every 100 ms: with remote half-closure
                    // on, a client that went away is seen at a write, not while the stream is quiet.
                    let (pieces, feed) = AsyncStream.makeStream(of: String.self)
                    let forward = Task {
                        for await piece in stream { feed.yield(piece) }
                        feed.finish()
                    }
                    let heartbeat = Task {
                        while (try? await Task.sleep(for: .milliseconds(100))) != nil { feed.yield(": heartbeat\n") }
                    }
                    defer {
                        forward.cancel()
                        heartbeat.cancel()
                    }
                    do {
                        if !first.isEmpty { try await writer.write(ByteBuffer(string: first)) }
                        for await piece in pieces { try await writer.write(ByteBuffer(string: piece)) }
                    } catch {
                        await recorder.connectionClosed(index)
                        throw error
                    }
                    try await writer.finish(nil)
                })
        }
        // Every path, the root too (`**` needs a component): an AWS API is called at `/`.
        for method: HTTPRequest.Method in [.get, .head, .post, .put, .delete, .patch] {
            router.on("/", method: method, use: answer)
            router.on("**", method: method, use: answer)
        }
        let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
            onServerRunning: { channel in portContinuation.yield(channel.localAddress?.port ?? 0) },
            logger: Logger(label: "loopback", factory: { _ in SwiftLogNoOpLogHandler() }))
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var ports = portStream.makeAsyncIterator()
        guard let port = await ports.next(), port > 0 else {
            task.cancel()
            throw CancellationError()
        }
        return LoopbackServer(port: port, task: task, recorder: recorder)
    }

    /// Every request received so far, in order.
    public var requests: [RecordedRequest] {
        get async { await recorder.requests }
    }

    public var url: String { "http://127.0.0.1:\(port)/deploy" }

    /// The server's address without a path: `http://127.0.0.1:PORT`.
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    public func stop() async {
        task.cancel()
        _ = await task.result
    }
}

/// A TCP server on 127.0.0.1 that answers every request with the same raw bytes and closes the connection, or, with
/// no answer, accepts connections and never says a word (a port that never speaks TLS, a provisioner that hangs).
///
/// For answers that no well-behaved HTTP server sends: a body shorter than its Content-Length, a status line alone.
public final class RawLoopbackServer: Sendable {
    public let port: Int
    private let channel: any Channel
    private let accepted: Accepted

    /// The connections the server accepted.
    private final class Accepted: Sendable {
        let channels = Mutex<[any Channel]>([])
    }

    private init(port: Int, channel: any Channel, accepted: Accepted) {
        self.port = port
        self.channel = channel
        self.accepted = accepted
    }

    /// Starts a server that sends `answer` once a request's head and body have arrived, then closes; with nil, one
    /// that never answers.
    public static func start(answer: [UInt8]?) async throws -> RawLoopbackServer {
        let accepted = Accepted()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                accepted.channels.withLock { $0.append(channel) }
                return channel.eventLoop.makeCompletedFuture {
                    if let answer { try channel.pipeline.syncOperations.addHandler(RawAnswerHandler(answer: answer)) }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        guard let port = channel.localAddress?.port else {
            try? await channel.close()
            throw CancellationError()
        }
        return RawLoopbackServer(port: port, channel: channel, accepted: accepted)
    }

    /// How many connections it accepted so far.
    public var connections: Int {
        accepted.channels.withLock { $0.count }
    }

    public func url(scheme: String = "http") -> String { "\(scheme)://127.0.0.1:\(port)/deploy" }

    /// Stops listening and closes every connection it accepted.
    public func stop() async {
        try? await channel.close()
        for child in accepted.channels.withLock({ $0 }) { try? await child.close() }
    }
}

/// Reads one HTTP request (its head, then Content-Length bytes of body), writes the scripted bytes and closes.
private final class RawAnswerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let answer: [UInt8]
    var received: [UInt8] = []
    var answered = false

    init(answer: [UInt8]) {
        self.answer = answer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        received += buffer.readBytes(length: buffer.readableBytes) ?? []
        guard !answered, requestIsComplete else { return }
        answered = true
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: answer)), promise: nil)
        context.close(promise: nil)
    }

    private var requestIsComplete: Bool {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let end = received.indices.first(where: { received[$0...].starts(with: separator) }) else {
            return false
        }
        let head = String(decoding: received[..<end], as: UTF8.self).lowercased()
        let length =
            head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
            .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
        return received.count - end - separator.count >= length
    }
}
