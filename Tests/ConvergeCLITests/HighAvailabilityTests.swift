import ConvergeCore
import ConvergeTestSupport
import Foundation
import Synchronization
import Testing

/// Issue 14: several `converge serve` processes on one PostgreSQL database lose nothing and do nothing twice when one
/// is killed, one is paused for longer than a lease, or the database goes away for a while.
///
/// The real binary, a `RecordingProvisioner` that records every call, and the database read as a second client does.
/// The provisioner's applies take less than a lease, so a call in flight when its daemon stops has been answered
/// before another daemon can take its lease over: the only second call of an instance is then a resend under the
/// same idempotency key after the first was answered, never one beside it.
@Suite(.serialized, .timeLimit(.minutes(3))) struct HighAvailabilityTests {
    static let arguments = ["--lease-seconds", "2", "--max-concurrent-deployments", "8", "--poll-seconds", "3600"]

    /// 200 instances, each created and then changed three times, on three daemons; while the second change drains,
    /// one daemon is killed (SIGKILL) and another stopped (SIGSTOP) until the others have taken over every lease of
    /// both, then continued (SIGCONT).
    @Test func threeDaemons_oneKilledOnePausedMidDrain_everyChangeAppliedOnceUnderItsLease() async throws {
        let began = ContinuousClock.now
        let provisioner = try await RecordingProvisioner.start(delay: .random(milliseconds: 20...600, seed: 14))
        defer { Task { await provisioner.stop() } }
        let database = try TestPostgres.createDatabase()
        defer { TestPostgres.dropDatabase(database) }
        let names = (0..<200).map { String(format: "i%03d", $0) }
        func files(round: Int) -> [String: String] {
            repository(
                url: provisioner.url, timeoutSeconds: 60,
                instances: Dictionary(uniqueKeysWithValues: names.map { ($0, ["size": .int(round)] as Value) }))
        }
        let cluster = try DaemonCluster(
            count: 3, files: files(round: 0), arguments: Self.arguments,
            databaseURL: try TestPostgres.url(of: database).description + "&pool_max=8")
        let (paused, killed) = (cluster.daemons[1], cluster.daemons[2])
        var sampler: DatabaseSampler?
        do {
            try await cluster.start()
            sampler = DatabaseSampler(database: database)
            let owners = try cluster.daemons.map(DaemonCluster.owner(of:))
            try await Self.drain(database, names.count, "round 0")
            var version = 0
            for round in 1...3 {
                version = try await cluster.change(to: files(round: round), after: version)
                if round == 2 {
                    try await eventually("the daemons to pause and to kill hold leases") {
                        let held = try Self.leasesHeld(database)
                        return held[owners[1], default: 0] > 0 && held[owners[2], default: 0] > 0
                    }
                    try await killed.stop(signal: SIGKILL)
                    paused.suspend()
                    let pausedAt = ContinuousClock.now
                    try await eventually("every lease of the killed and the paused daemon is taken over") {
                        let held = try Self.leasesHeld(database)
                        return held[owners[1]] == nil && held[owners[2]] == nil
                    }
                    let pause = ContinuousClock.now - pausedAt
                    paused.resume()
                    #expect(pause > .seconds(2), "paused for \(pause), not longer than the lease")
                }
                try await Self.drain(database, names.count * (round + 1), "round \(round)")
            }
            let samples = sampler?.stop() ?? DatabaseSampler.Samples()

            // Every deployment terminal, each desired change applied exactly once (one COMPLETED deployment per
            // instance and desired state, one apply per instance and params at the provisioner).
            let total = names.count * 4
            let statuses = try Self.statusCounts(database)
            #expect(statuses == ["COMPLETED": total], "deployments by status: \(statuses)")
            let changes = try TestPostgres.psql(
                """
                SELECT count(*), count(*) FILTER (WHERE n <> 1) FROM (SELECT count(*) AS n FROM deployments
                WHERE status = 'COMPLETED' GROUP BY instance_id, desired_hash) AS c
                """, database: database)
            #expect(
                changes == "\(total)|0\n", "desired states completed, and those completed more than once: \(changes)")
            let requests = await provisioner.requests
            let applied = Dictionary(grouping: requests.filter { $0.kind == .apply }) { request in
                let document = try? JSONSerialization.jsonObject(with: request.body) as? [String: Any]
                let params = (document?["deployment"] as? [String: Any])?["params"] as? [String: Any]
                return "\(request.instance) size \(params?["size"] as? Int ?? -1)"
            }
            let twice = applied.filter { $0.value.count > 1 }.keys.sorted()
            #expect(
                applied.count == total && twice.isEmpty, "\(applied.count) changes applied; twice: \(twice.prefix(10))")

            // The sampler never saw two RUNNING deployments of an instance, nor a desired state completed twice.
            #expect(samples.count > 20, "the sampler polled \(samples.count) times")
            #expect(samples.violations.isEmpty, "the sampler saw: \(samples.violations.prefix(5))")
            let overlaps = await provisioner.overlappingCalls
            #expect(overlaps.isEmpty, "calls of one instance in flight at once: \(overlaps.prefix(10))")

            // Fencing: every ending was written by the holder of the deployment's last lease, under its epoch (the
            // audit log records the lease an ending found; the epoch never goes back), and each deployment ended
            // once.
            let endings = try TestPostgres.psql(
                """
                SELECT count(*), count(*) FILTER (WHERE a.actor IS DISTINCT FROM d.lease_owner
                    OR (a.before::jsonb ->> 'leaseOwner') IS DISTINCT FROM d.lease_owner
                    OR (a.before::jsonb ->> 'leaseEpoch')::bigint IS DISTINCT FROM d.lease_epoch),
                    count(DISTINCT d.id)
                FROM audit_log AS a JOIN deployments AS d ON d.id = a.target_id
                WHERE a.target_kind = 'Deployment' AND a.action IN ('deployment.completed', 'deployment.failed')
                """, database: database)
            #expect(
                endings == "\(total)|0|\(total)\n", "endings, those not under the last lease, deployments: \(endings)")
            // Proves the scenario: the survivor took over leases of both the killed and the paused daemon, and the
            // paused one, continued, found the leases of its calls gone.
            let takeovers = try TestPostgres.psql(
                """
                SELECT before::jsonb ->> 'leaseOwner', count(*) FROM audit_log
                WHERE action = 'deployment.takeOverLease' GROUP BY 1 ORDER BY 1
                """, database: database)
            #expect(takeovers.contains(owners[1]) && takeovers.contains(owners[2]), "leases taken over: \(takeovers)")
            let refused = paused.logText.components(separatedBy: "deployment outcome not recorded").count - 1
            print(
                "high availability: \(total) deployments, \(requests.count) provisioner calls (\(applied.count) "
                    + "applies), \(overlaps.count) overlapping, \(twice.count) applied twice, \(samples.count) "
                    + "samples, leases taken over by owner: \(takeovers.split(separator: "\n")), outcomes of the "
                    + "paused daemon refused: \(refused), \(ContinuousClock.now - began)")
        } catch {
            _ = sampler?.stop()
            print("high availability test stopped: \(error)")
            print("deployments by status: \((try? Self.statusCounts(database)) ?? [:])")
            let busiest = try? TestPostgres.psql(
                """
                SELECT instance_id, seq, status, params, created_by, created_at FROM deployments WHERE instance_id IN (
                    SELECT instance_id FROM deployments GROUP BY 1 ORDER BY count(*) DESC LIMIT 3) ORDER BY 1, 2
                """, database: database)
            print("deployments of the instances with the most:\n\(busiest ?? "-")")
            for daemon in cluster.daemons { print("daemon on port \(daemon.port):\n\(daemon.logTail(30))") }
            throw error
        }
        await cluster.stop()
    }

    /// The database stopped (`pg_ctl stop -m fast`) for 10 s while two daemons drain 100 deployments, then started
    /// again. On a server of the test's own: stopping the test run's server would fail the tests running beside.
    @Test func databaseStoppedMidDrain_everyDaemonNotReady_thenWorkResumesWithNothingLostOrTwice() async throws {
        let server = try OwnPostgres()
        let provisioner = try await RecordingProvisioner.start(delay: .random(milliseconds: 200...600, seed: 41))
        defer { Task { await provisioner.stop() } }
        let names = (0..<100).map { String(format: "i%03d", $0) }
        let cluster = try DaemonCluster(
            count: 2,
            files: repository(
                url: provisioner.url, timeoutSeconds: 60,
                instances: Dictionary(uniqueKeysWithValues: names.map { ($0, ["size": 1] as Value) })),
            arguments: ["--lease-seconds", "2", "--max-concurrent-deployments", "4", "--poll-seconds", "3600"],
            databaseURL: server.url + "&pool_max=8")
        func statuses() throws -> [String: Int] {
            Self.pairs(try server.psql("SELECT status, count(*) FROM deployments GROUP BY 1"))
        }
        do {
            try await cluster.start()
            try await eventually("a fifth of the deployments completed") {
                try statuses()["COMPLETED", default: 0] >= names.count / 5
            }
            try server.stop()
            let stoppedAt = ContinuousClock.now
            var notReady: Set<Int> = []
            var readyAgain: [String] = []
            while ContinuousClock.now - stoppedAt < .seconds(10) {
                for (index, daemon) in cluster.daemons.enumerated() {
                    let status = try? await daemon.get("/readyz", timeout: 5).status
                    if status == 503 {
                        notReady.insert(index)
                    } else if notReady.contains(index) {
                        readyAgain.append("daemon \(index) answered \(status.map(String.init) ?? "nothing")")
                    }
                }
                try await Task.sleep(for: .milliseconds(250))
            }
            try server.start()
            #expect(notReady == [0, 1], "daemons that answered /readyz 503 while the database was away: \(notReady)")
            #expect(readyAgain.isEmpty, "ready again while the database was away: \(readyAgain)")
            for daemon in cluster.daemons {
                try await eventually("daemon on port \(daemon.port) is ready again") { await daemon.isReady() }
            }
            try await eventually("every deployment ended", timeout: .seconds(60)) {
                let counts = try statuses()
                return counts.values.reduce(0, +) == names.count && counts["RUNNING"] == nil
                    && counts["PENDING"] == nil
            }
            let ended = try statuses()
            #expect(ended == ["COMPLETED": names.count], "deployments by status: \(ended)")
            let applies = Dictionary(grouping: await provisioner.applies, by: \.instance).mapValues(\.count)
            #expect(
                applies.count == names.count && applies.values.allSatisfy { $0 == 1 },
                "instances applied other than once: \(applies.filter { $0.value != 1 })")
            let overlaps = await provisioner.overlappingCalls
            #expect(overlaps.isEmpty, "calls of one instance in flight at once: \(overlaps.prefix(10))")
        } catch {
            print("database outage test stopped: \(error)")
            print("deployments by status: \((try? statuses()) ?? [:])")
            let deployed = Set(
                (try? server.psql("SELECT DISTINCT instance_id FROM deployments"))?.split(separator: "\n") ?? [])
            print("instances without a deployment: \(names.filter { !deployed.contains("p-dev-\($0)") })")
            for daemon in cluster.daemons {
                let warnings = daemon.logText.split(separator: "\n").filter { !$0.contains(" info ") }
                print(
                    "daemon on port \(daemon.port), its last warnings:\n\(warnings.suffix(40).joined(separator: "\n"))")
            }
            throw error
        }
        await cluster.stop()
    }

    /// `converge status` against one daemon lists the three daemons of the database, then two once the announcement
    /// of a killed one has expired (one lease).
    @Test func status_listsTheDaemonsAlive_thenTwoAfterOneIsKilled() async throws {
        let database = try TestPostgres.createDatabase()
        defer { TestPostgres.dropDatabase(database) }
        let cluster = try DaemonCluster(
            count: 3, files: repository(url: "http://127.0.0.1:9/deploy", instances: [:]), arguments: Self.arguments,
            databaseURL: try TestPostgres.url(of: database).description + "&pool_max=4")
        try await cluster.start()
        let owners = try cluster.daemons.map(DaemonCluster.owner(of:))
        let asked = cluster.daemons[0]
        func alive() async throws -> Set<String> {
            let result = try await asked.cli(nil, "status", "-o", "json")
            let readiness = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
            let daemons = (readiness?["checks"] as? [String: Any])?["daemons"] as? [[String: Any]] ?? []
            return Set(daemons.compactMap { $0["id"] as? String })
        }
        try await eventually("status lists the three daemons") { try await alive() == Set(owners) }
        let text = try await asked.cli(nil, "status").stdout
        #expect(text.contains("daemons:   3 alive"), "\(text)")
        try await cluster.daemons[2].stop(signal: SIGKILL)
        try await eventually("status lists the two daemons left", timeout: .seconds(15)) {
            try await alive() == Set(owners.prefix(2))
        }
        #expect(try await asked.cli(nil, "status").stdout.contains("daemons:   2 alive"))
        await cluster.stop()
    }

    /// Waits until `total` deployments (or more: the checks after say which) exist and none is open.
    static func drain(_ database: String, _ total: Int, _ what: String) async throws {
        try await eventually("\(what): \(total) deployments ended", timeout: .seconds(60)) {
            let counts = try statusCounts(database)
            return counts.values.reduce(0, +) >= total
                && counts.keys.allSatisfy { ["COMPLETED", "FAILED", "ABORTED", "REJECTED"].contains($0) }
        }
    }

    /// Deployments by status.
    static func statusCounts(_ database: String) throws -> [String: Int] {
        try pairs(TestPostgres.psql("SELECT status, count(*) FROM deployments GROUP BY 1", database: database))
    }

    /// The RUNNING deployments each lease owner holds, expired or not.
    static func leasesHeld(_ database: String) throws -> [String: Int] {
        try pairs(
            TestPostgres.psql(
                "SELECT lease_owner, count(*) FROM deployments WHERE status = 'RUNNING' GROUP BY 1", database: database)
        )
    }

    /// `key|count` lines as a dictionary.
    static func pairs(_ text: String) -> [String: Int] {
        var counts: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: "|")
            if fields.count == 2, let count = Int(fields[1]) { counts[String(fields[0])] = count }
        }
        return counts
    }
}

