import ConvergeCore
import ConvergeStore
import Foundation
import Logging
import Synchronization
import Testing

@testable import ConvergeEngine

/// A clock that moves only when the test moves it; sleepers wake when it passes their deadline.
final class ManualClock: EngineClock {
    private let state = Mutex<(now: Date, sleepers: [(Date, CheckedContinuation<Void, any Error>)])>(
        (Date(timeIntervalSince1970: 1_800_000_000), []))

    var now: Date { state.withLock { $0.now } }

    func sleep(until deadline: Date) async throws {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> Bool in
                if deadline <= state.now { return true }
                state.sleepers.append((deadline, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    func advance(by seconds: TimeInterval) {
        let due = state.withLock { state in
            state.now += seconds
            let due = state.sleepers.filter { $0.0 <= state.now }
            state.sleepers.removeAll { $0.0 <= state.now }
            return due.map(\.1)
        }
        for continuation in due { continuation.resume() }
    }
}

/// A provisioner whose answers the test scripts, recording every job it gets.
final class ScriptedProvisioner: DeploymentProvisioner {
    let answers = Mutex<[String: ProvisionOutcome]>([:])
    let jobs = Mutex<[ProvisionJob]>([])

    func provision(_ job: ProvisionJob, events: @escaping @Sendable ([DeploymentEventDraft]) async -> Void) async throws
        -> ProvisionOutcome
    {
        jobs.withLock { $0.append(job) }
        await events([DeploymentEventDraft(kind: .log, message: "applying \(job.deployment.instanceID)")])
        return answers.withLock { $0[job.deployment.instanceID] }
            ?? .completed(outputs: ["endpoint": ["host": .string(job.deployment.instanceID)]], planResult: nil)
    }
}

/// An engine on a temporary SQLite file and manifests directory, driven step by step.
final class EngineFixture {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
        "converge-engine-\(UUID().uuidString)")
    let clock = ManualClock()
    let provisioner = ScriptedProvisioner()
    let store: SQLiteStore
    let engine: Engine

    init(policy: String = "auto", prune: Bool = true, probe: Bool = false) async throws {
        try FileManager.default.createDirectory(
            at: directory.appendingPathComponent("manifests"), withIntermediateDirectories: true)
        let clock = self.clock
        let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        store = try SQLiteStore(
            path: directory.appendingPathComponent("c.sqlite").path, clock: { clock.now }, logger: quiet)
        var configuration = EngineConfiguration(manifests: directory.appendingPathComponent("manifests"))
        configuration.leaseDuration = 30
        configuration.owner = "engine-test"
        configuration.callbackBaseURL = "http://127.0.0.1:1"
        let provisioner = self.provisioner
        engine = try await Engine(
            configuration: configuration, store: store, clock: clock, makeProvisioner: { _ in (provisioner, probe) },
            logger: quiet)
        try write(policy: policy, prune: prune, appSize: 1)
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }

    /// An environment with a database and an app connected to it; `appSize` nil removes the app.
    func write(policy: String, prune: Bool, appSize: Int?) throws {
        var text = """
            apiVersion: converge/v1
            kind: Project
            metadata: {name: p}
            ---
            apiVersion: converge/v1
            kind: Environment
            metadata: {name: dev, project: p}
            spec: {policy: \(policy), prune: \(prune)}
            ---
            apiVersion: converge/v1
            kind: Provisioner
            metadata: {name: hook}
            spec: {webhook: {url: "http://127.0.0.1:1/x"}}
            ---
            apiVersion: converge/v1
            kind: Bundle
            metadata: {name: db}
            spec: {provisioner: hook, artifacts: {endpoint: {type: pg}}}
            ---
            apiVersion: converge/v1
            kind: Bundle
            metadata: {name: app}
            spec: {provisioner: hook, connections: {database: {type: pg}}}
            ---
            apiVersion: converge/v1
            kind: Instance
            metadata: {name: db, project: p, environment: dev}
            spec: {bundle: db, version: 1.0.0}
            """
        if let appSize {
            text += """

                ---
                apiVersion: converge/v1
                kind: Instance
                metadata: {name: app, project: p, environment: dev}
                spec: {bundle: app, version: 2.0.0, params: {size: \(appSize)}, connections: {database: db}}
                """
        }
        try text.write(
            to: directory.appendingPathComponent("manifests/repo.yaml"), atomically: true, encoding: .utf8)
    }

    /// Reconciles every instance once, then dispatches and finishes everything claimable.
    func step() async throws {
        #expect(await engine.manifests.load())
        for id in ["p-dev-db", "p-dev-app"] { try await engine.reconciler.reconcile(id) }
        for deployment in await engine.dispatcher.claim() { await engine.dispatcher.apply(deployment) }
    }

    func history(_ id: String) async throws -> [Deployment] {
        try await store.history(of: id, after: nil, limit: 50).items
    }

    func condition(_ id: String, _ kind: InstanceCondition.Kind) async throws -> InstanceCondition? {
        try await store.instance(id).conditions.first { $0.type == kind }
    }
}

@Suite struct EngineTests {
    @Test func upstreamFirst_thenTheBlockedDownstream_thenNothingMore() async throws {
        let fixture = try await EngineFixture()
        try await fixture.step()
        #expect(try await fixture.history("p-dev-db").map(\.status) == [.completed])
        #expect(try await fixture.history("p-dev-app").isEmpty)
        #expect(
            try await fixture.condition("p-dev-app", .blocked)?.message == "waiting for p-dev-db to produce endpoint")
        #expect(try await fixture.store.instance("p-dev-db").outputs == ["endpoint": ["host": "p-dev-db"]])

        try await fixture.step()
        let app = try #require(try await fixture.history("p-dev-app").first)
        #expect(app.status == .completed)
        #expect(app.snapshot.connectionParams == ["database": ["host": "p-dev-db"]])
        #expect(try await fixture.condition("p-dev-app", .blocked)?.status == false)
        let job = try #require(fixture.provisioner.jobs.withLock { $0.last })
        #expect(job.callback?.url == "http://127.0.0.1:1/v1/deployments/\(app.id)/events")
        #expect(
            try await fixture.store.events(of: app.id, after: nil, limit: 50).items.map(\.message).contains(
                "applying p-dev-app"))

        // Level-triggered and idempotent: more passes over an unchanged repository create nothing.
        try await fixture.step()
        #expect(try await fixture.condition("p-dev-app", .ready)?.status == true)
        #expect(try await fixture.condition("p-dev-app", .progressing)?.reason == "UpToDate")
        #expect(try await fixture.store.instance("p-dev-app").observedGeneration == 1)
        try await fixture.step()
        #expect(try await fixture.history("p-dev-db").count == 1)
        #expect(try await fixture.history("p-dev-app").count == 1)
        #expect(fixture.provisioner.jobs.withLock { $0.count } == 2)
    }

