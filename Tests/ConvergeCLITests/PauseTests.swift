import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

/// Issue 13: a daemon paused (SIGSTOP) for longer than its lease while its calls are in flight never takes over its
/// own leases, so it never sends a second call for an instance beside the first one.
///
/// The real binary and a `RecordingProvisioner` that records when each call arrived and when it was answered.
@Suite(.serialized, .timeLimit(.minutes(3))) struct PauseTests {
    @Test func pauseLongerThanTheLease_tenRounds_neverTwoCallsOfOneInstanceAtOnce() async throws {
        let provisioner = try await RecordingProvisioner.start(delay: .fixed(.seconds(3)))
        defer { Task { await provisioner.stop() } }
        let names = (0..<12).map { "i\($0)" }
        let ids = names.map { "p-dev-\($0)" }
        func files(round: Int) -> [String: String] {
            repository(
                url: provisioner.url, timeoutSeconds: 60,
                instances: Dictionary(uniqueKeysWithValues: names.map { ($0, ["size": .int(round)] as Value) }))
        }
        let daemon = try DaemonProcess(
            files: files(round: 0), arguments: ["--lease-seconds", "2", "--max-concurrent-deployments", "32"])
        let scenario = FaultScenario(daemon: daemon, provisioner: provisioner, instances: ids, onlyUnfinished: true)
        try await scenario.run { scenario in
            try await scenario.start()
            let rounds = 10
            var spanned = 0
            for round in 0..<rounds {
                if round > 0 {
                    try daemon.write(files(round: round))
                    scenario.expect(try await daemon.sync() == 202, "the daemon did not take round \(round)'s sync")
                }
                let started = ids.count * (round + 1)
                try await scenario.waitUntil("round \(round): every instance's call is in flight") {
                    await provisioner.applies.count >= started
                }
                daemon.suspend()
                let stoppedAt = ContinuousClock.now
                // Stopped until every lease of the round has expired: on resuming, its takeover scan finds them all.
                try await scenario.waitUntil("round \(round): every lease expired while the daemon is stopped") {
                    let running = try await scenario.store().listDeployments(
                        DeploymentFilter(statuses: [.running]), after: nil, limit: 100
                    ).items
                    return running.count == ids.count && running.allSatisfy { ($0.lease?.expiresAt ?? .now) < Date() }
                }
                daemon.resume()
                let resumedAt = ContinuousClock.now
                try await scenario.waitUntil("round \(round): every deployment ended", timeout: .seconds(60)) {
                    let counts = try await scenario.store().deploymentCounts()
                    return counts[.completed, default: 0] + counts[.failed, default: 0] == started
                }
                spanned += await provisioner.applies.suffix(ids.count).filter {
                    $0.startedAt < stoppedAt && ($0.endedAt ?? .now) > resumedAt
                }.count
            }

            scenario.expectNone(await provisioner.overlappingCalls, "calls of one instance in flight at once")
            let counts = try await scenario.store().deploymentCounts().filter { $0.value > 0 }
            scenario.expect(
                counts == [.completed: ids.count * rounds],
                "deployments by status: \(counts.map { "\($0.key): \($0.value)" })")
            let requests = await provisioner.requests
            scenario.expect(
                requests.count == ids.count * rounds,
                "\(requests.count) calls for \(ids.count * rounds) deployments: the daemon called some twice")
            // Proves the scenario: the calls were in flight during the whole of each pause.
            scenario.expect(
                spanned == ids.count * rounds, "only \(spanned) calls spanned a pause, not \(ids.count * rounds)")
            try await daemon.stop()
        }
    }
}
