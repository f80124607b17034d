import ConvergeCore
import ConvergeTestSupport
import Foundation
import Testing

@testable import ConvergeStore

/// The API's listings of instances and resources: label selectors filtered in the query, and the details of each
/// instance (labels, provisioner, newest deployment), on both engines.
@Suite struct ListingTests {
    /// Three instances with labels, a bundle with a provisioner, and one deployment of `shop-dev-db`.
    static func fixture(_ engine: StoreEngine) async throws -> StoreFixture {
        let fixture = try await StoreFixture(engine, instances: [])
        func labelled(_ id: String, _ labels: [String: Value]) -> DesiredResource {
            var resource = StoreFixture.instance(id)
            var spec = resource.spec.objectValue!
            spec["labels"] = .object(labels)
            resource.spec = .object(spec)
            return resource
        }
        _ = try await fixture.store.replaceDesiredState(
            [
                labelled("shop-dev-app", ["tier": "web", "team": "shop"]),
                labelled("shop-dev-cache", ["tier": "cache"]),
                labelled("shop-dev-db", ["tier": "data", "team": "shop"]),
                DesiredResource(
                    kind: .bundle, id: "database", spec: ["id": "database", "provisioner": "webhook"], source: nil),
            ], expectedVersion: nil, actor: "test")
        return fixture
    }

    @Test(arguments: StoreEngine.allCases)
    func instances_areFilteredByEveryKindOfRequirement_inTheQuery(_ engine: StoreEngine) async throws {
        let fixture = try await Self.fixture(engine)
        let cases: [(String, [String])] = [
            ("team=shop", ["shop-dev-app", "shop-dev-db"]),
            ("team!=shop", ["shop-dev-cache"]),
            ("team", ["shop-dev-app", "shop-dev-db"]),
            ("!team", ["shop-dev-cache"]),
            ("team=shop,tier!=web", ["shop-dev-db"]),
            ("tier=none", []),
        ]
        for (selector, expected) in cases {
            let labels = try LabelSelector(parsing: selector)
            var ids: [String] = []
            var cursor: String?
            // A page of one: a short page only at the end, however many rows the filter skips.
            for _ in 0..<5 {
                let page = try await fixture.store.instances(
                    environment: nil, drifted: nil, labels: labels, after: cursor, limit: 1)
                ids += page.items.map(\.id)
                guard let next = page.nextCursor else { break }
                cursor = next
            }
            #expect(ids == expected, "\(selector) on \(engine)")
            let resources = try await fixture.store.resources(of: .instance, labels: labels, after: nil, limit: 10)
            #expect(resources.items.map(\.resource.id) == expected, "\(selector) on \(engine)")
        }
    }

    @Test(arguments: StoreEngine.allCases)
    func instanceDetails_nameLabelsProvisionerAndNewestDeployment(_ engine: StoreEngine) async throws {
        let fixture = try await Self.fixture(engine)
        _ = try await fixture.create(["size": 1])
        let second = try await fixture.create(["size": 2]).deployment
        let record = try await fixture.store.instance("shop-dev-db", details: true)
        let details = try #require(record.details)
        #expect(details.labels == ["tier": "data", "team": "shop"])
        #expect(details.provisioner == "webhook")
        #expect(details.lastDeployment == second.id)
        #expect(details.createdAt == fixture.clock.now)
        #expect(try await fixture.store.instance("shop-dev-db").details == nil)

        let listed = try await fixture.store.instances(
            environment: "shop-dev", drifted: nil, labels: nil, after: nil, limit: 10)
        #expect(listed.items.first { $0.id == "shop-dev-db" }?.details == details)
        #expect(listed.items.first { $0.id == "shop-dev-app" }?.details?.lastDeployment == nil)
    }
}