    @Test func review_proposesAndANewerChangeSupersedesTheProposal() async throws {
        let fixture = try await EngineFixture(policy: "review")
        try await fixture.step()
        let proposal = try #require(try await fixture.history("p-dev-db").first)
        #expect(proposal.status == .proposed)
        #expect(proposal.proposedBy == "converge")
        _ = try await fixture.store.approve(proposal.id, approver: "alice")
        try await fixture.step()
        #expect(try await fixture.history("p-dev-db").first?.status == .completed)
        try await fixture.step()
        let first = try #require(try await fixture.history("p-dev-app").first)
        #expect(first.status == .proposed)
        try fixture.write(policy: "review", prune: true, appSize: 2)
        try await fixture.step()
        let app = try await fixture.history("p-dev-app")
        #expect(app.map(\.status) == [.proposed, .aborted])
        #expect(app[1].error == "superseded by a newer change")
        #expect(app[0].snapshot.params == ["size": 2])
    }

    @Test func removedInstance_isDecommissionedWhereTheEnvironmentPrunes() async throws {
        let fixture = try await EngineFixture()
        try await fixture.step()
        try await fixture.step()
        try fixture.write(policy: "auto", prune: true, appSize: nil)
        try await fixture.step()
        let app = try await fixture.history("p-dev-app")
        #expect(app.map(\.action) == [.decommission, .provision])
        #expect(app.first?.status == .completed)
        #expect(try await fixture.store.instance("p-dev-app").status == .decommissioned)
    }

    @Test func failedDeployment_setsFailed_andIsNotRetriedUntilTheDesiredStateChanges() async throws {
        let fixture = try await EngineFixture()
        fixture.provisioner.answers.withLock { $0["p-dev-db"] = .failed("quota exceeded") }
        try await fixture.step()
        try await fixture.step()
        #expect(try await fixture.history("p-dev-db").map(\.status) == [.failed])
        #expect(try await fixture.condition("p-dev-db", .failed)?.message == "quota exceeded")
        #expect(try await fixture.store.instance("p-dev-db").status == .failed)
    }

    @Test func expiredLease_isFailedWithoutAProbe_orResolvedByOne() async throws {
        for probe in [false, true] {
            let fixture = try await EngineFixture(probe: probe)
            #expect(await fixture.engine.manifests.load())
            try await fixture.engine.reconciler.reconcile("p-dev-db")
            // Claimed by a daemon that then died: nothing renews the lease.
            let claimed = try await fixture.store.claimNextDeployments(owner: "dead", leaseDuration: 30, limit: 1)
            #expect(claimed.count == 1)
            #expect(await fixture.engine.leaseMonitor.resolveExpired() == 0)
            fixture.clock.advance(by: 31)
            #expect(await fixture.engine.leaseMonitor.resolveExpired() == 1)
            let deployment = try #require(try await fixture.history("p-dev-db").first)
            if probe {
                #expect(deployment.status == .completed)
                #expect(fixture.provisioner.jobs.withLock { $0.map(\.idempotencyKey) } == ["\(deployment.id)/1"])
            } else {
                #expect(deployment.status == .failed)
                #expect(deployment.error?.hasPrefix("lease expired") == true)
            }
        }
    }
}
