import ConvergeCore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import ConvergeServer

#if canImport(Glibc)
    import Glibc
#endif

/// A raw loopback TCP connection, to behave as a slow or idle client.
final class RawConnection {
    let socket: Int32

    init(port: Int) throws {
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw ConvergeError(.internal, "cannot connect to 127.0.0.1:\(port)") }
    }

    deinit { close(socket) }

    /// Sends `text`; false once the server closed the connection.
    @discardableResult
    func send(_ text: String) -> Bool {
        Array(text.utf8).withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } > 0
    }

    /// Whether the server closed the connection, without waiting (what it sent before is read and dropped).
    var isClosedByServer: Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<100 {
            let count = recv(socket, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if count <= 0 { return count == 0 }
        }
        return false
    }

    /// What arrives within `seconds`, until the server closes or the answer's blank line.
    func receive(seconds: Int) -> String {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(socket, &buffer, buffer.count, 0)
        return count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : ""
    }
}

/// Regression: 20 connections sending one header line every 1.5 s all stayed open for 30 s.
@Suite(.serialized) struct ConnectionLimitTests {
    static let settings = ConvergeServer.Settings(
        allowedExecCommands: [], requestTimeout: .seconds(1), maxConnections: 2)

    /// Runs `body` with the port of the fixture's server listening on loopback. (HummingbirdTesting's live mode
    /// drops the connection limit of the configuration, so the application runs as the daemon runs it.)
    static func serving(_ fixture: ServerFixture, _ body: @escaping @Sendable (Int) async throws -> Void)
        async throws
    {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let application = try fixture.server.application(host: "127.0.0.1", port: 0) { continuation.yield($0) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await application.runService(gracefulShutdownSignals: []) }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            try await body(port)
            group.cancelAll()
        }
    }

    @Test func aClientTricklingItsHeaders_isCutOffWithinTheRequestTimeout() async throws {
        let fixture = try await ServerFixture(settings: Self.settings)
        try await Self.serving(fixture) { port in
            let slow = try RawConnection(port: port)
            let start = ContinuousClock.now
            slow.send("GET /healthz HTTP/1.1\r\n")
            var open = true
            // One header line every 200 ms, never the blank line: bounded at 50 lines (10 s).
            for line in 0..<50 where open {
                try await Task.sleep(for: .milliseconds(200))
                open = slow.send("X-Slow-\(line): 1\r\n") && !slow.isClosedByServer
            }
            #expect(!open)
            #expect(ContinuousClock.now - start < .seconds(4))
        }
    }

    @Test func connectionsPastTheLimit_waitUntilOneCloses_thenAreServed() async throws {
        let fixture = try await ServerFixture(settings: Self.settings)
        try await Self.serving(fixture) { port in
            // Two kept-alive connections, accepted for sure since each was answered, take both places.
            let idle = try (0..<2).map { _ in try RawConnection(port: port) }
            for connection in idle {
                connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(connection.receive(seconds: 10).hasPrefix("HTTP/1.1 200"))
            }
            let normal = try RawConnection(port: port)
            normal.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            let answer = normal.receive(seconds: 10)
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
            // It was served only once an idle one was cut off by the request timeout, freeing its place.
            let closed = idle.filter { $0.isClosedByServer }.count
            #expect(closed >= 1)
        }
    }
}
