import ConvergeCore
import Foundation
import PostgresNIO
import Testing

@testable import ConvergeStore

/// PostgreSQL's side of `QueryPlanTests`: on 50,000 deployments and audit entries, analyzed, every listing the store
/// runs by cursor reads an index, never the whole table, and stops once its page is full.
@Suite struct PostgresQueryPlanTests {
    @Test func listingQueries_useIndexesOn50kDeployments() async throws {
        let fixture = try await StoreFixture(.postgres, instances: [])
        let store = fixture.store as! PostgresStore
        try await fixture.execute(
            """
            INSERT INTO instances (id, environment, bundle, status, created_at, updated_at)
            SELECT 'i' || n, 'e' || (n % 10), 'b', 'PROVISIONED', 0, 0 FROM generate_series(0, 999) AS n
            """)
        try await fixture.execute(
            """
            INSERT INTO deployments (id, instance_id, environment, action, params, connection_params, version,
                md_metadata, desired_hash, status, created_by, created_at, updated_at)
            SELECT 'd' || n, 'i' || (n % 1000), 'e' || (n % 10),
                CASE WHEN n % 11 = 0 THEN 'plan' ELSE 'provision' END, '{}', '{}', '1', '{}', 'h' || n,
                CASE WHEN n >= 49000 THEN 'PENDING' WHEN n % 17 = 0 THEN 'FAILED' ELSE 'COMPLETED' END,
                CASE WHEN n % 7 = 0 THEN 'alice' ELSE 'fill' END, 0, 0
            FROM generate_series(0, 49999) AS n
            """)
        try await fixture.execute(
            """
            INSERT INTO audit_log (at, actor, action, target_kind, target_id)
            SELECT 0, CASE WHEN n % 13 = 0 THEN 'alice' ELSE 'w' END,
                CASE WHEN n % 3 = 0 THEN 'deployment.running' ELSE 'x' END, 'Deployment', 'd' || (n % 25000)
            FROM generate_series(0, 49999) AS n
            """)
        try await fixture.execute("ANALYZE")

        let listings: [DeploymentFilter] = [
            DeploymentFilter(),
            DeploymentFilter(instanceID: "i7"),
            DeploymentFilter(environment: "e3"),
            DeploymentFilter(statuses: [.failed]),
            DeploymentFilter(statuses: [.running, .pending]),
            DeploymentFilter(statuses: [.completed, .failed, .aborted]),
            DeploymentFilter(action: .plan),
            DeploymentFilter(actor: "alice"),
            DeploymentFilter(environment: "e3", statuses: [.pending]),
            DeploymentFilter(
                instanceID: "i7", environment: "e7", statuses: [.completed], action: .plan, actor: "alice"),
        ]
        let audits: [AuditFilter] = [
            AuditFilter(), AuditFilter(actor: "alice"), AuditFilter(action: "deployment.running"),
            AuditFilter(targetID: "d7"),
        ]
        let queries: [(name: String, query: PostgresQuery)] =
            listings.map { ("list \($0)", PostgresStore.deploymentListing($0, before: 45_000, limit: 50)) }
            + audits.map { ("audit \($0)", PostgresStore.auditListing($0, before: 40_000, limit: 50)) }
        for (name, query) in queries {
            let explain = PostgresQuery(unsafeSQL: "EXPLAIN " + query.sql, binds: query.binds)
            var plan: [String] = []
            for try await row in try await store.client.query(explain) { plan.append(try row.decode(String.self)) }
            let text = plan.joined(separator: "\n")
            #expect(!text.contains("Seq Scan"), "\(name) scans a table:\n\(text)")
            #expect(text.contains("Index"), "\(name) reads no index:\n\(text)")
            #expect(plan.first?.hasPrefix("Limit") == true, "\(name) is not limited:\n\(text)")
        }
        // The merged branches give the same page as a filter that names one status at a time would.
        let merged = try await store.listDeployments(
            DeploymentFilter(statuses: [.pending, .failed]), after: "49003", limit: 3)
        #expect(merged.items.map(\.id) == ["d49001", "d49000", "d48994"])
        #expect(merged.nextCursor == String(merged.items[2].sequence))
    }
}
