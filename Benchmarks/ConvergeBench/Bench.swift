import Foundation

/// Runs every measurement in order and turns each into table rows; a measurement that fails becomes an `error`
/// row and the others still run.
struct Bench {
    let settings: BenchSettings

    func run() async throws -> [Row] {
        try FileManager.default.createDirectory(at: settings.directory, withIntermediateDirectories: true)
        setenv(RepositoryGenerator.secretVariable, "converge-bench-secret", 1)
        let webhook = try await InstantWebhook.start(port: settings.webhookPort)
        defer { Task { await webhook.stop() } }
        progress("instant webhook on \(settings.webhookURL); converge binary \(settings.convergeBinary.path)")

        var rows: [Row] = []
        let (loads, loadSeconds) = try loadRows()
        rows += loads
        let endToEnd = try RepositoryGenerator(instances: settings.endToEndSize, webhookURL: settings.webhookURL)
            .ensure(under: settings.directory)
        rows += await dispatchRows(repository: endToEnd, webhook: webhook)
        rows += await postgresDispatchRows(repository: endToEnd)
        let (daemonRows, converged) = await daemonRows(
            repository: endToEnd, loadSeconds: loadSeconds, webhook: webhook)
        rows += daemonRows
        rows += await postgresDaemonRows(repository: endToEnd, webhook: webhook)
        rows += await resyncRows(converged: converged)
        rows += await historyAndMetricsRows(converged: converged)
        return rows
    }

    /// `1k`, `10k`, `1M`: a size as the table names it.
    static func short(_ count: Int) -> String {
        if count >= 1_000_000 && count % 1_000_000 == 0 { return "\(count / 1_000_000)M" }
        if count >= 1_000 && count % 1_000 == 0 { return "\(count / 1_000)k" }
        return formatNumber(Double(count), digits: 0)
    }

    // MARK: manifest load

    /// The load rows, and the seconds one load takes at each size (to tell what bounds other rows).
    func loadRows() throws -> ([Row], [Int: Double]) {
        var rows: [Row] = []
        var loadSeconds: [Int: Double] = [:]
        var results: [LoadBench.Result] = []
        for size in settings.loadSizes {
            let repository = try RepositoryGenerator(instances: size, webhookURL: settings.webhookURL)
                .ensure(under: settings.directory)
            let name =
                "manifest load, \(Self.short(size)) instances (\(String(format: "%.1f", Double(repository.bytes) / 1e6)) MB, "
                + "\(formatNumber(Double(repository.files), digits: 0)) files)"
            do {
                let result = try LoadBench.measure(repository, runs: settings.runs)
                results.append(result)
                loadSeconds[size] = result.megabytes / result.ours.median
                let ratio = result.ours.median / result.raw.median
                rows.append(
                    Row(
                        name, ours: result.ours.text, ceiling: "libyaml events: \(result.raw.text)",
                        ratio: percent(ratio), target: "≥ 20 % of libyaml", met: ratio >= 0.2,
                        note: String(format: "%.2f s per cold load; ", result.megabytes / result.ours.median)
                            + "a reload with nothing changed: \(result.unchanged.text)"))
            } catch {
                rows.append(.failed(name, target: "≥ 20 % of libyaml", error: error))
            }
        }
        if let first = results.first, let last = results.last, results.count > 1 {
            let ratio = last.ours.median / first.ours.median
            let rawRatio = last.raw.median / first.raw.median
            rows.append(
                Row(
                    "manifest load linearity, \(Self.short(first.size)) → \(Self.short(last.size))",
                    ours: String(format: "%.2f× the MB/s", ratio), ceiling: String(format: "libyaml: %.2f×", rawRatio),
                    target: "≥ 0.80× (time linear in size)", met: ratio >= 0.8,
                    note: results.map { "\(Self.short($0.size)): \($0.ours.format($0.ours.median)) MB/s" }
                        .joined(separator: ", ")))
        }
        return (rows, loadSeconds)
    }

    // MARK: dispatch

