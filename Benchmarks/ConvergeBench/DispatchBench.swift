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

    /// Deployments per second from the first claim to the last completion of `count` PENDING deployments, on a
    /// fresh database of `store` served by `daemons` engines (each with a store of its own, as a daemon has: on
    /// PostgreSQL its own pool and `LISTEN` connection, and its own lease owner).
    static func dispatch(
        _ path: Path, on store: BenchStore, daemons: Int = 1, repository: RepositoryGenerator.Repository, count: Int,
        directory: URL, run: Int
    ) async throws -> Double {
        let logger = Logger(label: "converge-bench", factory: { _ in SwiftLogNoOpLogHandler() })
        var stores: [any Store] = []
        var listeners: [Task<Void, Never>] = []
        let sqlitePath = directory.appendingPathComponent("dispatch.sqlite").path
        switch store {
        case .sqlite:
            guard daemons == 1 else { throw BenchError("a SQLite database is one daemon's") }
            removeDatabase(at: sqlitePath)
            stores = [try SQLiteStore(path: sqlitePath, logger: logger)]
        case .postgres(let server):
            let url = try await server.freshDatabase("converge_bench_dispatch")
            for _ in 0..<daemons {
                let postgres = try PostgresStore(url: url, password: nil, logger: logger)
                if stores.isEmpty {
                    do { try await postgres.migrate() } catch {
                        await postgres.close()
                        throw error
                    }
                }
                stores.append(postgres)
                listeners.append(Task { try? await postgres.run() })
            }
        }
        // Stops the PostgreSQL stores' listeners, which closes their pools, or removes the SQLite file.
        func close() async {
            for listener in listeners {
                listener.cancel()
                await listener.value
            }
            if case .sqlite = store { removeDatabase(at: sqlitePath) }
        }
        do {
            let rate = try await dispatch(
                path, stores: stores, repository: repository, count: count, logger: logger)
            progress(
                "dispatch \(path) on \(store.name), \(daemons) engine\(daemons == 1 ? "" : "s"), run \(run): "
                    + "\(String(format: "%.0f", rate))/s")
            await close()
            return rate
        } catch {
            await close()
            throw error
        }
    }

    /// Deployments per second of an engine per store of `stores` (one database), from the first claim to the last
    /// completion of `count` PENDING deployments created through the first.
    private static func dispatch(
        _ path: Path, stores: [any Store], repository: RepositoryGenerator.Repository, count: Int, logger: Logger
    ) async throws -> Double {
        var engines: [Engine] = []
        for engineStore in stores {
            // A configuration of its own for each: a lease owner of its own.
            let engine = try await Engine(
                configuration: EngineConfiguration(manifests: repository.directory), store: engineStore,
                clock: SystemClock(),
                makeProvisioner: { declared in
                    switch path {
                    case .inProcess:
                        return InstantProvisioner()
                    case .webhook:
                        return WebhookProvisioner(declared.webhook!, settings: .init(), logger: logger)
                    }
                }, logger: logger)
            guard await engine.manifests.load(), engine.manifests.current != nil else {
                throw BenchError("the engine cannot load \(repository.directory.path)")
            }
            engines.append(engine)
        }
        let state = engines[0].manifests.current!.state
        let first = stores[0]
        for id in repository.instanceIDs.prefix(count) {
            let instance = state.instances[id]!
            _ = try await first.createDeployment(
                DeploymentRequest(
                    instanceID: id,
                    snapshot: DeploymentSnapshot(
                        action: .provision, params: instance.params, connectionParams: [:],
                        version: instance.version ?? "1.0.0", metadata: ["instance": .string(id)]),
                    mode: .direct, actor: "converge-bench"))
        }
        let start = ContinuousClock.now
        let dispatchers = engines.map { engine in Task { try await engine.dispatcher.run() } }
        for engine in engines { engine.dispatcher.wakeUp() }
        var finished = 0
        var failed = 0
        let deadline = ContinuousClock.now + .seconds(300)
        while finished < count {
            guard ContinuousClock.now < deadline else {
                for dispatcher in dispatchers { dispatcher.cancel() }
                throw BenchError("dispatch did not finish within 300 s (\(finished) of \(count))")
            }
            // Often enough to time a run of a second or more within 1 %, rarely enough not to load PostgreSQL.
            try await Task.sleep(for: .milliseconds(10))
            let counts = try await first.deploymentCounts()
            failed = counts[.failed] ?? 0
            finished = (counts[.completed] ?? 0) + failed
        }
        let elapsed = seconds(since: start)
        for dispatcher in dispatchers {
            dispatcher.cancel()
            _ = await dispatcher.result
        }
        guard failed == 0 else {
            let page = try await first.history(of: repository.instanceIDs[0], after: nil, limit: 1)
            throw BenchError("\(failed) deployments failed, e.g. \(page.items.first?.error ?? "?")")
        }
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
