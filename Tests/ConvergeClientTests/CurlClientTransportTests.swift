import ConvergeClient
import ConvergeTestSupport
import Foundation
import HTTPTypes
import OpenAPIRuntime
import Synchronization
import Testing

/// The events a stream's consumer has seen so far, and whether its iteration ended (and how).
private final class ReceivedEvents: Sendable {
    private let state = Mutex<(events: [ServerSentEvent], ended: Bool, error: String?)>(([], false, nil))

    var events: [ServerSentEvent] { state.withLock { $0.events } }
    var ended: Bool { state.withLock { $0.ended } }
    var error: String? { state.withLock { $0.error } }

    func append(_ event: ServerSentEvent) { state.withLock { $0.events.append(event) } }

    func end(_ error: (any Error)?) {
        state.withLock {
            $0.ended = true
            $0.error = error.map { "\($0)" }
        }
    }
}

@Suite(.timeLimit(.minutes(1))) struct CurlClientTransportTests {
    let transport = CurlClientTransport(
        settings: .init(connectTimeout: .seconds(5), timeout: .seconds(20), maxResponseBytes: 1 << 20))

    /// A server that answers every request with what it received, as text, and headers of its own.
    func echoServer() async throws -> LoopbackServer {
        try await LoopbackServer.start { _, request in
            let body = String(decoding: request.body, as: UTF8.self)
            return ScriptedResponse(
                status: request.method == "POST" ? 201 : 200,
                body: "\(request.method) \(request.path)?\(request.query ?? "") \(body)",
                headers: [("Content-Type", "text/plain; charset=utf-8"), ("X-Answer", "42")])
        }
    }

    /// A server that answers with a stream of events fed through the returned continuation.
    func eventServer() async throws -> (LoopbackServer, AsyncStream<String>.Continuation) {
        let (events, feed) = AsyncStream.makeStream(of: String.self)
        let server = try await LoopbackServer.start { _, _ in
            ScriptedResponse(
                status: 200, headers: [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")],
                stream: events)
        }
        return (server, feed)
    }

    func send(
        _ method: HTTPRequest.Method, _ path: String, to server: LoopbackServer, headers: HTTPFields = [:],
        body: String? = nil
    ) async throws -> (HTTPResponse, HTTPBody?) {
        try await transport.send(
            HTTPRequest(method: method, scheme: nil, authority: nil, path: path, headerFields: headers),
            body: body.map { HTTPBody($0) }, baseURL: URL(string: server.baseURL)!, operationID: "test")
    }

    func text(of body: HTTPBody?) async throws -> String {
        guard let body else { return "" }
        return try await String(collecting: body, upTo: 1 << 20)
    }

    @Test(
        arguments: [
            (HTTPRequest.Method.get, nil), (.post, #"{"name": "db"}"#), (.put, "replaced"), (.patch, "patched"),
            (.delete, nil), (.delete, "because"),
        ] as [(HTTPRequest.Method, String?)])
    func aRequest_carriesItsMethodHeadersAndBody_andTheResponseItsHeaders(
        method: HTTPRequest.Method, body: String?
    ) async throws {
        let server = try await echoServer()
        defer { Task { await server.stop() } }
        var headers: HTTPFields = [HTTPField.Name("X-Request-Id")!: "r-1"]
        if body != nil { headers[.contentType] = "application/json" }
        let (response, responseBody) = try await send(
            method, "/v1/things/a?env=dev&x=%20y", to: server, headers: headers, body: body)

        #expect(response.status.code == (method == .post ? 201 : 200))
        #expect(response.headerFields[.contentType] == "text/plain; charset=utf-8")
        #expect(response.headerFields[HTTPField.Name("x-answer")!] == "42")
        #expect(try await text(of: responseBody) == "\(method.rawValue) /v1/things/a?env=dev&x=%20y \(body ?? "")")

        let request = try #require(await server.requests.first)
        #expect(request.method == method.rawValue)
        #expect(request.header("X-Request-Id") == "r-1")
        #expect(String(decoding: request.body, as: UTF8.self) == body ?? "")
        // Nothing of the transport's own beyond what HTTP needs.
        // Hummingbird turns `Host` into the request's authority.
        var expected: Set = ["x-request-id"]
        if let body { expected.formUnion(["content-type", "content-length"]) }
        if body == nil, [.put, .patch].contains(method) { expected.insert("content-length") }
        #expect(Set(request.headers.keys) == expected)
        if let body { #expect(request.header("Content-Length") == "\(body.utf8.count)") }
    }

    @Test func aHeadRequest_hasNoBody() async throws {
        let server = try await echoServer()
        defer { Task { await server.stop() } }
        let (response, body) = try await send(.head, "/v1/health", to: server)
        #expect(response.status == .ok)
        #expect(response.headerFields[HTTPField.Name("X-Answer")!] == "42")
        #expect(body == nil)
    }

    @Test(arguments: [400, 404, 409, 500, 503])
    func anErrorStatus_isAResponseNotAnError(status: Int) async throws {
        let answer = #"{"code": "not_found", "message": "no instance db"}"#
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: status, body: answer) }
        defer { Task { await server.stop() } }
        let (response, body) = try await send(.get, "/v1/instances/db", to: server)
        #expect(response.status.code == status)
        #expect(response.headerFields[.contentType] == "application/json")
        #expect(try await text(of: body) == answer)
    }

    @Test(arguments: [nil, "text/event-stream"])
    func aServerThatIsDown_isAClearError(accept: String?) async throws {
        let stopped = try await echoServer()
        await stopped.stop()
        let headers: HTTPFields = accept.map { [.accept: $0] } ?? [:]
        let error = await #expect(throws: ClientTransportError.self) {
            try await send(.get, "/v1/instances", to: stopped, headers: headers)
        }
        #expect(error?.kind == .unreachable)
        #expect(
            error?.message
                == "cannot reach http://127.0.0.1:\(stopped.port): connection refused (127.0.0.1:\(stopped.port))")
    }

    @Test func aBaseURLThatIsNotHTTP_isRefused() async throws {
        let error = await #expect(throws: ClientTransportError.self) {
            try await transport.send(
                HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/v1/health"), body: nil,
                baseURL: URL(string: "ftp://127.0.0.1:21")!, operationID: "test")
        }
        #expect(
            error
                == ClientTransportError(
                    .invalidRequest, "the server URL ftp://127.0.0.1:21 is not an http or https URL"))
    }

    @Test func aTooLargeResponse_isAnError() async throws {
        let server = try await LoopbackServer.start { _, _ in
            ScriptedResponse(status: 200, body: String(repeating: "x", count: 2048))
        }
        defer { Task { await server.stop() } }
        let small = CurlClientTransport(
            settings: .init(connectTimeout: .seconds(5), timeout: .seconds(20), maxResponseBytes: 1024))
        let error = await #expect(throws: ClientTransportError.self) {
            try await small.send(
                HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/v1/audit"), body: nil,
                baseURL: URL(string: server.baseURL)!, operationID: "test")
        }
        #expect(error?.message == "the response of \(server.baseURL)/v1/audit is larger than 1024 bytes")
    }

    @Test func anEventStream_arrivesEventByEventWhileTheServerHoldsItOpen() async throws {
        let (server, feed) = try await eventServer()
        defer {
            feed.finish()
            Task { await server.stop() }
        }
        // The head arrives before any event is sent.
        let (response, body) = try await send(
            .get, "/v1/deployments/d1/events?follow=true", to: server, headers: [.accept: "text/event-stream"])
        #expect(response.status == .ok)
        #expect(response.headerFields[.contentType] == "text/event-stream")
        let stream = try #require(body)
        #expect(stream.length == .unknown)

        let received = ReceivedEvents()
        let consumer = Task {
            do {
                for try await event in stream.asDecodedServerSentEvents() { received.append(event) }
                received.end(nil)
            } catch {
                received.end(error)
            }
        }
        defer { consumer.cancel() }

        feed.yield("id: 1\nevent: log\ndata: {\"message\": \"creating\"}\n\n")
        try await eventually("the first event arrived", timeout: .seconds(10)) { received.events.count == 1 }
        #expect(received.events.first?.data == #"{"message": "creating"}"#)
        #expect(received.events.first?.id == "1")
        #expect(!received.ended)
        #expect(await server.requests.first?.connectionClosedAt == nil)

        feed.yield("id: 2\nevent: phase\ndata: applied\n\n")
        try await eventually("the second event arrived", timeout: .seconds(10)) { received.events.count == 2 }
        #expect(!received.ended)

        feed.finish()
        try await eventually("the stream ended", timeout: .seconds(10)) { received.ended }
        #expect(received.error == nil)
        #expect(received.events.map(\.data) == [#"{"message": "creating"}"#, "applied"])
    }

    @Test func cancellingTheConsumer_closesTheConnection() async throws {
        let (server, feed) = try await eventServer()
        defer {
            feed.finish()
            Task { await server.stop() }
        }
        let (_, body) = try await send(.get, "/v1/watch", to: server, headers: [.accept: "text/event-stream"])
        let stream = try #require(body)
        let received = ReceivedEvents()
        let consumer = Task {
            do {
                for try await event in stream.asDecodedServerSentEvents() { received.append(event) }
                received.end(nil)
            } catch {
                received.end(error)
            }
        }
        feed.yield("data: one\n\n")
        try await eventually("the first event arrived", timeout: .seconds(10)) { received.events.count == 1 }

        consumer.cancel()
        try await eventually("the server saw the connection close", timeout: .seconds(10)) {
            await server.requests.first?.connectionClosedAt != nil
        }
        try await eventually("the consumer ended", timeout: .seconds(10)) { received.ended }
    }

    @Test func aConsumerThatStopsIterating_closesTheConnection() async throws {
        let (server, feed) = try await eventServer()
        defer {
            feed.finish()
            Task { await server.stop() }
        }
        let received = ReceivedEvents()
        // The body is the consumer's alone: once it stops iterating, nothing holds the stream any more.
        let consumer = Task { [transport] in
            let (_, body) = try await transport.send(
                HTTPRequest(
                    method: .get, scheme: nil, authority: nil, path: "/v1/watch",
                    headerFields: [.accept: "application/json, text/event-stream"]),
                body: nil, baseURL: URL(string: server.baseURL)!, operationID: "test")
            for try await event in try #require(body).asDecodedServerSentEvents() {
                received.append(event)
                break
            }
            received.end(nil)
        }
        feed.yield("data: only\n\n")
        try await eventually("the consumer took one event and stopped", timeout: .seconds(10)) { received.ended }
        try await eventually("the server saw the connection close", timeout: .seconds(10)) {
            await server.requests.first?.connectionClosedAt != nil
        }
        _ = consumer
        #expect(received.events.map(\.data) == ["only"])
    }
}