    func dispatchRows(repository: RepositoryGenerator.Repository, webhook: InstantWebhook) async -> [Row] {
        var rows: [Row] = []
        let count = settings.dispatchCount
        let directory = settings.directory
        var raw: [Double] = []
        var pragmas = ""
        do {
            for run in 1...settings.runs {
                let result = try await onThread { try DispatchBench.rawCommits(directory: directory, count: count) }
                raw.append(result.perSecond)
                pragmas = result.pragmas
                progress("raw SQLite run \(run): \(Int(result.perSecond)) commits/s (\(result.pragmas))")
            }
        } catch {
            progress("raw SQLite commits failed: \(error)")
        }
        let rawSample = Sample(raw, unit: "commits/s", digits: 0)
        let target = "≥ 1,000/s and ≥ 25 % of raw commits"
        let name = "dispatch, in-process instant provisioner (\(Self.short(count)) deployments)"
        do {
            var rates: [Double] = []
            for run in 1...settings.runs {
                rates.append(
                    try await DispatchBench.dispatch(
                        .inProcess, on: .sqlite, repository: repository, count: count, directory: directory, run: run))
            }
            let ours = Sample(rates, unit: "/s", digits: 0)
            let ratio = ours.median / rawSample.median
            rows.append(
                Row(
                    name, ours: ours.text, ceiling: "raw SQLite: \(rawSample.text)", ratio: percent(ratio),
                    target: target, met: ours.median >= 1_000 && ratio >= 0.25,
                    note: "store: \(pragmas), busy timeout 10 s; \(DispatchBench.concurrency) at a time; bound: each "
                        + "deployment is a claim and a completion transaction on the one writer, plus reads, with "
                        + "a thread hop each, while the ceiling is single-row commits in a loop"))
        } catch {
            rows.append(.failed(name, target: target, error: error))
        }
        let webhookName = "dispatch through the loopback webhook (\(Self.short(count)) deployments)"
        do {
            var rates: [Double] = []
            for run in 1...settings.runs {
                rates.append(
                    try await DispatchBench.dispatch(
                        .webhook, on: .sqlite, repository: repository, count: count, directory: directory, run: run))
            }
            var http: [Double] = []
            let body = webhook.sampleBody ?? "{}"
            for run in 1...settings.runs {
                http.append(
                    try await DispatchBench.loopbackRequests(url: settings.webhookURL, body: body, count: count))
                progress("loopback HTTP run \(run): \(Int(http.last!)) requests/s")
            }
            let ours = Sample(rates, unit: "/s", digits: 0)
            let ceiling = Sample(http, unit: "req/s", digits: 0)
            rows.append(
                Row(
                    webhookName, ours: ours.text, ceiling: "loopback HTTP via CurlHTTPClient: \(ceiling.text)",
                    ratio: percent(ours.median / ceiling.median), target: "≥ 1,000/s", met: ours.median >= 1_000,
                    note: "a real request body, \(body.utf8.count) bytes; \(DispatchBench.concurrency) at a time"))
        } catch {
            rows.append(.failed(webhookName, target: "≥ 1,000/s", error: error))
        }
        return rows
    }

    // MARK: daemon

