import ConvergeCore
import Foundation
import Hummingbird
import Logging
import Synchronization

/// The instant provisioner as a webhook on 127.0.0.1 (HTTP/1.1, keep-alive): every POST is answered at once with
/// `{"status": "completed", "outputs": {…}}`, one output per artifact the request names, so that downstream
/// connections unblock. Outputs depend only on the instance and artifact, so a redeploy changes nothing downstream.
final class InstantWebhook: Sendable {
    let port: Int
    private let task: Task<Void, any Error>
    private let counter: Counter

    private init(port: Int, task: Task<Void, any Error>, counter: Counter) {
        self.port = port
        self.task = task
        self.counter = counter
    }

    /// Requests answered so far.
    var requests: Int { counter.count.load(ordering: .relaxed) }

    static func start(port: Int) async throws -> InstantWebhook {
        let counter = Counter()
        let router = Router()
        router.post("**") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 16 << 20)
            let text = String(buffer: body)
            if counter.count.add(1, ordering: .relaxed).oldValue == 0 { counter.sample.withLock { $0 = text } }
            let (instance, answer) = answer(to: text)
            counter.lastAnswer.withLock { $0 = (instance, .now) }
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: answer)))
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) },
            logger: Logger(label: "instant-webhook", factory: { _ in SwiftLogNoOpLogHandler() }))
        let task = Task {
            defer { continuation.finish() }
            try await app.runService(gracefulShutdownSignals: [])
        }
        var iterator = ports.makeAsyncIterator()
        guard let bound = await iterator.next(), bound > 0 else {
            task.cancel()
            let result = await task.result
            if case .failure(let error) = result {
                throw BenchError("cannot serve the instant webhook on 127.0.0.1:\(port): \(error)")
            }
            throw BenchError("cannot serve the instant webhook on 127.0.0.1:\(port)")
        }
        return InstantWebhook(port: bound, task: task, counter: counter)
    }

    /// The body of the first request, a real provisioner request for the loopback HTTP ceiling.
    var sampleBody: String? { counter.sample.withLock { $0 } }

    /// The instance of the last request answered, and when its answer was made (just before it is sent).
    var lastAnswer: (instance: String, at: ContinuousClock.Instant)? { counter.lastAnswer.withLock { $0 } }

    /// Holds the request counter, a sample body and the last answer across the router's closures.
    private final class Counter: Sendable {
        let count = Atomic<Int>(0)
        let sample = Mutex<String?>(nil)
        let lastAnswer = Mutex<(instance: String, at: ContinuousClock.Instant)?>(nil)
    }

    /// The instance a provisioner request names, and the answer to it: completed, with an output per artifact.
    static func answer(to body: String) -> (instance: String, answer: String) {
        guard let request = try? Value(json: body), let artifacts = request["artifacts"]?.objectValue else {
            return ("unknown", #"{"status":"completed","outputs":{}}"#)
        }
        let instance = request["deployment"]?["instance"]?.stringValue ?? "unknown"
        var outputs: [String: Value] = [:]
        for (name, type) in artifacts {
            outputs[name] = [
                "id": .string("\(instance)-\(name)"), "type": type,
                "endpoint": .string("https://\(instance).\(name).bench.internal:443"),
            ]
        }
        return (instance, Value.object(["status": "completed", "outputs": .object(outputs)]).canonicalJSON)
    }

    func stop() async {
        task.cancel()
        _ = await task.result
    }
}
