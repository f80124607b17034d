import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

/// Regression (issue 13): `converge audit` listed oldest first, so its default page was the oldest 50.
@Suite(.serialized) struct AuditOrderTests {
    @Test func audit_listsNewestFirst_andItsCursorPagesOlder() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 200, body: completedAnswer) }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(files: repository(url: server.url, instances: ["a": ["size": 1]]))
        let vera = try await daemon.token("vera", role: "viewer")
        try await daemon.start()
        let store = try daemon.store()
        try await eventually("a is deployed") {
            try await store.history("p-dev-a").first?.status == .completed
        }

        let first = try Value(json: try await daemon.cli(vera, "audit", "--limit", "2", "-o", "json").stdout)
        func sequences(_ page: Value) -> [Int] {
            page["items"]?.arrayValue?.compactMap { item in
                if case .int(let sequence)? = item["sequence"] { sequence } else { nil }
            } ?? []
        }
        let newest = sequences(first)
        #expect(newest.count == 2 && newest[0] > newest[1], "\(first)")
        let all = try Value(json: try await daemon.cli(vera, "audit", "--limit", "500", "-o", "json").stdout)
        #expect(sequences(all).first == newest.first, "the default page starts at the newest entry")
        let cursor = try #require(first["nextCursor"]?.stringValue)
        let next = try Value(
            json: try await daemon.cli(vera, "audit", "--limit", "2", "--cursor", cursor, "-o", "json").stdout)
        let older = sequences(next)
        #expect(!older.isEmpty && older.allSatisfy { $0 < newest[1] }, "\(next)")
        try await daemon.stop()
    }
}