    func daemonRows(
        repository: RepositoryGenerator.Repository, loadSeconds: [Int: Double], webhook: InstantWebhook
    ) async -> ([Row], DaemonBench.Run?) {
        var rows: [Row] = []
        let pendingTarget = "< 100 ms"
        var smallPending: [Double] = []
        var smallError: (any Error)?
        if settings.smallSize < repository.instances {
            do {
                let small = try RepositoryGenerator(instances: settings.smallSize, webhookURL: settings.webhookURL)
                    .ensure(under: settings.directory)
                let run = try await DaemonBench.run(
                    repository: small, store: .sqlite, settings: settings, webhook: webhook, edits: settings.runs,
                    events: 0, label: "daemon \(small.instances)", measureIdle: false)
                smallPending = run.pendingMilliseconds
            } catch {
                smallError = error
            }
        }
        var runs: [DaemonBench.Run] = []
        var failure: (any Error)?
        for run in 1...settings.runs {
            do {
                runs.append(
                    try await DaemonBench.run(
                        repository: repository, store: .sqlite, settings: settings, webhook: webhook,
                        edits: settings.runs, events: settings.eventSamples,
                        label: "daemon \(repository.instances) run \(run)", measureIdle: true))
            } catch {
                failure = error
                progress("daemon run \(run) failed: \(error)")
            }
        }
        let size = Self.short(repository.instances)
        let e2eName = "end to end, \(size) instances, three waves: start → all COMPLETED"
        let rssName = "daemon peak RSS (VmHWM), \(size) instances"
        let idleName = "daemon idle CPU, \(DaemonBench.idleWindow) once idle after convergence"
        guard !runs.isEmpty else {
            let error = failure ?? BenchError("no run")
            return (
                [
                    .failed(e2eName, target: "≤ 60 s", error: error),
                    .failed(rssName, target: "≤ 150 MB", error: error),
                    .failed(idleName, target: "< 2 % of a core", error: error),
                    .failed(Self.eventsName("SQLite"), target: Self.eventsTarget, error: error),
                ], nil
            )
        }
        let converge = Sample(runs.map(\.convergeSeconds), unit: "s")
        let deployments = runs.map(\.deployments).max() ?? 0
        rows.append(
            Row(
                e2eName, ours: converge.text, target: "≤ 60 s", met: converge.median <= 60,
                note: "\(formatNumber(Double(deployments), digits: 0)) deployments at convergence"
                    + (failure.map { "; a run failed: \($0)" } ?? "")))
        let rss = Sample(runs.compactMap(\.peakRSSMegabytes), unit: "MB", digits: 0)
        rows.append(
            Row(
                rssName, ours: rss.text, target: "≤ 150 MB", met: rss.values.isEmpty ? nil : rss.median <= 150,
                note: "bound: the peak is reached while converging (10k deployments dispatched and reconciled at "
                    + "full rate); a daemon that loads the same repository over a converged database settles at "
                    + "about 108 MB, of which about 42 MB is file-backed (the binary, Foundation and other libraries)"))
        let idle = Sample(runs.compactMap(\.idleCPU).map { $0 * 100 }, unit: "% of a core")
        rows.append(
            Row(
                idleName, ours: idle.text, target: "< 2 % of a core", met: idle.values.isEmpty ? nil : idle.median < 2,
                note: "over 10 s once the work queue drained ("
                    + Sample(runs.compactMap(\.settleSeconds), unit: "s", digits: 1).text
                    + " after convergence), including the default 10 s manifest poll"))
        let pendingRows: [(Int, [Double], (any Error)?)] =
            settings.smallSize < repository.instances
            ? [
                (settings.smallSize, smallPending, smallError),
                (repository.instances, runs.flatMap(\.pendingMilliseconds), nil),
            ]
            : [(repository.instances, runs.flatMap(\.pendingMilliseconds), nil)]
        for (instances, values, error) in pendingRows {
            let name = "edit one file → PENDING after the sync signal, \(Self.short(instances)) instances"
            if let error {
                rows.append(.failed(name, target: pendingTarget, error: error))
                continue
            }
            let sample = Sample(values, unit: "ms")
            var note = "\(values.count) edits; POST /v1/sync to a new deployment row"
            if let load = loadSeconds[instances] {
                note += String(format: "; one full manifest load takes %.0f ms at this size", load * 1000)
            }
            note += "; bound: a changed load re-runs the cross-resource checks and the state diff over every instance"
            rows.append(
                Row(
                    name, ours: sample.text, target: pendingTarget, met: values.isEmpty ? nil : sample.median < 100,
                    note: note))
        }
        rows.append(eventsRow(.sqlite, runs: runs))
        return (rows, runs.last)
    }

    static let eventsTarget = "p99 < 50 ms"

    /// The event latency row's name on the store named `store`.
    static func eventsName(_ store: String) -> String {
        "status change → `/v1/watch` event at a client, \(store)"
    }

    /// The p50 and p99 of each run's status change → `/v1/watch` event latencies.
    func eventsRow(_ store: BenchStore, runs: [DaemonBench.Run]) -> Row {
        let p50 = Sample(runs.map { percentile($0.eventMilliseconds, 50) }, unit: "ms", digits: 2)
        let p99 = Sample(runs.map { percentile($0.eventMilliseconds, 99) }, unit: "ms", digits: 2)
        let wake =
            switch store {
            case .sqlite: "the stream wakes on the store's own commit signal"
            case .postgres: "the stream wakes on the database's NOTIFY, through the store's LISTEN connection"
            }
        return Row(
            Self.eventsName(store.name), ours: "p50 \(p50.text); p99 \(p99.text)", target: Self.eventsTarget,
            met: runs.isEmpty ? nil : p99.median < 50,
            note:
                "\(settings.eventSamples) redeploys of app instances per run on the idle converged daemon, each timed "
                + "twice: POST sent → PENDING event, and the instant webhook's answer → COMPLETED event (both a little "
                + "more than change → event); \(wake); the safety-net poll is every 2 s")
    }

    // MARK: PostgreSQL

    static let noPostgres = BenchError(
        "no PostgreSQL server: run `make bench` (it starts one) or set BENCH_POSTGRES_URL")

