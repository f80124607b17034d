import ConvergeCore
import ConvergeEngine
import ConvergeProvisioners
import ConvergeStore
import Foundation
import GRDB
import Logging

/// Dispatch throughput and its ceilings: an `Engine`'s dispatcher over a `SQLiteStore` holding N PENDING
/// deployments of N instances, with an instant in-process provisioner and with the instant webhook; beside them
/// raw SQLite commits/s with the store's settings and loopback requests/s through `CurlHTTPClient`.
enum DispatchBench {
    /// The daemon's default concurrency (`--max-concurrent-deployments`), used by every dispatch figure here.
    static var concurrency: Int { EngineConfiguration(manifests: URL(fileURLWithPath: "/")).maxConcurrentDeployments }

    /// Raw SQLite: single-row INSERT transactions (BEGIN IMMEDIATE … COMMIT), one at a time, on a file opened as
    /// `SQLiteStore` opens its pool: GRDB `DatabasePool` (WAL, synchronous NORMAL), busy timeout 10 s.
    static func rawCommits(directory: URL, count: Int) throws -> (perSecond: Double, pragmas: String) {
        let path = directory.appendingPathComponent("raw-commits.sqlite").path
        removeDatabase(at: path)
        defer { removeDatabase(at: path) }
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.label = "converge-bench-raw"
        let pool = try DatabasePool(path: path, configuration: configuration)
        let pragmas = try pool.write { db in
            try db.execute(
                sql: "CREATE TABLE rows (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, at INTEGER NOT NULL)"
            )
            let journal = try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "?"
            let synchronous = try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1
            let names = [0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"]
            return "journal_mode=\(journal), synchronous=\(names[synchronous] ?? "\(synchronous)")"
        }
        let body = String(repeating: "x", count: 700)
        let start = ContinuousClock.now
        for index in 0..<count {
            try pool.writeWithoutTransaction { db in
                try db.inTransaction(.immediate) {
                    try db.execute(
                        sql: "INSERT INTO rows (body, at) VALUES (?, ?)", arguments: [body, index])
                    return .commit
                }
            }
        }
        let elapsed = seconds(since: start)
        try pool.close()
        return (Double(count) / elapsed, pragmas)
    }

    /// How the dispatch bench reaches its provisioner.
    enum Path {
        case inProcess
        case webhook
    }

    /// Deployments per second from the first claim to the last completion of `count` PENDING deployments.
    static func dispatch(
        _ path: Path, repository: RepositoryGenerator.Repository, count: Int, directory: URL, run: Int
    ) async throws -> Double {
        let database = directory.appendingPathComponent("dispatch.sqlite").path
        removeDatabase(at: database)
        defer { removeDatabase(at: database) }
        let logger = Logger(label: "converge-bench", factory: { _ in SwiftLogNoOpLogHandler() })
        let store = try SQLiteStore(path: database, logger: logger)
        let configuration = EngineConfiguration(manifests: repository.directory)
        let engine = try await Engine(
            configuration: configuration, store: store, clock: SystemClock(),
            makeProvisioner: { declared in
                switch path {
                case .inProcess:
                    return InstantProvisioner()
                case .webhook:
                    return WebhookProvisioner(declared.webhook!, settings: .init(), logger: logger)
                }
            }, logger: logger)
        guard await engine.manifests.load(), let state = engine.manifests.current?.state else {
            throw BenchError("the engine cannot load \(repository.directory.path)")
        }
        for id in repository.instanceIDs.prefix(count) {
            let instance = state.instances[id]!
            _ = try await store.createDeployment(
                DeploymentRequest(
                    instanceID: id,
                    snapshot: DeploymentSnapshot(
                        action: .provision, params: instance.params, connectionParams: [:],
                        version: instance.version ?? "1.0.0", metadata: ["instance": .string(id)]),
                    mode: .direct, actor: "converge-bench"))
        }
        let start = ContinuousClock.now
        let dispatcher = Task { try await engine.dispatcher.run() }
        engine.dispatcher.wakeUp()
        var finished = 0
        var failed = 0
        let deadline = ContinuousClock.now + .seconds(300)
        while finished < count {
            guard ContinuousClock.now < deadline else {
                dispatcher.cancel()
                throw BenchError("dispatch did not finish within 300 s (\(finished) of \(count))")
            }
            try await Task.sleep(for: .milliseconds(2))
            let counts = try await store.deploymentCounts()
            failed = counts[.failed] ?? 0
            finished = (counts[.completed] ?? 0) + failed
        }
        let elapsed = seconds(since: start)
        dispatcher.cancel()
        _ = await dispatcher.result
        guard failed == 0 else {
            let page = try await store.history(of: repository.instanceIDs[0], after: nil, limit: 1)
            throw BenchError("\(failed) deployments failed, e.g. \(page.items.first?.error ?? "?")")
        }
        progress("dispatch \(path) run \(run): \(count) in \(String(format: "%.2f", elapsed)) s")
        return Double(count) / elapsed
    }

    /// Loopback POSTs per second through `CurlHTTPClient` to the instant webhook, `concurrency` at a time, with the
    /// body and headers of a real provisioner request.
    static func loopbackRequests(url: String, body: String, count: Int) async throws -> Double {
        let client = CurlHTTPClient()
        let bytes = Array(body.utf8)
        let headers: [(name: String, value: String)] = [
            ("Content-Type", "application/json"), ("Accept", "application/json"), ("Idempotency-Key", "bench/1"),
            ("X-Converge-Deployment", "bench"), ("User-Agent", "converge"), ("Expect", ""),
        ]
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            let workers = concurrency
            for worker in 0..<workers {
                group.addTask {
                    for _ in stride(from: worker, to: count, by: workers) {
                        let response = try await client.post(url: url, body: bytes, headers: headers)
                        guard response.status == 200 else {
                            throw BenchError("the instant webhook answered \(response.status)")
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        return Double(count) / seconds(since: start)
    }
}

/// A provisioner that completes every deployment at once, with an output per artifact.
struct InstantProvisioner: DeploymentProvisioner {
    func provision(_ job: ProvisionJob, events: @escaping @Sendable ([DeploymentEventDraft]) async -> Void)
        async throws -> ProvisionOutcome
    {
        var outputs: [String: Value] = [:]
        for (name, type) in job.artifacts {
            outputs[name] = ["id": .string("\(job.deployment.instanceID)-\(name)"), "type": .string(type)]
        }
        return .completed(outputs: .object(outputs), planResult: nil)
    }
}

/// Removes a SQLite database and its WAL files.
func removeDatabase(at path: String) {
    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
}
