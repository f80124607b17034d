import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

/// Issue 6: a daemon that goes away (killed, stopped, restarted) while a provisioner works loses nothing, never
/// applies a deployment twice, never runs two calls of one instance at once, and one database has one daemon.
///
/// The real binary, a temporary SQLite file, and a `RecordingProvisioner` in the test process, which outlives every
/// daemon restart and applies each idempotency key at most once. A failing test prints the provisioner's journal,
/// the deployments and the daemon's log tail; so does every test when `CONVERGE_FAULT_EVIDENCE` is set.
@Suite(.serialized, .timeLimit(.minutes(3))) struct FaultTests {
    @Test func restartAfterLeaseExpired_resumesAndCompletes() async throws {
        let provisioner = try await RecordingProvisioner.start(delay: .fixed(.seconds(3)))
        defer { Task { await provisioner.stop() } }
        let daemon = try DaemonProcess(
            files: repository(
                url: provisioner.url, timeoutSeconds: 30, instances: ["a": [:], "b": [:]], connections: ["b": "a"]),
            arguments: ["--lease-seconds", "2"])
        let scenario = FaultScenario(daemon: daemon, provisioner: provisioner, instances: ["p-dev-a", "p-dev-b"])
        try await scenario.run { scenario in
            try await scenario.start()
            try await scenario.waitUntil("a is RUNNING and its apply started") {
                let running = try await scenario.latest("p-dev-a")?.status == .running
                let applying = await provisioner.applies.contains { $0.instance == "p-dev-a" }
                return running && applying
            }
            let killed = try await daemon.stop(signal: SIGKILL)
            let killedAt = ContinuousClock.now
            scenario.expect(killed == SIGKILL, "the daemon was not killed")
            // The scenario itself: away until the 2-second lease expired, so the restarted daemon finds it expired.
            try await eventually("a's lease expired") { try await scenario.store().leasesExpired(of: ["p-dev-a"]) }
            try await daemon.start()
            try await scenario.waitUntil("a and b end", timeout: .seconds(60)) {
                let a = try await scenario.latest("p-dev-a")?.status
                let b = try await scenario.latest("p-dev-b")?.status
                return a == .failed || (a == .completed && b?.isTerminal == true)
            }

            let a = try #require(try await scenario.latest("p-dev-a"))
            scenario.expect(a.status == .completed, "a ended \(a.status.rawValue): \(a.error ?? "no error")")
            let deploymentsOfA = try await scenario.history("p-dev-a").count
            scenario.expect(deploymentsOfA == 1, "a has \(deploymentsOfA) deployments, not one")
            let requests = await provisioner.requests.filter { $0.instance == "p-dev-a" }
            let applies = await provisioner.applies.filter { $0.instance == "p-dev-a" }
            scenario.expect(requests.count >= 2, "a was not resumed with a second request")
            scenario.expect(
                requests.allSatisfy { $0.key == "\(a.id)/\(a.attempt)" },
                "a was sent under another key than \(a.id)/\(a.attempt): \(requests.map(\.key))")
            scenario.expect(
                Set(requests.map(\.body)).count == 1, "the resumed request's body differs from the first one's")
            scenario.expect(requests.first?.kind == .apply, "the first request of a did not start its apply")
            scenario.expect(
                requests.dropFirst().allSatisfy { [.wait, .replay].contains($0.kind) },
                "a later request of a was not a replay or a wait: \(requests.map(\.kind))")
            scenario.expect(applies.count == 1, "a was applied \(applies.count) times")
            if let apply = applies.first {
                // Proves the scenario: the daemon died while the apply ran, and the resumed call came after.
                scenario.expect(
                    apply.startedAt < killedAt && (apply.endedAt ?? .now) > killedAt,
                    "the daemon was not killed while a was being applied")
            }
            scenario.expect(
                requests.dropFirst().allSatisfy { $0.receivedAt > killedAt }, "a request of a came before the kill")
            let outputs = try await scenario.store().instance("p-dev-a").outputs
            let expected: Value = ["out": ["id": "p-dev-a-out", "key": .string("\(a.id)/\(a.attempt)")]]
            scenario.expect(outputs == expected, "a's outputs \(String(describing: outputs)) are not the provisioner's")

            let b = try await scenario.latest("p-dev-b")
            scenario.expect(b?.status == .completed, "b, downstream of a, ended \(b?.status.rawValue ?? "undeployed")")
            let bRequests = await provisioner.requests.filter { $0.instance == "p-dev-b" }
            let aEnded = applies.first?.endedAt ?? .now
            scenario.expect(bRequests.allSatisfy { $0.receivedAt >= aEnded }, "b was sent before a's apply ended")
            try await daemon.stop()
        }
    }

    @Test func sigstopLongerThanLease_withSlowProvisioner_noSecondCall() async throws {
        let provisioner = try await RecordingProvisioner.start(delay: .fixed(.seconds(5)))
        defer { Task { await provisioner.stop() } }
        let daemon = try DaemonProcess(
            files: repository(url: provisioner.url, timeoutSeconds: 30, instances: ["a": [:]]),
            arguments: ["--lease-seconds", "2"])
        let scenario = FaultScenario(daemon: daemon, provisioner: provisioner, instances: ["p-dev-a"])
        try await scenario.run { scenario in
            try await scenario.start()
            try await scenario.waitUntil("a is RUNNING and its apply started") {
                let running = try await scenario.latest("p-dev-a")?.status == .running
                let applying = await provisioner.applies.contains { $0.instance == "p-dev-a" }
                return running && applying
            }
            daemon.suspend()
            let stoppedAt = ContinuousClock.now
            // The scenario itself: frozen until the 2-second lease expired while the call is in flight.
            try await scenario.waitUntil("a's lease expired") {
                try await scenario.store().leasesExpired(of: ["p-dev-a"])
            }
            daemon.resume()
            let resumedAt = ContinuousClock.now
            try await scenario.waitUntil("a ends", timeout: .seconds(60)) {
                try await scenario.latest("p-dev-a")?.status.isTerminal == true
            }

            let a = try #require(try await scenario.latest("p-dev-a"))
            scenario.expect(a.status == .completed, "a ended \(a.status.rawValue): \(a.error ?? "no error")")
            let deploymentsOfA = try await scenario.history("p-dev-a").count
            scenario.expect(deploymentsOfA == 1, "a has \(deploymentsOfA) deployments, not one")
            let requests = await provisioner.requests.filter { $0.instance == "p-dev-a" }
            let applies = await provisioner.applies.filter { $0.instance == "p-dev-a" }
            scenario.expect(
                requests.count == 1, "the daemon called the provisioner \(requests.count) times for a, not once")
            scenario.expect(requests.first?.key == "\(a.id)/\(a.attempt)", "a was sent under another key")
            scenario.expect(applies.count == 1, "a was applied \(applies.count) times")
            if let apply = applies.first {
                // Proves the scenario: the call was in flight during the whole suspension.
                scenario.expect(
                    apply.startedAt < stoppedAt && (apply.endedAt ?? .now) > resumedAt,
                    "the apply of a did not span the suspension")
            }
            scenario.expect(daemon.isRunning, "the daemon exited")
            try await daemon.stop()
        }
    }

    @Test func killNineDuringBurst_fiveTimes_losesNothing() async throws {
        let seed =
            ProcessInfo.processInfo.environment["CONVERGE_FAULT_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 1...UInt64(UInt32.max))
        print("killNineDuringBurst_fiveTimes_losesNothing: seed \(seed) (CONVERGE_FAULT_SEED=\(seed) replays it)")
        var random = SeededGenerator(seed: seed)
        let provisioner = try await RecordingProvisioner.start(delay: .random(milliseconds: 50...400, seed: seed))
        defer { Task { await provisioner.stop() } }
        let names = (0..<200).map { "i\($0)" }
        let ids = names.map { "p-dev-\($0)" }
        let daemon = try DaemonProcess(
            files: repository(
                url: provisioner.url, timeoutSeconds: 30,
                instances: Dictionary(uniqueKeysWithValues: names.map { ($0, [:] as Value) })),
            arguments: ["--lease-seconds", "2", "--max-concurrent-deployments", "8"])
        let scenario = FaultScenario(daemon: daemon, provisioner: provisioner, instances: ids, onlyUnfinished: true)
        try await scenario.run { scenario in
            try await scenario.start()
            // Some restarts come back before the 2-second lease expired, some after.
            let longAway = [true, false, true, false, true].shuffled(using: &random)
            var runningAtKills: [Int] = []
            for round in 0..<5 {
                let target = await provisioner.applies.count + Int.random(in: 5...25, using: &random)
                try await scenario.waitUntil("\(target) applies have started", timeout: .seconds(60)) {
                    await provisioner.applies.count >= target
                }
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...300, using: &random)))
                let killed = try await daemon.stop(signal: SIGKILL)
                scenario.expect(killed == SIGKILL, "the daemon was not killed")
                let running = try await scenario.store().deploymentCounts()[.running] ?? 0
                runningAtKills.append(running)
                let away =
                    longAway[round]
                    ? Double.random(in: 2.5...4, using: &random) : Double.random(in: 0...1.5, using: &random)
                print(
                    "kill \(round + 1): \(running) RUNNING, \(await provisioner.applies.count) applies started; "
                        + "restarting after \(String(format: "%.2f", away)) s")
                // The scenario itself: the daemon stays away for this long.
                try await Task.sleep(for: .milliseconds(Int(away * 1000)))
                try await daemon.start()
            }
            scenario.expect(
                runningAtKills.reduce(0, +) > 0, "nothing was RUNNING at any kill: the test proves nothing")
            try await scenario.waitUntil("every instance is provisioned", timeout: .seconds(90)) {
                let counts = try await scenario.store().deploymentCounts()
                return counts[.completed, default: 0] == ids.count || counts[.failed, default: 0] > 0
            }

            let counts = try await scenario.store().deploymentCounts().filter { $0.value > 0 }
            scenario.expect(
                counts == [.completed: ids.count], "deployments by status: \(counts.map { "\($0.key): \($0.value)" })")
            let requests = await provisioner.requests
            let applies = await provisioner.applies
            let appliesByKey = Dictionary(grouping: applies, by: \.key)
            let requestsByKey = Dictionary(grouping: requests, by: \.key)
            let requestsByDeployment = Dictionary(grouping: requests, by: \.deploymentID)
            var notOneDeployment: [String] = []
            var notCompleted: [String] = []
            var otherKeys: [String] = []
            var notAppliedOnce: [String] = []
            var notReplays: [String] = []
            var overlapping: [String] = []
            for id in ids {
                let history = try await scenario.history(id)
                if history.count != 1 { notOneDeployment.append("\(id): \(history.count)") }
                for deployment in history where deployment.status != .completed {
                    notCompleted.append("\(id) \(deployment.status.rawValue) \(deployment.error ?? "")")
                }
                for deployment in history where deployment.status == .completed {
                    let key = "\(deployment.id)/\(deployment.attempt)"
                    let keysSent = Set((requestsByDeployment[deployment.id] ?? []).map(\.key))
                    if keysSent != [key] { otherKeys.append("\(id): \(keysSent.sorted()), recorded \(key)") }
                    let applied = appliesByKey[key] ?? []
                    if applied.count != 1 || applied[0].endedAt == nil {
                        notAppliedOnce.append("\(key): \(applied.count) applies")
                    }
                    let kinds = (requestsByKey[key] ?? []).map(\.kind)
                    if kinds.first != .apply || !kinds.dropFirst().allSatisfy({ $0 == .wait || $0 == .replay }) {
                        notReplays.append("\(key): \(kinds.map(\.rawValue))")
                    }
                }
                // Never two applies of one instance at once.
                let ofInstance = applies.filter { $0.instance == id }.sorted { $0.startedAt < $1.startedAt }
                for (earlier, later) in zip(ofInstance, ofInstance.dropFirst())
                where earlier.endedAt.map({ $0 > later.startedAt }) ?? true {
                    overlapping.append("\(id): \(earlier.key) and \(later.key)")
                }
            }
            scenario.expectNone(notOneDeployment, "instances without exactly one deployment")
            scenario.expectNone(notCompleted, "deployments not COMPLETED")
            scenario.expectNone(otherKeys, "deployments sent under another key than their recorded attempt's")
            scenario.expectNone(notAppliedOnce, "keys of completed deployments not applied exactly once")
            scenario.expectNone(notReplays, "keys whose requests were not one apply, then replays or waits")
            scenario.expectNone(overlapping, "instances with two applies at once")
            scenario.expect(
                requests.contains { $0.kind == .wait || $0.kind == .replay },
                "no deployment was resumed after a kill: the test proves nothing")
            print(
                "killNineDuringBurst_fiveTimes_losesNothing: \(requests.count) requests, \(applies.count) applies, "
                    + "\(requests.filter { $0.kind != .apply }.count) replays or waits")
            try await daemon.stop()
        }
    }

    @Test func secondDaemonOnSameDatabase_refusesNamingHolder() async throws {
        let provisioner = try await RecordingProvisioner.start(delay: .fixed(.zero))
        defer { Task { await provisioner.stop() } }
        let daemon = try DaemonProcess(
            files: repository(url: provisioner.url, timeoutSeconds: 30, instances: ["a": [:]]))
        let scenario = FaultScenario(daemon: daemon, provisioner: provisioner, instances: ["p-dev-a"])
        try await scenario.run { scenario in
            try await scenario.start()
            let holder = try #require(daemon.pid)
            let second = try await daemon.runSecondDaemon(timeout: .seconds(10))
            scenario.expect(second.status != nil, "the second daemon was still running after 10 s")
            scenario.expect(second.status != 0, "the second daemon exited 0")
            let stderr = second.stderr
            scenario.note("second daemon: exit status \(second.status.map(String.init) ?? "none"), stderr:\n\(stderr)")
            let refusal = stderr.split(separator: "\n").map(String.init).first { $0.lowercased().contains("in use") }
            scenario.expect(refusal != nil, "stderr does not say the database is in use (it is in the evidence)")
            if let refusal {
                scenario.expect(
                    Self.containsWord("\(holder)", in: refusal), "the refusal does not name the holder's pid \(holder)")
                let hosts = [Self.hostname(), ProcessInfo.processInfo.hostName].filter { !$0.isEmpty }
                scenario.expect(
                    hosts.contains { Self.containsWord($0, in: refusal) },
                    "the refusal does not name the holder's host (\(hosts.joined(separator: " or ")))")
            }
            scenario.expect(daemon.isRunning, "the first daemon exited")
            let health = try? await daemon.get("/healthz").status
            scenario.expect(health == 200, "the first daemon's /healthz does not answer")
            try await daemon.stop()
        }
    }

    /// Whether `word` occurs in `text` with no letter, digit or `-` right before or after it.
    static func containsWord(_ word: String, in text: String) -> Bool {
        func isWordCharacter(_ character: Character?) -> Bool {
            character.map { $0.isLetter || $0.isNumber || $0 == "-" } ?? false
        }
        var rest = text[...]
        while let range = rest.range(of: word) {
            let before = range.lowerBound > text.startIndex ? text[text.index(before: range.lowerBound)] : nil
            let after = range.upperBound < text.endIndex ? text[range.upperBound] : nil
            if !isWordCharacter(before) && !isWordCharacter(after) { return true }
            rest = text[range.upperBound...]
        }
        return false
    }

    static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