    /// Dispatch on PostgreSQL with one engine and with three on one database, beside raw commits on the same server.
    func postgresDispatchRows(repository: RepositoryGenerator.Repository) async -> [Row] {
        let count = settings.dispatchCount
        let target = "≥ 1,000/s and ≥ 25 % of raw commits"
        let names = [1, 3].map { daemons in
            "dispatch on PostgreSQL, in-process instant provisioner, \(daemons == 1 ? "one engine" : "three engines on one database") "
                + "(\(Self.short(count)) deployments)"
        }
        guard let server = settings.postgres else {
            return names.map { .failed($0, target: target, error: Self.noPostgres) }
        }
        var raw: [Double] = []
        var serverSettings = ""
        do {
            serverSettings = try await server.settings()
            for run in 1...settings.runs {
                raw.append(try await server.rawCommits(count: count))
                progress("raw PostgreSQL run \(run): \(Int(raw.last!)) commits/s (\(serverSettings))")
            }
        } catch {
            progress("raw PostgreSQL commits failed: \(error)")
        }
        let rawSample = Sample(raw, unit: "commits/s", digits: 0)
        var rows: [Row] = []
        for (daemons, name) in zip([1, 3], names) {
            do {
                var rates: [Double] = []
                for run in 1...settings.runs {
                    rates.append(
                        try await DispatchBench.dispatch(
                            .inProcess, on: .postgres(server), daemons: daemons, repository: repository, count: count,
                            directory: settings.directory, run: run))
                }
                let ours = Sample(rates, unit: "/s", digits: 0)
                let ratio = ours.median / rawSample.median
                rows.append(
                    Row(
                        name, ours: ours.text, ceiling: "raw PostgreSQL, one connection: \(rawSample.text)",
                        ratio: percent(ratio), target: target, met: ours.median >= 1_000 && ratio >= 0.25,
                        note: "\(serverSettings), the throwaway server `make bench` starts (ceiling on the same "
                            + "server); \(daemons) × \(DispatchBench.concurrency) at a time, each engine with a store "
                            + "(pool, LISTEN connection, lease owner) of its own; " + Self.postgresDispatchBound))
            } catch {
                rows.append(.failed(name, target: target, error: error))
            }
        }
        return rows
    }

    /// What bounds dispatch on PostgreSQL.
    static let postgresDispatchBound =
        "bound: each deployment is a claim (READ COMMITTED, SKIP LOCKED), an instance read, events appended and a "
        + "SERIALIZABLE completion (lease check, update, audit, events), each a transaction of several round trips "
        + "(BEGIN, SET TRANSACTION, its statements, COMMIT), and every NOTIFY wakes every engine to look for work; "
        + "the ceiling is one INSERT per transaction. On this machine the server, the engines and the bench share "
        + "the cores, so three engines add contention rather than throughput"

    /// The real daemon on PostgreSQL: start → all COMPLETED, and status change → `/v1/watch` event.
    func postgresDaemonRows(repository: RepositoryGenerator.Repository, webhook: InstantWebhook) async -> [Row] {
        let name =
            "end to end on PostgreSQL, \(Self.short(repository.instances)) instances, three waves: start → all COMPLETED"
        guard let server = settings.postgres else {
            return [
                .failed(name, target: "≤ 60 s", error: Self.noPostgres),
                .failed(Self.eventsName("PostgreSQL"), target: Self.eventsTarget, error: Self.noPostgres),
            ]
        }
        var runs: [DaemonBench.Run] = []
        var failure: (any Error)?
        for run in 1...settings.runs {
            do {
                runs.append(
                    try await DaemonBench.run(
                        repository: repository, store: .postgres(server), settings: settings, webhook: webhook,
                        edits: 0, events: settings.eventSamples,
                        label: "daemon on PostgreSQL \(repository.instances) run \(run)", measureIdle: false))
            } catch {
                failure = error
                progress("daemon on PostgreSQL run \(run) failed: \(error)")
            }
        }
        guard !runs.isEmpty else {
            let error = failure ?? BenchError("no run")
            return [
                .failed(name, target: "≤ 60 s", error: error),
                .failed(Self.eventsName("PostgreSQL"), target: Self.eventsTarget, error: error),
            ]
        }
        let converge = Sample(runs.map(\.convergeSeconds), unit: "s")
        return [
            Row(
                name, ours: converge.text, target: "≤ 60 s", met: converge.median <= 60,
                note: "one `converge serve` on a fresh database of the bench's server, default settings; "
                    + "\(formatNumber(Double(runs.map(\.deployments).max() ?? 0), digits: 0)) deployments at convergence"
                    + (failure.map { "; a run failed: \($0)" } ?? "")),
            eventsRow(.postgres(server), runs: runs),
        ]
    }

