import ConvergeCore
import Foundation
import GRDB
import Testing

@testable import ConvergeStore

@Suite struct QueryPlanTests {
    /// Fills 100,000 deployments over 1,000 instances, mostly finished, and checks that the queries the store runs
    /// for claiming, history and leases search indexes and never scan the table.
    @Test func listingAndClaimQueries_useIndexesOn100kDeployments() async throws {
        let fixture = try await StoreFixture(instances: [])
        let store = fixture.store
        try await store.pool.write { db in
            for instance in 0..<1000 {
                try db.execute(
                    sql:
                        "INSERT INTO instances (id, environment, bundle, status, created_at, updated_at) VALUES (?, 'e', 'b', 'PROVISIONED', 0, 0)",
                    arguments: ["i\(instance)"])
            }
            let insert = try db.makeStatement(
                sql: """
                    INSERT INTO deployments (id, instance_id, action, params, connection_params, version, md_metadata,
                        desired_hash, status, created_by, created_at, updated_at, lease_owner, lease_expires_at)
                    VALUES (?, ?, 'provision', '{}', '{}', '1', '{}', ?, ?, 'fill', 0, 0, ?, ?)
                    """)
            for index in 0..<100_000 {
                let instance = index % 1000
                let status = index >= 99_000 ? (instance.isMultiple(of: 3) ? "RUNNING" : "PENDING") : "COMPLETED"
                try insert.execute(arguments: [
                    "d\(index)", "i\(instance)", "h\(index)", status, status == "RUNNING" ? "w" : nil,
                    status == "RUNNING" ? 1 : nil,
                ])
            }
        }
        let queries: [(name: String, sql: String, arguments: StatementArguments)] = [
            ("claim", SQLiteStore.claimSQL, [100]),
            ("history", SQLiteStore.historySQL, ["i7", Int64.max, 50]),
            ("expired leases", SQLiteStore.expiredLeasesSQL, [Int64(10), 100]),
            ("any expired lease", SQLiteStore.anyExpiredSQL, [Int64(10)]),
            ("any claimable", SQLiteStore.anyClaimableSQL, []),
            ("recent deployments", SQLiteStore.recentSQL, ["i7", 20]),
        ]
        for query in queries {
            let plan = try await store.pool.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + query.sql, arguments: query.arguments).map {
                    $0["detail"] as String
                }
            }
            // EXISTS (…) reads one constant row around its indexed subquery: not a table scan.
            let tableScans = plan.filter { $0.hasPrefix("SCAN") && !$0.contains("INDEX") && $0 != "SCAN CONSTANT ROW" }
            #expect(tableScans.isEmpty, "\(query.name) scans a table: \(plan)")
            #expect(!plan.contains { $0.contains("TEMP B-TREE") }, "\(query.name) sorts: \(plan)")
            #expect(plan.contains { $0.contains("USING INDEX") || $0.contains("USING COVERING INDEX") }, "\(plan)")
        }
        let claimed = try await store.claimNextDeployments(owner: "w2", leaseDuration: 30, limit: 1000)
        #expect(claimed.count == 666)
        #expect(Set(claimed.map(\.instanceID)).count == 666)
        #expect(
            try await store.history(of: "i7", after: nil, limit: 3).items.map(\.id) == ["d99007", "d98007", "d97007"])
        #expect(try await store.takeOverExpiredLeases(owner: "w3", leaseDuration: 30, limit: 1000).count == 334)
    }
}
