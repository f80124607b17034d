import ConvergeCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import ConvergeServer

/// `labelSelector` on the list routes: filtered in the store's query, so paging by a small limit never returns a
/// short page before the end; a malformed selector is `invalid_argument` naming the parameter and the position.
@Suite struct LabelSelectorRouteTests {
    /// Twelve instances `i00`…`i11` besides the fixture's unlabeled `shop-dev-db`: `tier=data` every third,
    /// `tier=web` the others, and `legacy=yes` the even ones; and projects `p1` (team=a), `p2` (team=b), `p3`.
    static func labeledFixture() async throws -> ServerFixture {
        let fixture = try await ServerFixture()
        var resources = [
            DesiredResource(
                kind: .instance, id: "shop-dev-db",
                spec: ["id": "shop-dev-db", "environment": "shop-dev", "bundle": "database", "params": [:]],
                source: nil)
        ]
        for index in 0..<12 {
            let id = String(format: "i%02d", index)
            var labels: [String: Value] = ["tier": index % 3 == 0 ? "data" : "web"]
            if index % 2 == 0 { labels["legacy"] = "yes" }
            resources.append(
                DesiredResource(
                    kind: .instance, id: id,
                    spec: [
                        "id": .string(id), "environment": "shop-dev", "bundle": "database", "params": [:],
                        "labels": .object(labels),
                    ], source: nil))
        }
        for (id, team) in [("p1", "a"), ("p2", "b"), ("p3", nil)] as [(String, String?)] {
            let labels: Value = team.map { ["team": .string($0)] } ?? [:]
            resources.append(
                DesiredResource(kind: .project, id: id, spec: ["id": .string(id), "labels": labels], source: nil))
        }
        _ = try await fixture.store.replaceDesiredState(resources, expectedVersion: nil, actor: "test")
        return fixture
    }

    /// Every page of `path` (which has a query) with `limit`, following `nextCursor`: the ids of each page.
    static func pages(_ path: String, limit: Int, token: String, client: any TestClientProtocol) async throws
        -> [[String]]
    {
        var pages: [[String]] = []
        var cursor: String?
        repeat {
            let uri = path + "&limit=\(limit)" + (cursor.map { "&cursor=\($0)" } ?? "")
            let response = try await client.execute(
                uri: uri, method: .get, headers: [.authorization: "Bearer \(token)"])
            #expect(response.status == .ok, "\(uri)")
            let object = try json(response)
            pages.append(((object["items"] as? [[String: Any]]) ?? []).compactMap { $0["id"] as? String })
            cursor = object["nextCursor"] as? String
        } while cursor != nil && pages.count < 20
        return pages
    }

    @Test func instances_pagedBySelector_areFullPagesUntilTheLast() async throws {
        let fixture = try await Self.labeledFixture()
        let viewer = try fixture.tokens.create(name: "vic", role: .viewer)
        try await fixture.withClient { client in
            #expect(
                try await Self.pages("/v1/instances?labelSelector=tier%3Ddata", limit: 2, token: viewer, client: client)
                    == [["i00", "i03"], ["i06", "i09"]])
            #expect(
                try await Self.pages(
                    "/v1/instances?labelSelector=tier!%3Ddata,!legacy", limit: 3, token: viewer, client: client)
                    == [["i01", "i05", "i07"], ["i11", "shop-dev-db"]])
            #expect(
                try await Self.pages("/v1/instances?labelSelector=legacy", limit: 4, token: viewer, client: client)
                    == [["i00", "i02", "i04", "i06"], ["i08", "i10"]])
            let response = try await client.execute(
                uri: "/v1/instances?labelSelector=tier%3Ddata&limit=1", method: .get,
                headers: [.authorization: "Bearer \(viewer)"])
            let first = try #require((try json(response)["items"] as? [[String: Any]])?.first)
            #expect(first["labels"] as? [String: String] == ["tier": "data", "legacy": "yes"])
            #expect(first["createdAt"] is String)
        }
    }

    @Test func resources_pagedBySelector() async throws {
        let fixture = try await Self.labeledFixture()
        let viewer = try fixture.tokens.create(name: "vic", role: .viewer)
        try await fixture.withClient { client in
            let team = try await Self.pages(
                "/v1/resources/projects?labelSelector=team", limit: 1, token: viewer, client: client)
            #expect(team == [["p1"], ["p2"]])
            let notA = try await Self.pages(
                "/v1/resources/projects?labelSelector=team!%3Da", limit: 5, token: viewer, client: client)
            #expect(notA == [["p2", "p3"]])
            let all = try await Self.pages(
                "/v1/resources/projects?labelSelector=", limit: 5, token: viewer, client: client)
            #expect(all == [["p1", "p2", "p3"]])
        }
    }

    @Test(arguments: ["/v1/instances", "/v1/resources/projects"])
    func malformedSelector_isInvalidArgumentNamingTheParameterAndPosition(path: String) async throws {
        let fixture = try await Self.labeledFixture()
        let viewer = try fixture.tokens.create(name: "vic", role: .viewer)
        try await fixture.withClient { client in
            let response = try await client.execute(
                uri: path + "?labelSelector=tier%3Ddata,,x", method: .get, headers: [.authorization: "Bearer \(viewer)"]
            )
            #expect(response.status == .badRequest)
            let object = try json(response)
            #expect(object["code"] as? String == "invalid_argument")
            #expect(
                object["message"] as? String == #"labelSelector: position 11: expected a label key, got ",""#)
            let details = object["details"] as? [String: Any]
            #expect(details?["field"] as? String == "labelSelector")
            #expect(details?["position"] as? Int == 11)
        }
    }
}
