import ConvergeEngine
import ConvergeStore
import Foundation
import GRDB
import Logging
import Synchronization

/// A no-op resync, in process: an `Engine` over a `SQLiteStore` on a copy of the converged database, its manifests
/// loaded, then `reconciler.reconcile(id)` for every instance with two concurrent workers (the daemon's default).
/// Every reconcile finds its desired state already deployed; the figure says how many deployments it created
/// anyway, which should be none.
enum ResyncBench {
    static func measure(repository: URL, convergedDatabase: String, directory: URL, runs: Int) async throws -> (
        seconds: [Double], created: Int, instances: Int
    ) {
        let path = directory.appendingPathComponent("resync.sqlite").path
        removeDatabase(at: path)
        defer { removeDatabase(at: path) }
        let source = try DatabaseQueue(path: convergedDatabase)
        try source.inDatabase { db in try db.execute(sql: "VACUUM INTO ?", arguments: [path]) }
        try source.close()
        let logger = Logger(label: "converge-bench", factory: { _ in SwiftLogNoOpLogHandler() })
        let store = try SQLiteStore(path: path, logger: logger)
        let configuration = EngineConfiguration(manifests: repository)
        let engine = try await Engine(
            configuration: configuration, store: store, clock: SystemClock(),
            makeProvisioner: { _ in InstantProvisioner() }, logger: logger)
        guard await engine.manifests.load(), let state = engine.manifests.current?.state else {
            throw BenchError("the engine cannot load \(repository.path)")
        }
        let ids = state.instances.keys.sorted()
        let before = try await store.deploymentCounts().values.reduce(0, +)
        var times: [Double] = []
        for run in 1...runs {
            let next = SharedCounter()
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<configuration.workers {
                    group.addTask {
                        while true {
                            let index = next.value.add(1, ordering: .relaxed).oldValue
                            guard index < ids.count else { return }
                            try await engine.reconciler.reconcile(ids[index])
                        }
                    }
                }
                try await group.waitForAll()
            }
            times.append(seconds(since: start))
            progress("no-op resync run \(run): \(ids.count) reconciles in \(String(format: "%.3f", times.last!)) s")
        }
        let after = try await store.deploymentCounts().values.reduce(0, +)
        return (times, after - before, ids.count)
    }
}

/// A counter that concurrent tasks share.
final class SharedCounter: Sendable {
    let value = Atomic<Int>(0)
}
