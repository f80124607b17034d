import ConvergeClient
import ConvergeStore
import Foundation
import Synchronization

/// Measurements of the real daemon (`converge serve`, the binary under test) against the instant webhook:
/// time to converge, peak RSS, idle CPU, edit-to-PENDING latency, and `/metrics` on a large database.
enum DaemonBench {
    /// One daemon run over a fresh database.
    struct Run {
        /// Start of the process to every instance PROVISIONED (its deployment COMPLETED).
        var convergeSeconds: Double
        var deployments: Int
        var peakRSSMegabytes: Double?
        /// Share of one core used over the idle window after convergence.
        var idleCPU: Double?
        /// Seconds from convergence until the daemon was idle (its work queue drained).
        var settleSeconds: Double?
        /// Milliseconds from `POST /v1/sync` to the edited instance's new deployment row, one per edit.
        var pendingMilliseconds: [Double]
        /// Milliseconds from a deployment's status change to its event at a `/v1/watch` client.
        var eventMilliseconds: [Double]
        /// The repository copy and database (a SQLite path, or a PostgreSQL URL) the run left behind, converged.
        var repository: URL
        var database: String
    }

    static let idleWindow: Duration = .seconds(10)

    /// Starts the daemon on a copy of `repository` and a fresh database of `store`, waits until every instance is
    /// PROVISIONED, measures idle CPU when `measureIdle`, makes `edits` one-file edits (each followed by
    /// `POST /v1/sync`), then times `events` status changes to their `/v1/watch` events.
    static func run(
        repository: RepositoryGenerator.Repository, store: BenchStore, settings: BenchSettings, webhook: InstantWebhook,
        edits: Int, events: Int, label: String, measureIdle: Bool
    ) async throws -> Run {
        // A folder per store: the converged SQLite run is read by later rows.
        let prefix = if case .postgres = store { "daemon-postgres" } else { "daemon" }
        let folder = settings.directory.appendingPathComponent(
            "\(prefix)-\(repository.instances)", isDirectory: true)
        try? FileManager.default.removeItem(at: folder)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let manifests = folder.appendingPathComponent("repo", isDirectory: true)
        try FileManager.default.copyItem(at: repository.directory, to: manifests)
        let log = folder.appendingPathComponent("daemon.log")
        let database: String
        let files: String
        let postgresURL: PostgresURL?
        switch store {
        case .sqlite:
            let path = folder.appendingPathComponent("converge.sqlite").path
            (database, files, postgresURL) = ("sqlite:\(path)", path, nil)
        case .postgres(let server):
            let url = try await server.freshDatabase("converge_bench_daemon")
            (database, files, postgresURL) = (url.description, folder.appendingPathComponent("converge").path, url)
        }

        let start = ContinuousClock.now
        let daemon = try Daemon.start(
            binary: settings.convergeBinary, manifests: manifests, database: database, files: files,
            port: settings.daemonPort, log: log)
        var probe: (any DatabaseProbe)?
        do {
            let deadline = start + .seconds(600)
            let opened: any DatabaseProbe =
                if let postgresURL {
                    try await PostgresProbe.open(postgresURL, deadline: deadline)
                } else {
                    try await SQLiteProbe.open(files, deadline: deadline)
                }
            probe = opened
            var provisioned = 0
            while provisioned < repository.instances {
                guard daemon.isRunning else { throw BenchError("the daemon exited; see \(log.path)") }
                guard ContinuousClock.now < deadline else {
                    throw BenchError("not converged after 600 s: \(provisioned) of \(repository.instances)")
                }
                try await Task.sleep(for: .milliseconds(50))
                provisioned = try await opened.count("SELECT COUNT(*) FROM instances WHERE status = 'PROVISIONED'")
            }
            let converged = seconds(since: start)
            let deployments = try await opened.count("SELECT COUNT(*) FROM deployments")
            progress(
                "\(label): \(repository.instances) instances converged in \(String(format: "%.1f", converged)) s "
                    + "(\(deployments) deployments)")
            var idle: Double?
            var settleSeconds: Double?
            if measureIdle || events > 0 {
                // Idle means nothing left to do: the reconciles that completions queued have run.
                let settling = ContinuousClock.now
                let base = daemon.url
                guard try await onThread({ try waitUntilIdle(client: try LoopbackHTTP(), base: base, limit: 120) })
                else { throw BenchError("the daemon did not settle within 120 s of converging") }
                settleSeconds = seconds(since: settling)
            }
            if measureIdle {
                let before = daemon.cpuSeconds
                let windowStart = ContinuousClock.now
                try await Task.sleep(for: idleWindow)
                if let before, let after = daemon.cpuSeconds { idle = (after - before) / seconds(since: windowStart) }
            }
            let rss = daemon.peakRSSMegabytes
            var latencies: [Double] = []
            for edit in 0..<edits {
                latencies.append(
                    try await editOneFile(
                        manifests: manifests, repository: repository, edit: edit, probe: opened, daemon: daemon))
                progress("\(label): edit \(edit + 1) PENDING after \(String(format: "%.1f", latencies.last!)) ms")
            }
            var eventLatencies: [Double] = []
            if events > 0 {
                eventLatencies = try await eventLatency(
                    daemon: daemon, webhook: webhook, repository: repository, samples: events)
                progress(
                    "\(label): status change → /v1/watch event p50 "
                        + String(
                            format: "%.2f ms, p99 %.2f ms", percentile(eventLatencies, 50),
                            percentile(eventLatencies, 99)))
            }
            await opened.close()
            await daemon.stop()
            return Run(
                convergeSeconds: converged, deployments: deployments, peakRSSMegabytes: rss, idleCPU: idle,
                settleSeconds: settleSeconds, pendingMilliseconds: latencies, eventMilliseconds: eventLatencies,
                repository: manifests, database: postgresURL?.description ?? files)
        } catch {
            await probe?.close()
            await daemon.stop()
            throw error
        }
    }

