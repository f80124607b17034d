import ConvergeStore
import Foundation
import GRDB
import Logging

/// History reads (`store.history(of:after:limit:)`, limit 50, what the reconciler reads per instance) on databases
/// of 10k and of 1M deployments with the same depth per instance (100), so only the table's size differs.
enum HistoryBench {
    static let perInstance = 100
    static let logger = Logger(label: "converge-bench", factory: { _ in SwiftLogNoOpLogHandler() })

    /// A database of `rows` deployments over `rows / perInstance` instances of its own, in the store's schema.
    static func makeSmall(path: String, rows: Int) throws -> [String] {
        removeDatabase(at: path)
        // The store migrates the schema; the rows go in directly, in large transactions.
        _ = try SQLiteStore(path: path, logger: logger)
        let instances = (0..<max(1, rows / perInstance)).map { "history-env0-instance\($0)" }
        let pool = try DatabasePool(path: path)
        try pool.write { db in
            for id in instances {
                try db.execute(
                    sql: """
                        INSERT INTO instances (id, environment, bundle, status, created_at, updated_at)
                        VALUES (?, 'history-env0', 'bench-network', 'PROVISIONED', 0, 0)
                        """, arguments: [id])
            }
        }
        try insertHistory(pool, instances: instances, perInstance: perInstance, below: 1)
        try pool.close()
        return instances
    }

    /// A copy of the converged database at `base` grown to `rows` deployments: older COMPLETED deployments of its
    /// own instances, inserted below its first sequence, so that the daemon sees the same newest deployments.
    static func makeLarge(path: String, from base: String, rows: Int) throws -> [String] {
        removeDatabase(at: path)
        let source = try DatabaseQueue(path: base)
        try source.inDatabase { db in try db.execute(sql: "VACUUM INTO ?", arguments: [path]) }
        try source.close()
        let pool = try DatabasePool(path: path)
        let (instances, existing, lowest) = try pool.read { db in
            (
                try String.fetchAll(db, sql: "SELECT id FROM instances ORDER BY id"),
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM deployments") ?? 0,
                try Int64.fetchOne(db, sql: "SELECT MIN(seq) FROM deployments") ?? 1
            )
        }
        guard !instances.isEmpty else { throw BenchError("\(base) has no instances") }
        let each = max(0, (rows - existing) / instances.count)
        try insertHistory(pool, instances: instances, perInstance: each, below: lowest)
        try pool.close()
        return instances
    }

    /// Inserts `perInstance` COMPLETED deployments (about 200 bytes of params each) per instance, with sequences
    /// below `below`, 50,000 rows per transaction.
    static func insertHistory(_ pool: DatabasePool, instances: [String], perInstance: Int, below: Int64) throws {
        let total = instances.count * perInstance
        guard total > 0 else { return }
        var random = SplitMix64(seed: 42)
        var sequence = below - Int64(total)
        let started = ContinuousClock.now
        var index = 0
        while index < total {
            let end = min(total, index + 50_000)
            try pool.write { db in
                let statement = try db.makeStatement(
                    sql: """
                        INSERT INTO deployments (seq, id, instance_id, environment, action, params, connection_params,
                            version, md_metadata, desired_hash, status, created_by, created_at, updated_at, started_at,
                            finished_at, attempt, outputs)
                        VALUES (?, ?, ?, (SELECT environment FROM instances WHERE id = ?), 'provision', ?, '{}',
                            '1.0.0', ?, ?, 'COMPLETED', 'converge', ?, ?, ?, ?, 1, ?)
                        """)
                for row in index..<end {
                    let instance = instances[row / perInstance]
                    let id = "h\(String(sequence, radix: 36))-\(row % perInstance)"
                    let params =
                        #"{"az_count":\#(1 + row % 6),"cidr":"10.\#(row % 250).\#(row % 200).0/24","tags":{"#
                        + #""owner":"team\#(row % 97)","cost":"v\#(random.slug(length: 24))","#
                        + #""note":"v\#(random.slug(length: 60))"}}"#
                    let metadata = #"{"actor":"converge","deploymentId":"\#(id)","instance":"\#(instance)"}"#
                    let hash = String(format: "%016llx%016llx%016llx%016llx", random.next(), random.next(), 0, row)
                    let at = 1_700_000_000_000 + sequence - below
                    try statement.execute(arguments: [
                        sequence, id, instance, instance, params, metadata, hash, at, at, at, at,
                        #"{"vpc":{"id":"\#(instance)-vpc"}}"#,
                    ])
                    sequence += 1
                }
            }
            index = end
        }
        progress(
            "inserted \(formatNumber(Double(total), digits: 0)) deployments in "
                + "\(String(format: "%.1f", seconds(since: started))) s")
    }

    /// The reads measured: the paginated history an API client reads, and the lighter one the reconciler decides
    /// on (`recentDeployments`, at `Reconciler.historyDepth`, 20 when this was written).
    enum Read: CaseIterable {
        case history
        case recent

        var name: String {
            switch self {
            case .history: "history(of:after:limit: 50)"
            case .recent: "recentDeployments(of:limit: 20)"
            }
        }

        func perform(_ store: SQLiteStore, _ id: String) async throws -> Int {
            switch self {
            case .history: try await store.history(of: id, after: nil, limit: 50).items.count
            case .recent: try await store.recentDeployments(of: id, limit: 20).count
            }
        }
    }

    /// Per read and run, the p50 and p99 in milliseconds of `queries` reads of random instances.
    static func measure(path: String, instances: [String], runs: Int, queries: Int) async throws -> [Read: (
        p50: [Double], p99: [Double]
    )] {
        let store = try SQLiteStore(path: path, logger: logger)
        var random = SplitMix64(seed: 7)
        var results: [Read: (p50: [Double], p99: [Double])] = [:]
        for read in Read.allCases {
            for _ in 0..<min(200, queries) {
                _ = try await read.perform(store, instances[Int(random.next() % UInt64(instances.count))])
            }
        }
        for _ in 1...runs {
            for read in Read.allCases {
                var times: [Double] = []
                times.reserveCapacity(queries)
                for _ in 0..<queries {
                    let id = instances[Int(random.next() % UInt64(instances.count))]
                    let start = ContinuousClock.now
                    let count = try await read.perform(store, id)
                    times.append(seconds(since: start) * 1000)
                    guard count > 0 else { throw BenchError("\(read.name) of \(id) is empty") }
                }
                results[read, default: ([], [])].p50.append(percentile(times, 50))
                results[read, default: ([], [])].p99.append(percentile(times, 99))
            }
        }
        return results
    }
}
