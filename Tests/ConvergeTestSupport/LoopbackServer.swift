import Foundation
import Hummingbird
import Logging
import NIOCore

/// A request the loopback server received.
public struct RecordedRequest: Sendable {
    public var path: String
    /// When the request arrived and when its answer was sent (nil while it is pending).
    public var receivedAt: ContinuousClock.Instant
    public var answeredAt: ContinuousClock.Instant?
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

    public init(status: Int, body: String = "", delay: Duration = .zero) {
        self.status = status
        self.body = body
        self.delay = delay
    }
}

/// An HTTP server on 127.0.0.1 with an ephemeral port that answers every POST with a script and records it.
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
    }

    private init(port: Int, task: Task<Void, any Error>, recorder: Recorder) {
        self.port = port
        self.task = task
        self.recorder = recorder
    }

    /// Starts a server whose answer to the n-th request (1-based) is `script(n, request)`.
    public static func start(
        script: @escaping @Sendable (Int, RecordedRequest) async -> ScriptedResponse
    ) async throws -> LoopbackServer {
        let recorder = Recorder()
        let router = Router()
        router.post("**") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 16 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName.lowercased()] = field.value }
            let recorded = RecordedRequest(
                path: request.uri.path, receivedAt: .now, headers: headers, body: Data(buffer: body))
            let index = await recorder.record(recorded)
            let answer = await script(index, recorded)
            if answer.delay > .zero { try? await Task.sleep(until: .now + answer.delay) }
            await recorder.answered(index)
            return Response(
                status: .init(code: answer.status), headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: answer.body)))
        }
        let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
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

    public func stop() async {
        task.cancel()
        _ = await task.result
    }
}
