import ConvergeCore
import Foundation
import GRDB
import Testing

@testable import ConvergeStore

@Suite struct QueryPlanTests {
    /// Fills 100,000 deployments over 1,000 instances in 10 environments, mostly finished, with their change feed,
    /// events and audit log, and checks that the queries the store runs for claiming, history, leases, listings, the
    /// change feed, events and the audit log search indexes, never scan a table and never sort.
    @Test func listingAndClaimQueries_useIndexesOn100kDeployments() async throws {
        let fixture = try await StoreFixture(instances: [])
        let store = fixture.sqlite
        try await store.pool.write { db in
            for instance in 0..<1000 {
                try db.execute(
                    sql:
                        "INSERT INTO instances (id, environment, bundle, status, created_at, updated_at) VALUES (?, ?, 'b', 'PROVISIONED', 0, 0)",
                    arguments: ["i\(instance)", "e\(instance % 10)"])
            }
            let insert = try db.makeStatement(
                sql: """
                    INSERT INTO deployments (id, instance_id, action, params, connection_params, version, md_metadata,
                        desired_hash, status, created_by, created_at, updated_at, lease_owner, lease_expires_at,
                        environment)
                    VALUES (?, ?, ?, '{}', '{}', '1', '{}', ?, ?, ?, 0, 0, ?, ?, ?)
                    """)
            for index in 0..<100_000 {
                let instance = index % 1000
                let status = index >= 99_000 ? (instance.isMultiple(of: 3) ? "RUNNING" : "PENDING") : "COMPLETED"
                try insert.execute(arguments: [
                    "d\(index)", "i\(instance)", index.isMultiple(of: 11) ? "plan" : "provision", "h\(index)", status,
                    index.isMultiple(of: 7) ? "alice" : "fill", status == "RUNNING" ? "w" : nil,
                    status == "RUNNING" ? 1 : nil, "e\(instance % 10)",
                ])
            }
            let event = try db.makeStatement(
                sql: "INSERT INTO deployment_events (deployment_id, at, kind, message) VALUES (?, 0, 'log', 'x')")
            let audit = try db.makeStatement(
                sql: """
                    INSERT INTO audit_log (at, actor, action, target_kind, target_id)
                    VALUES (0, ?, ?, 'Deployment', ?)
                    """)
            for index in 0..<100_000 {
                try event.execute(arguments: ["d\(index % 5000)"])
                try audit.execute(arguments: [
                    index.isMultiple(of: 13) ? "alice" : "w", index.isMultiple(of: 3) ? "deployment.running" : "x",
                    "d\(index % 50_000)",
                ])
            }
        }
        typealias Query = (name: String, sql: String, arguments: StatementArguments)
        let fixedQueries: [Query] = [
            ("claim", SQLiteStore.claimSQL, [100]),
            ("history", SQLiteStore.historySQL, ["i7", Int64.max, 50]),
            ("expired leases", SQLiteStore.expiredLeasesSQL, [Int64(10), #"["d7"]"#, 100]),
            ("any expired lease", SQLiteStore.anyExpiredSQL, [Int64(10), #"["d7"]"#]),
            ("any claimable", SQLiteStore.anyClaimableSQL, []),
            ("recent deployments", SQLiteStore.recentSQL, ["i7", 20]),
            ("events", SQLiteStore.eventsSQL, ["d7", 0, 50]),
            ("changes", SQLiteStore.changesSQL, [99_000, 100]),
            ("latest change", SQLiteStore.latestChangeSQL, []),
        ]
        let listings: [DeploymentFilter] = [
            DeploymentFilter(),
            DeploymentFilter(instanceID: "i7"),
            DeploymentFilter(environment: "e3"),
            DeploymentFilter(statuses: [.completed]),
            DeploymentFilter(statuses: [.running, .pending]),
            DeploymentFilter(statuses: [.completed, .failed, .aborted]),
            DeploymentFilter(action: .plan),
            DeploymentFilter(actor: "alice"),
            DeploymentFilter(
                instanceID: "i7", environment: "e7", statuses: [.completed], action: .plan, actor: "alice"),
            DeploymentFilter(environment: "e3", statuses: [.running]),
            DeploymentFilter(environment: "e3", statuses: [.completed, .failed]),
            DeploymentFilter(environment: "e3", actor: "alice"),
            DeploymentFilter(statuses: [.completed], action: .plan, actor: "alice"),
            DeploymentFilter(statuses: [.completed], action: .plan),
        ]
        let audits: [AuditFilter] = [
            AuditFilter(),
            AuditFilter(actor: "alice"),
            AuditFilter(action: "deployment.running"),
            AuditFilter(targetKind: "Deployment"),
            AuditFilter(targetID: "d7"),
            AuditFilter(actor: "alice", action: "deployment.running", targetKind: "Deployment", targetID: "d7"),
        ]
        let queries =
            fixedQueries
            + listings.map { filter -> Query in
                let query = SQLiteStore.deploymentListing(filter, before: 99_500, limit: 50)
                return ("list \(filter)", query.sql, query.arguments)
            }
            + audits.map { filter -> Query in
                let query = SQLiteStore.auditListing(filter, before: 10, limit: 50)
                return ("audit \(filter)", query.sql, query.arguments)
            }
        for query in queries {
            let plan = try await store.pool.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + query.sql, arguments: query.arguments).map {
                    $0["detail"] as String
                }
            }
            // EXISTS (…) reads one constant row around its indexed subquery: not a table scan.
            let tableScans = plan.filter { $0.hasPrefix("SCAN") && !$0.contains("INDEX") && $0 != "SCAN CONSTANT ROW" }
            #expect(tableScans.isEmpty, "\(query.name) scans a table: \(plan)")
            // Only a claim walks a (partial) index from its start; every other query searches a range.
            // Reading a list of ids the caller passed (`json_each`) is not a scan of the database either.
            let scans = plan.filter {
                $0.hasPrefix("SCAN") && $0 != "SCAN CONSTANT ROW" && !$0.hasPrefix("SCAN json_each")
            }
            #expect(query.name.contains("claim") || scans.isEmpty, "\(query.name) scans: \(plan)")
            #expect(!plan.contains { $0.contains("TEMP B-TREE") }, "\(query.name) sorts: \(plan)")
            #expect(plan.contains { $0.hasPrefix("SEARCH") }, "\(query.name): \(plan)")
        }
        let claimed = try await store.claimNextDeployments(owner: "w2", leaseDuration: 30, limit: 1000)
        #expect(claimed.count == 666)
        #expect(Set(claimed.map(\.instanceID)).count == 666)
        #expect(
            try await store.history(of: "i7", after: nil, limit: 3).items.map(\.id) == ["d99007", "d98007", "d97007"])
        #expect(
            try await store.takeOverExpiredLeases(owner: "w3", leaseDuration: 30, limit: 1000, excluding: []).count
                == 334)
        #expect(
            try await store.listDeployments(DeploymentFilter(environment: "e3"), after: nil, limit: 3).items.map(\.id)
                == ["d99993", "d99983", "d99973"])
        let merged = try await store.listDeployments(
            DeploymentFilter(statuses: [.running, .completed]), after: "99002", limit: 3)
        #expect(merged.items.map(\.id) == ["d99000", "d98999", "d98998"])
        #expect(merged.items.map(\.status) == [.running, .completed, .completed])
        #expect(try await store.latestDeploymentChange() == 100_000 + 666)
        #expect(
            try await store.auditLog(AuditFilter(targetID: "d7"), after: nil, limit: 3).items.map(\.sequence)
                == [50_008, 8])
    }
}
