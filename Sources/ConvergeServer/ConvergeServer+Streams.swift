import ConvergeAPI
import ConvergeCore
import ConvergeStore
import Foundation
import OpenAPIRuntime
import ServiceLifecycle

/// The API's Server-Sent Event streams: a deployment's events until it is terminal, and every deployment change.
///
/// Both read the store by sequence, one indexed page at a time, and look again when the store signals a change (or
/// after `streamPollInterval`, a safety net) when there is nothing new; each event's id is its sequence, so a client that reconnects with `Last-Event-ID` loses
/// and repeats nothing. A stream ends when its client goes away (the task reading it is cancelled) and when the
/// daemon shuts down gracefully.
extension ConvergeServer {
    /// How often an idle stream looks for new events when the store signals nothing.
    static let streamPollInterval: Duration = .seconds(2)
    /// How often an idle stream sends a comment, so proxies and clients see the connection is alive.
    static let streamKeepAliveInterval: Duration = .seconds(15)

    /// Deployment `id`'s events after sequence `cursor`, as `event: <kind>` messages with a DeploymentEvent as data;
    /// ends after the last event once the deployment is terminal.
    func eventStream(of id: String, after cursor: String?) -> HTTPBody {
        stream { send in
            var cursor = cursor
            while true {
                // Read the status before the events: events appended before a terminal status are then all seen.
                let terminal = try await store.deployment(id).status.isTerminal
                var page = try await store.events(of: id, after: cursor, limit: 100)
                while !page.items.isEmpty {
                    for event in page.items {
                        try await send(
                            Self.message(
                                id: event.sequence, event: event.kind.rawValue,
                                data: Components.Schemas.DeploymentEvent(event)))
                        cursor = String(event.sequence)
                    }
                    guard page.nextCursor != nil else { break }
                    page = try await store.events(of: id, after: cursor, limit: 100)
                }
                if terminal { return }
                try await send(nil)
            }
        }
    }

    /// Every deployment change after sequence `after`, as `event: deployment` messages with a DeploymentChange as
    /// data; never ends on its own.
    func changeStream(after: Int64) -> HTTPBody {
        stream { send in
            var after = after
            while true {
                let changes = try await store.deploymentChanges(after: after, limit: 100)
                for change in changes {
                    try await send(
                        Self.message(
                            id: change.sequence, event: "deployment", data: Components.Schemas.DeploymentChange(change))
                    )
                    after = change.sequence
                }
                if changes.count < 100 { try await send(nil) }
            }
        }
    }

    /// A streamed body fed by `produce`, which calls `send` with a message, or with nil to wait for the next poll
    /// (sending a keep-alive comment when the stream has been quiet for a while).
    private func stream(
        _ produce: @escaping @Sendable (_ send: (ArraySlice<UInt8>?) async throws -> Void) async throws -> Void
    ) -> HTTPBody {
        let (body, continuation) = AsyncThrowingStream.makeStream(of: ArraySlice<UInt8>.self)
        let logger = self.logger
        let task = Task {
            do {
                // A stream ends when the daemon shuts down gracefully, so open streams never hold up SIGTERM.
                try await cancelWhenGracefulShutdown {
                    let clock = ContinuousClock()
                    var lastSent = clock.now
                    var seen = store.changes.generation
                    try await produce { message in
                        if let message {
                            continuation.yield(message)
                            lastSent = clock.now
                            return
                        }
                        await store.changes.wait(since: seen, timeout: Self.streamPollInterval)
                        try Task.checkCancellation()
                        seen = store.changes.generation
                        if clock.now - lastSent >= Self.streamKeepAliveInterval {
                            continuation.yield(ArraySlice(": keep-alive\n\n".utf8))
                            lastSent = clock.now
                        }
                    }
                }
                continuation.finish()
            } catch is CancellationError {
                continuation.finish()
            } catch {
                logger.warning("event stream stopped", metadata: ["error": "\(error)"])
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return HTTPBody(body, length: .unknown, iterationBehavior: .single)
    }

    /// One Server-Sent Event: its id, its type and its data as one line of JSON.
    static func message(id: Int64, event: String, data: some Encodable) throws -> ArraySlice<UInt8> {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = .sortedKeys
        let json = String(decoding: try encoder.encode(data), as: UTF8.self)
        return ArraySlice("id: \(id)\nevent: \(event)\ndata: \(json)\n\n".utf8)
    }
}