    /// Milliseconds from a deployment's status change to its `deployment` event at a client of `/v1/watch`
    /// (`ConvergeClient.watch`, as `converge watch` reads it), two per sample: each sample redeploys an app instance
    /// (nothing is downstream of it) through `POST /v1/instances/{id}/deployments` on the idle daemon and waits for
    /// the new deployment's PENDING and COMPLETED events. PENDING is timed from the request sent (before the daemon
    /// commits it), COMPLETED from the instant webhook's answer (before the daemon reads it and commits the
    /// completion), so each figure is a little more than the change → event path.
    static func eventLatency(
        daemon: Daemon, webhook: InstantWebhook, repository: RepositoryGenerator.Repository, samples: Int
    ) async throws -> [Double] {
        let client = ConvergeClient(settings: ClientSettings(server: URL(string: daemon.url)!, token: daemon.token))
        let arrivals = Arrivals()
        let changes = try await client.watch(after: nil)
        let reader = Task {
            for try await change in changes {
                let now = ContinuousClock.now
                arrivals.times.withLock { $0["\(change.deployment) \(change.status.rawValue)"] = now }
            }
        }
        defer { reader.cancel() }
        func arrival(of key: String) async throws -> ContinuousClock.Instant {
            let deadline = ContinuousClock.now + .seconds(30)
            while true {
                if let at = arrivals.times.withLock({ $0.removeValue(forKey: key) }) { return at }
                guard ContinuousClock.now < deadline else { throw BenchError("no \(key) event within 30 s") }
                // The arrival was timed by the reader; this loop only learns of it.
                try await Task.sleep(for: .milliseconds(1))
            }
        }
        let stacks = RepositoryGenerator.stacksPerEnvironment(instances: repository.instances)
        var latencies: [Double] = []
        for sample in 0..<samples {
            let instance =
                "\(RepositoryGenerator.project)-env\(sample % RepositoryGenerator.environments)-app\(sample % stacks)"
            let sent = ContinuousClock.now
            let output = try await client.api.createDeployment(
                path: .init(id: instance), body: .json(.init(action: .provision, mode: .direct)))
            let deployment: String
            switch output {
            case .created(let created): deployment = try created.body.json.id
            case .ok(let open): deployment = try open.body.json.id
            default: throw BenchError("POST /v1/instances/\(instance)/deployments answered \(output)")
            }
            latencies.append(milliseconds(try await arrival(of: "\(deployment) PENDING") - sent))
            let completed = try await arrival(of: "\(deployment) COMPLETED")
            guard let answer = webhook.lastAnswer, answer.instance == instance else {
                throw BenchError("the instant webhook did not answer \(instance)'s deployment last")
            }
            latencies.append(milliseconds(completed - answer.at))
        }
        return latencies
    }

    /// The arrival times of `/v1/watch` events, by "DEPLOYMENT STATUS".
    final class Arrivals: Sendable {
        let times = Mutex<[String: ContinuousClock.Instant]>([:])
    }

