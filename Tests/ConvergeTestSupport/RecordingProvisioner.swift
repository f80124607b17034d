import Foundation
import Hummingbird
import Logging
import NIOCore

/// A webhook provisioner on 127.0.0.1 for fault tests, in the test process so that it outlives daemon restarts.
///
/// It honours `Idempotency-Key` as a careful provisioner does: each key is applied at most once. The first request
/// of a key starts its apply (which takes the configured delay and completes with an output per artifact of the
/// request); a request for a key being applied waits for that apply and answers its result; a request for a key
/// already applied replays the recorded answer. An apply runs on its own task, so it finishes and its answer is
/// kept even when the client that asked for it is gone. It records every request and every apply, and checks no
/// signature.
public final class RecordingProvisioner: Sendable {
    /// How long one apply takes.
    public enum Delay: Sendable {
        case fixed(Duration)
        /// Uniformly random in the range (milliseconds), drawn in the order applies start from a generator seeded
        /// with `seed`.
        case random(milliseconds: ClosedRange<Int>, seed: UInt64)
    }

    /// What a request amounted to.
    public enum Kind: String, Sendable {
        /// The first request of its key: it started the apply.
        case apply
        /// Its key was being applied: answered with that apply's result once it ended.
        case wait
        /// Its key had been applied: answered with the recorded result at once.
        case replay
        /// No `Idempotency-Key` or no deployment document: answered 400.
        case refused
    }

    /// A request the provisioner received.
    public struct Request: Sendable {
        public var key: String
        public var deploymentID: String
        public var instance: String
        public var kind: Kind
        public var body: Data
        public var receivedAt: ContinuousClock.Instant
        /// When the answer was handed to the server; nil while pending.
        public var answeredAt: ContinuousClock.Instant?
    }

    /// The real work done for one key.
    public struct Apply: Sendable {
        public var key: String
        public var deploymentID: String
        public var instance: String
        public var startedAt: ContinuousClock.Instant
        /// Nil while the apply runs.
        public var endedAt: ContinuousClock.Instant?
    }

    public let port: Int
    private let task: Task<Void, any Error>
    private let journal: Journal

    private init(port: Int, task: Task<Void, any Error>, journal: Journal) {
        self.port = port
        self.task = task
        self.journal = journal
    }