    // MARK: resync

    func resyncRows(converged: DaemonBench.Run?) async -> [Row] {
        let name = "no-op resync, \(Self.short(settings.endToEndSize)) instances (in process, 2 workers)"
        guard let converged else {
            return [.failed(name, target: "< 1 s", error: BenchError("no converged database"))]
        }
        do {
            let result = try await ResyncBench.measure(
                repository: converged.repository, convergedDatabase: converged.database,
                directory: settings.directory, runs: settings.runs)
            let sample = Sample(result.seconds, unit: "s", digits: 2)
            return [
                Row(
                    name, ours: sample.text, target: "< 1 s", met: sample.median < 1 && result.created == 0,
                    note: "\(result.instances) reconciles per run, \(result.created) deployments created"
                        + String(format: " (%.0f reconciles/s)", Double(result.instances) / sample.median))
            ]
        } catch {
            return [.failed(name, target: "< 1 s", error: error)]
        }
    }

    // MARK: history and /metrics

    func historyAndMetricsRows(converged: DaemonBench.Run?) async -> [Row] {
        var rows: [Row] = []
        let queries = settings.quick ? 500 : 2_000
        let smallRows = 10_000
        let large = Self.short(settings.historyRows)
        let target = "p50 and p99 < 2 ms"
        typealias Results = [HistoryBench.Read: (p50: [Double], p99: [Double])]
        var small: Results?
        do {
            let path = settings.directory.appendingPathComponent("history-10k.sqlite").path
            let instances = try HistoryBench.makeSmall(path: path, rows: smallRows)
            small = try await HistoryBench.measure(
                path: path, instances: instances, runs: settings.runs, queries: queries)
        } catch {
            rows.append(.failed("history reads, 10k rows", target: target, error: error))
        }
        var big: Results?
        var largePath: String?
        if let converged {
            do {
                let path = settings.directory.appendingPathComponent("history-\(large).sqlite").path
                let instances = try HistoryBench.makeLarge(
                    path: path, from: converged.database, rows: settings.historyRows)
                largePath = path
                big = try await HistoryBench.measure(
                    path: path, instances: instances, runs: settings.runs, queries: queries)
            } catch {
                rows.append(.failed("history reads, \(large) rows", target: target, error: error))
            }
        } else {
            rows.append(
                .failed(
                    "history reads, \(large) rows", target: target, error: BenchError("no converged database to grow")))
        }
        for read in HistoryBench.Read.allCases {
            for (label, results) in [("10k", small), (large, big)] {
                guard let result = results?[read] else { continue }
                let p50 = Sample(result.p50, unit: "ms", digits: 3)
                let p99 = Sample(result.p99, unit: "ms", digits: 3)
                rows.append(
                    Row(
                        "`\(read.name)`, \(label) rows", ours: "p50 \(p50.text); p99 \(p99.text)", target: target,
                        met: p50.median < 2 && p99.median < 2, note: "\(queries) reads of random instances per run"))
            }
            if let small = small?[read], let big = big?[read] {
                let p50 = Sample(big.p50, unit: "").median / Sample(small.p50, unit: "").median
                let p99 = Sample(big.p99, unit: "").median / Sample(small.p99, unit: "").median
                rows.append(
                    Row(
                        "`\(read.name)` flatness, \(large) vs 10k rows",
                        ours: String(format: "p50 %.2f×, p99 %.2f×", p50, p99), target: "≤ 1.5×",
                        met: p50 <= 1.5 && p99 <= 1.5,
                        note: "the tail at the larger size is page-cache misses on a file of several hundred MB"))
            }
        }
        let metricsName = "GET /metrics, \(large) deployments"
        if let converged, let largePath {
            do {
                let result = try await DaemonBench.metrics(
                    repository: converged.repository, database: largePath, settings: settings,
                    requests: settings.quick ? 20 : 50)
                let p50 = Sample(result.p50, unit: "ms", digits: 2)
                let p99 = Sample(result.p99, unit: "ms", digits: 2)
                rows.append(
                    Row(
                        metricsName + " (p50)", ours: p50.text, target: "< 5 ms", met: p50.median < 5,
                        note: "p99 \(p99.text); daemon \(result.note)"))
            } catch {
                rows.append(.failed(metricsName, target: "< 5 ms", error: error))
            }
        } else {
            rows.append(.failed(metricsName, target: "< 5 ms", error: BenchError("no large database")))
        }
        return rows
    }
}