/// Polls a database on a thread of its own, with a connection of its own, until stopped: whether any instance has two
/// RUNNING deployments (the partial unique index forbids it) or any desired state of an instance completed twice.
final class DatabaseSampler: Sendable {
    struct Samples: Sendable {
        var count = 0
        var violations: [String] = []
    }

    private let state = Mutex<(samples: Samples, stopped: Bool)>((Samples(), false))
    private let finished = DispatchSemaphore(value: 0)

    init(database: String) {
        Thread.detachNewThread { [self] in
            while !state.withLock({ $0.stopped }) {
                let found = Result {
                    try TestPostgres.psql(
                        """
                        SELECT 'two RUNNING of ' || instance_id FROM deployments WHERE status = 'RUNNING'
                        GROUP BY instance_id HAVING count(*) > 1
                        UNION ALL
                        SELECT 'completed twice: ' || instance_id || ' ' || desired_hash FROM deployments
                        WHERE status = 'COMPLETED' GROUP BY instance_id, desired_hash HAVING count(*) > 1
                        """, database: database)
                }
                state.withLock { state in
                    state.samples.count += 1
                    switch found {
                    case .success(let text): state.samples.violations += text.split(separator: "\n").map(String.init)
                    case .failure(let error): state.samples.violations.append("sample failed: \(error)")
                    }
                }
                Thread.sleep(forTimeInterval: 0.25)
            }
            finished.signal()
        }
    }

    /// Stops polling and returns what the polls saw.
    func stop() -> Samples {
        let first = state.withLock { state in
            defer { state.stopped = true }
            return !state.stopped
        }
        if first { finished.wait() }
        return state.withLock { $0.samples }
    }
}