    /// Starts a provisioner whose applies take `delay`.
    public static func start(delay: Delay) async throws -> RecordingProvisioner {
        let journal = Journal(delay: delay)
        let router = Router()
        router.post("**") { request, _ -> Response in
            let body = Data(buffer: try await request.body.collect(upTo: 16 << 20))
            var key: String?
            for field in request.headers where field.name.canonicalName.lowercased() == "idempotency-key" {
                key = field.value
            }
            let (index, result) = await journal.admit(key: key, body: body)
            let answer = await result.value
            await journal.answered(index)
            return Response(
                status: .init(code: answer.status), headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: answer.body)))
        }
        let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in portContinuation.yield(channel.localAddress?.port ?? 0) },
            logger: Logger(label: "recording-provisioner", factory: { _ in SwiftLogNoOpLogHandler() }))
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var ports = portStream.makeAsyncIterator()
        guard let port = await ports.next(), port > 0 else {
            task.cancel()
            throw CancellationError()
        }
        return RecordingProvisioner(port: port, task: task, journal: journal)
    }

    public var url: String { "http://127.0.0.1:\(port)/deploy" }

    /// Every request so far, in arrival order.
    public var requests: [Request] {
        get async { await journal.requests }
    }

    /// Every apply so far, in start order.
    public var applies: [Apply] {
        get async { await journal.applies }
    }

    /// Every two requests for one instance that were in flight at once (the later one arrived before the earlier
    /// one was answered), as "instance: key and key"; a daemon must never make one.
    public var overlappingCalls: [String] {
        get async {
            let byInstance = Dictionary(grouping: await journal.requests.filter { $0.kind != .refused }, by: \.instance)
            return byInstance.sorted { $0.key < $1.key }.flatMap { instance, requests in
                let ordered = requests.sorted { $0.receivedAt < $1.receivedAt }
                return ordered.indices.flatMap { earlier in
                    ordered[(earlier + 1)...].filter { later in
                        ordered[earlier].answeredAt.map { $0 > later.receivedAt } ?? true
                    }.map { "\(instance): \(ordered[earlier].key) and \($0.key)" }
                }
            }
        }
    }

    /// The journal for people: every request and apply, times in seconds since the provisioner started.
    public func report() async -> String {
        await journal.report()
    }

    public func stop() async {
        task.cancel()
        _ = await task.result
    }

    /// A status and JSON body to answer.
    struct Answer: Sendable {
        var status: Int
        var body: String
    }

    /// The requests, the applies and the answer of every key, behind one lock so that admitting a request (apply,
    /// wait or replay) is one decision.
    private actor Journal {
        let origin = ContinuousClock.now
        var requests: [Request] = []
        var applies: [Apply] = []
        /// The apply of each key (index into `applies`) and its result, which a finished apply holds for replays.
        var results: [String: (apply: Int, answer: Task<Answer, Never>)] = [:]
        let fixedDelay: Duration
        var generator: SeededGenerator?
        var range: ClosedRange<Int> = 0...0

        init(delay: Delay) {
            switch delay {
            case .fixed(let duration):
                fixedDelay = duration
            case .random(let milliseconds, let seed):
                fixedDelay = .zero
                range = milliseconds
                generator = SeededGenerator(seed: seed)
            }
        }

        /// Records a request and returns its index and the task whose value is its answer.
        func admit(key: String?, body: Data) -> (Int, Task<Answer, Never>) {
            let document = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
            let deployment = document?["deployment"] as? [String: Any]
            let deploymentID = deployment?["id"] as? String ?? ""
            let instance = deployment?["instance"] as? String ?? ""
            var request = Request(
                key: key ?? "", deploymentID: deploymentID, instance: instance, kind: .refused, body: body,
                receivedAt: .now)
            let answer: Task<Answer, Never>
            if let key, !key.isEmpty, !deploymentID.isEmpty, !instance.isEmpty {
                if let known = results[key] {
                    request.kind = applies[known.apply].endedAt == nil ? .wait : .replay
                    answer = known.answer
                } else {
                    request.kind = .apply
                    answer = startApply(
                        key: key, deploymentID: deploymentID, instance: instance,
                        artifacts: (document?["artifacts"] as? [String: Any])?.keys.sorted() ?? [])
                }
            } else {
                let refusal = Answer(status: 400, body: #"{"error": "an Idempotency-Key and a deployment are needed"}"#)
                answer = Task { refusal }
            }
            requests.append(request)
            return (requests.count - 1, answer)
        }

        /// Starts the one apply of `key` on its own task, which no client's disconnection cancels.
        private func startApply(key: String, deploymentID: String, instance: String, artifacts: [String]) -> Task<
            Answer, Never
        > {
            let delay: Duration
            if generator != nil {
                delay = .milliseconds(Int.random(in: range, using: &generator!))
            } else {
                delay = fixedDelay
            }
            var outputs: [String: Any] = [:]
            for name in artifacts { outputs[name] = ["id": "\(instance)-\(name)", "key": key] }
            let json = try! JSONSerialization.data(
                withJSONObject: ["status": "completed", "outputs": outputs], options: [.sortedKeys])
            let answer = Answer(status: 200, body: String(decoding: json, as: UTF8.self))
            applies.append(Apply(key: key, deploymentID: deploymentID, instance: instance, startedAt: .now))
            let index = applies.count - 1
            let task = Task.detached { [self] in
                try? await Task.sleep(for: delay)
                await self.ended(index)
                return answer
            }
            results[key] = (index, task)
            return task
        }

        private func ended(_ apply: Int) {
            applies[apply].endedAt = .now
        }

        func answered(_ request: Int) {
            requests[request].answeredAt = .now
        }

        func report() -> String {
            func seconds(_ instant: ContinuousClock.Instant?) -> String {
                guard let instant else { return "-" }
                let elapsed = instant - origin
                return String(
                    format: "%.3f", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            }
            var lines = ["recording provisioner: \(requests.count) requests, \(applies.count) applies"]
            for request in requests {
                lines.append(
                    "  request \(seconds(request.receivedAt))→\(seconds(request.answeredAt)) \(request.kind.rawValue) "
                        + "key=\(request.key) instance=\(request.instance)")
            }
            for apply in applies {
                lines.append(
                    "  apply \(seconds(apply.startedAt))→\(seconds(apply.endedAt)) key=\(apply.key) "
                        + "instance=\(apply.instance)")
            }
            return lines.joined(separator: "\n")
        }
    }
}