    /// Rewrites one stack file (its queue's `rev` tag), signals a sync, and returns the milliseconds until the
    /// store has a new deployment row for that queue; then waits until the deployment and its effects settle.
    static func editOneFile(
        manifests: URL, repository: RepositoryGenerator.Repository, edit: Int, probe: any DatabaseProbe, daemon: Daemon
    ) async throws -> Double {
        let stacks = RepositoryGenerator.stacksPerEnvironment(instances: repository.instances)
        let environment = edit % RepositoryGenerator.environments
        let stack = (edit * 7919 + 13) % stacks
        let file = manifests.appendingPathComponent(
            RepositoryGenerator.stackPath(environment: environment, stack: stack))
        let instance = "\(RepositoryGenerator.project)-env\(environment)-queue\(stack)"
        let text = try String(contentsOf: file, encoding: .utf8)
        guard let range = text.range(of: #"rev: v[0-9]+"#, options: .regularExpression) else {
            throw BenchError("\(file.path) has no rev tag to edit")
        }
        let edited = text.replacingCharacters(in: range, with: "rev: v\(Int(Date().timeIntervalSince1970 * 1000))")
        let rowsSQL = "SELECT COUNT(*) FROM deployments WHERE instance_id = ?"
        let before = try await probe.count(rowsSQL, [instance])
        // Written like an editor or a git checkout does: a new file renamed over the old one.
        try edited.write(to: file, atomically: true, encoding: .utf8)
        let syncURL = daemon.url + "/v1/sync"
        let signalled = ContinuousClock.now
        let token = daemon.token
        let response = try await onThread { try LoopbackHTTP().post(syncURL, token: token) }
        guard (200..<300).contains(response.status) else {
            throw BenchError("POST /v1/sync answered \(response.status): \(response.body)")
        }
        let deadline = signalled + .seconds(60)
        while try await probe.count(rowsSQL, [instance]) <= before {
            guard ContinuousClock.now < deadline else { throw BenchError("\(instance) got no deployment in 60 s") }
            try await Task.sleep(for: .milliseconds(1))
        }
        let latency = seconds(since: signalled) * 1000
        let settleDeadline = ContinuousClock.now + .seconds(60)
        while try await probe.count(
            "SELECT COUNT(*) FROM deployments WHERE status IN ('PENDING', 'APPROVED', 'RUNNING')")
            > 0 && ContinuousClock.now < settleDeadline
        {
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: .milliseconds(300))
        return latency
    }

    /// `GET /metrics` latencies in milliseconds: `runs` rounds of `requests` each, after the daemon on
    /// `database` is ready and idle. Returns the p50 and p99 of each round.
    static func metrics(
        repository: URL, database: String, settings: BenchSettings, requests: Int
    ) async throws -> (p50: [Double], p99: [Double], note: String) {
        let folder = settings.directory.appendingPathComponent("metrics-daemon", isDirectory: true)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let log = folder.appendingPathComponent("daemon.log")
        let daemon = try Daemon.start(
            binary: settings.convergeBinary, manifests: repository, database: "sqlite:\(database)", files: database,
            port: settings.daemonPort, log: log, extraArguments: ["--poll-seconds", "3600"])
        do {
            let base = daemon.url
            let start = ContinuousClock.now
            let idleNote = try await onThread { () throws -> String in
                let client = try LoopbackHTTP()
                while (try? client.get(base + "/readyz"))?.status != 200 {
                    guard daemon.isRunning else { throw BenchError("the daemon exited; see \(log.path)") }
                    guard seconds(since: start) < 300 else { throw BenchError("the daemon is not ready after 300 s") }
                    Thread.sleep(forTimeInterval: 0.2)
                }
                guard try waitUntilIdle(client: client, base: base, limit: 300) else { return "not idle after 300 s" }
                return String(format: "idle %.0f s after start", seconds(since: start))
            }
            progress("metrics daemon: \(idleNote)")
            var p50: [Double] = []
            var p99: [Double] = []
            for run in 1...settings.runs {
                let times = try await onThread { () throws -> [Double] in
                    let client = try LoopbackHTTP()
                    for _ in 0..<5 { _ = try client.get(base + "/metrics") }
                    return try (0..<requests).map { _ in
                        let started = ContinuousClock.now
                        let response = try client.get(base + "/metrics")
                        guard response.status == 200 else { throw BenchError("/metrics answered \(response.status)") }
                        return seconds(since: started) * 1000
                    }
                }
                p50.append(percentile(times, 50))
                p99.append(percentile(times, 99))
                progress(
                    "/metrics run \(run): p50 \(String(format: "%.2f", p50.last!)) ms, "
                        + "p99 \(String(format: "%.2f", p99.last!)) ms")
            }
            await daemon.stop()
            return (p50, p99, idleNote)
        } catch {
            await daemon.stop()
            throw error
        }
    }

    /// The value of an unlabelled Prometheus sample, summed over its label sets when it has some.
    /// Waits until the daemon is idle — its work queue empty and no reconcile for two seconds — for at most `limit`
    /// seconds; false if it never was.
    static func waitUntilIdle(client: LoopbackHTTP, base: String, limit: Double) throws -> Bool {
        let start = ContinuousClock.now
        var last = -1.0
        var quiet = 0
        while quiet < 2 {
            guard seconds(since: start) < limit else { return false }
            Thread.sleep(forTimeInterval: 1)
            let text = try client.get(base + "/metrics").body
            let reconciles = metric("converge_reconciles_total", in: text) ?? 0
            let depth = metric("converge_workqueue_depth", in: text) ?? 0
            quiet = reconciles == last && depth == 0 ? quiet + 1 : 0
            last = reconciles
        }
        return true
    }

    static func metric(_ name: String, in text: String) -> Double? {
        var total: Double?
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            let rest = line.dropFirst(name.count)
            guard rest.first == " " || rest.first == "{" else { continue }
            if let value = line.split(separator: " ").last.flatMap({ Double($0) }) { total = (total ?? 0) + value }
        }
        return total
    }
}
