import ConvergeTestSupport
import Foundation
import Synchronization
import Testing

@testable import ConvergeProvisioners

@Suite struct CurlHTTPClientTests {
    /// Connections of its own for each test, so that the connections other tests open at once do not close its idle
    /// ones (the cap counts every open connection).
    let client = CurlHTTPClient(maxIdleConnections: 4)

    /// A server that answers every request with its own body.
    func echoServer(port: Int = 0) async throws -> LoopbackServer {
        try await LoopbackServer.start(port: port) { _, request in
            ScriptedResponse(status: 200, body: String(decoding: request.body, as: UTF8.self))
        }
    }

    @Test func consecutiveCalls_reuseOneConnection() async throws {
        let server = try await echoServer()
        defer { Task { await server.stop() } }
        for index in 1...5 {
            let response = try await client.post(url: server.url, body: Array("call \(index)".utf8))
            #expect(response.status == 200)
            #expect(response.body == Array("call \(index)".utf8))
        }
        let ports = await server.requests.map(\.remotePort)
        #expect(Set(ports).count == 1, "requests came from the ports \(ports)")
    }

    @Test func concurrentCalls_getTheirOwnAnswersAndNothingOfAnother() async throws {
        let server = try await echoServer()
        defer { Task { await server.stop() } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<24 {
                group.addTask {
                    let headers = index.isMultiple(of: 2) ? [(name: "X-Only-Even", value: "\(index)")] : []
                    let body = Array("request \(index)".utf8)
                    let response = try await client.post(url: server.url, body: body, headers: headers)
                    #expect(response.status == 200)
                    #expect(response.body == body)
                }
            }
            try await group.waitForAll()
        }
        // Then one at a time, on reused handles and connections: options of the requests before do not stick.
        for index in 0..<4 {
            _ = try await client.post(url: server.url, body: Array("after \(index)".utf8))
        }
        let requests = await server.requests
        #expect(requests.count == 28)
        for request in requests {
            let body = String(decoding: request.body, as: UTF8.self)
            let index = Int(body.split(separator: " ").last ?? "") ?? -1
            let expected = body.hasPrefix("request") && index.isMultiple(of: 2) ? "\(index)" : nil
            #expect(request.header("X-Only-Even") == expected, "request \(body)")
        }
    }

    @Test func aServerRestartBetweenCalls_doesNotFailTheNextCall() async throws {
        let first = try await echoServer()
        #expect(try await client.post(url: first.url, body: Array("before".utf8)).status == 200)
        await first.stop()
        let second = try await echoServer(port: first.port)
        defer { Task { await second.stop() } }
        #expect(try await client.post(url: second.url, body: Array("after".utf8)).body == Array("after".utf8))
        #expect(await second.requests.count == 1)
    }

    @Test func tlsToAPortThatNeverAnswersIt_isAConnectTimeout() async throws {
        let server = try await RawLoopbackServer.start(answer: nil)
        defer { Task { await server.stop() } }
        let request = HTTPRequest(
            url: server.url(scheme: "https"), headers: [], body: Array("{}".utf8),
            connectTimeout: .milliseconds(250), timeout: .seconds(30), maxResponseBytes: 1024)
        let started = ContinuousClock.now
        let error = await #expect(throws: HTTPTransportError.self) { try await client.post(request) }
        #expect(
            error
                == .unreachable(
                    "connect timed out after 0.25s (TLS handshake with 127.0.0.1:\(server.port) did not finish)"))
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test func aSilentServer_isTheWholeCallsTimeout() async throws {
        let server = try await RawLoopbackServer.start(answer: nil)
        defer { Task { await server.stop() } }
        let error = await #expect(throws: HTTPTransportError.self) {
            try await client.post(url: server.url(), body: [], timeout: .milliseconds(300))
        }
        #expect(error == .timeout(.milliseconds(300)))
        #expect(error?.description == "no response within 0.3s")
    }

    @Test func cancellation_abortsTheTransfer() async throws {
        let server = try await RawLoopbackServer.start(answer: nil)
        defer { Task { await server.stop() } }
        let call = Task { [client] in try await client.post(url: server.url(), body: [], timeout: .seconds(30)) }
        try await eventually("the call reached the server", timeout: .seconds(10)) { server.connections == 1 }
        call.cancel()
        // Within 5 s of a call that would take 30: prompt, however loaded the machine (speed is for benchmarks).
        let ended = try #require(await result(of: call, within: .seconds(5)), "the cancelled call did not end")
        #expect(throws: HTTPTransportError.cancelled) { try ended.get() }
    }

    @Test func aHeaderThatWouldBreakTheRequest_isRefusedBeforeSending() async throws {
        let server = try await echoServer()
        defer { Task { await server.stop() } }
        let request = HTTPRequest(
            method: "GET", url: server.url, headers: [("X-Note", "a\r\nX-Injected: 1")], body: nil,
            connectTimeout: .seconds(5), timeout: .seconds(5), maxResponseBytes: 1024)
        let error = await #expect(throws: HTTPTransportError.self) { try await client.send(request) }
        #expect(error == .other("the value of the header X-Note contains a line break"))
        var badMethod = request
        badMethod.headers = []
        badMethod.method = "GET /admin"
        await #expect(throws: HTTPTransportError.other("the method \"GET /admin\" is not an HTTP method")) {
            try await client.send(badMethod)
        }
        #expect(await server.requests.isEmpty)
    }

    @Test func aStream_outlivesTheCallsTimeout() async throws {
        let (pieces, feed) = AsyncStream.makeStream(of: String.self)
        let server = try await LoopbackServer.start { _, _ in
            ScriptedResponse(status: 200, headers: [("Content-Type", "text/event-stream")], stream: pieces)
        }
        defer {
            feed.finish()
            Task { await server.stop() }
        }
        let request = HTTPRequest(
            method: "GET", url: server.url, headers: [("Accept", "text/event-stream")], body: nil,
            connectTimeout: .seconds(5), timeout: .milliseconds(200), maxResponseBytes: 16)
        let started = ContinuousClock.now
        let response = try await client.stream(request)
        #expect(response.status == 200)
        #expect(response.header("content-type") == "text/event-stream")
        let received = Mutex<(text: String, ended: Bool, error: HTTPTransportError?)>(("", false, nil))
        let consumer = Task {
            do {
                for try await chunk in response.body {
                    received.withLock { $0.text += String(decoding: chunk, as: UTF8.self) }
                }
                received.withLock { $0.ended = true }
            } catch {
                received.withLock { ($0.ended, $0.error) = (true, error as? HTTPTransportError) }
            }
        }
        defer { consumer.cancel() }

        feed.yield("data: one\n\n")
        try await eventually("the first event arrived", timeout: .seconds(10)) {
            received.withLock { $0.text.contains("data: one\n\n") }
        }
        try await eventually("twice the call's timeout passed", timeout: .seconds(10)) {
            ContinuousClock.now - started > .milliseconds(400)
        }
        // Past the timeout and past `maxResponseBytes`: neither applies to a stream.
        feed.yield("data: \(String(repeating: "x", count: 32))\n\n")
        feed.finish()
        try await eventually("the stream ended", timeout: .seconds(10)) { received.withLock { $0.ended } }
        #expect(received.withLock { $0.error } == nil)
        #expect(received.withLock { $0.text.contains("data: \(String(repeating: "x", count: 32))\n\n") })
    }
}
