import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Logging
import Synchronization
import Testing

@testable import ConvergeEngine

extension ManualClock: EngineClock {}

/// A provisioner whose answers the test scripts, recording every job it gets; an instance in `hanging` is applied
/// until the call is cancelled, which is recorded too.
final class ScriptedProvisioner: DeploymentProvisioner {
    let answers = Mutex<[String: ProvisionOutcome]>([:])
    let hanging = Mutex<Set<String>>([])
    let jobs = Mutex<[ProvisionJob]>([])
    let cancelled = Mutex<[String]>([])

    func provision(_ job: ProvisionJob, events: @escaping @Sendable ([DeploymentEventDraft]) async -> Void) async throws
        -> ProvisionOutcome
    {
        jobs.withLock { $0.append(job) }
        await events([DeploymentEventDraft(kind: .log, message: "applying \(job.deployment.instanceID)")])
        if hanging.withLock({ $0.contains(job.deployment.instanceID) }) {
            do {
                try await Task.sleep(for: .seconds(3600))
            } catch {
                cancelled.withLock { $0.append(job.idempotencyKey) }
                throw error
            }
        }
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

    init(policy: String = "auto", prune: Bool = true, retry: String? = nil, driftCheck: String? = nil) async throws {
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
            configuration: configuration, store: store, clock: clock, makeProvisioner: { _ in provisioner },
            logger: quiet)
        self.retry = retry
        self.driftCheck = driftCheck
        try write(policy: policy, prune: prune, appSize: 1)
    }

    /// The environment's `retry` spec, in flow YAML, or nil.
    let retry: String?
    /// The environment's `driftCheck` spec, in flow YAML, or nil.
    let driftCheck: String?

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }

    /// An environment with a database and an app connected to it; `appSize` nil removes the app.
    func write(policy: String, prune: Bool, appSize: Int?) throws {
        let environment =
            "policy: \(policy), prune: \(prune)" + (retry.map { ", retry: \($0)" } ?? "")
            + (driftCheck.map { ", driftCheck: \($0)" } ?? "")
        var text =
            baseManifests(
                environment: environment, spec: #"{webhook: {url: "http://127.0.0.1:1/x", timeoutSeconds: 100}}"#)
                + """
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

    /// Reconciles `id` with a provisioner that answers 202, claims its deployment and starts applying it.
    func applyAccepted(_ id: String) async throws -> (Deployment, Task<Void, Never>) {
        provisioner.answers.withLock { $0[id] = .accepted }
        #expect(await engine.manifests.load())
        try await engine.reconciler.reconcile(id)
        let deployment = try #require(await engine.dispatcher.claim().first)
        let dispatcher = engine.dispatcher
        return (deployment, Task { await dispatcher.apply(deployment) })
    }

    func history(_ id: String) async throws -> [Deployment] {
        try await store.history(id)
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

    @Test func expiredLease_isTakenOverAndResumedUnderTheSameIdempotencyKey() async throws {
        let fixture = try await EngineFixture()
        #expect(await fixture.engine.manifests.load())
        try await fixture.engine.reconciler.reconcile("p-dev-db")
        // Claimed by a daemon that then died: nothing renews the lease.
        let claimed = try await fixture.store.claimNextDeployments(owner: "dead", leaseDuration: 30, limit: 1)
        #expect(claimed.count == 1)
        #expect(await fixture.engine.dispatcher.takeOverExpired().isEmpty)
        fixture.clock.advance(by: 31)
        let taken = await fixture.engine.dispatcher.takeOverExpired()
        #expect(taken.map(\.id) == claimed.map(\.id))
        for deployment in taken { await fixture.engine.dispatcher.apply(deployment) }
        let deployment = try #require(try await fixture.history("p-dev-db").first)
        #expect(deployment.status == .completed)
        let jobs = fixture.provisioner.jobs.withLock { $0 }
        #expect(jobs.map(\.idempotencyKey) == ["\(deployment.id)/1"])
        // The provisioner's timeout counts from the first start: 100 s, of which 31 are gone.
        #expect(jobs.first?.timeLimit == 69)
    }

    @Test func expiredLease_pastTheProvisionerTimeoutFromTheFirstStart_fails() async throws {
        let fixture = try await EngineFixture()
        #expect(await fixture.engine.manifests.load())
        try await fixture.engine.reconciler.reconcile("p-dev-db")
        _ = try await fixture.store.claimNextDeployments(owner: "dead", leaseDuration: 30, limit: 1)
        fixture.clock.advance(by: 101)
        for deployment in await fixture.engine.dispatcher.takeOverExpired() {
            await fixture.engine.dispatcher.apply(deployment)
        }
        let deployment = try #require(try await fixture.history("p-dev-db").first)
        #expect(deployment.status == .failed)
        #expect(
            deployment.error?.hasPrefix("timed out: no verdict from the provisioner within its timeout of 100s") == true
        )
        #expect(fixture.provisioner.jobs.withLock { $0.isEmpty })
    }

    @Test func takenOverLease_cancelsTheFormerHoldersCall_andItRecordsNothing() async throws {
        let fixture = try await EngineFixture()
        fixture.provisioner.hanging.withLock { _ = $0.insert("p-dev-db") }
        #expect(await fixture.engine.manifests.load())
        try await fixture.engine.reconciler.reconcile("p-dev-db")
        let claimed = await fixture.engine.dispatcher.claim()
        let deployment = try #require(claimed.first)
        let dispatcher = fixture.engine.dispatcher
        let apply = Task { await dispatcher.apply(deployment) }
        try await eventually("the provisioner was called") { fixture.provisioner.jobs.withLock { $0.count } == 1 }
        // Another daemon, whose clock says the lease expired, takes it over.
        let clock = fixture.clock
        let other = try SQLiteStore(
            path: fixture.directory.appendingPathComponent("c.sqlite").path, clock: { clock.now + 40 },
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        #expect(
            try await other.takeOverExpiredLeases(owner: "other", leaseDuration: 30, limit: 5, excluding: []).count == 1
        )
        fixture.clock.advance(by: 10)
        await apply.value
        #expect(fixture.provisioner.cancelled.withLock { $0 } == ["\(deployment.id)/1"])
        let after = try await fixture.store.deployment(deployment.id)
        #expect(after.status == .running)
        #expect(after.lease?.owner == "other" && after.lease?.epoch == 2)
        #expect(fixture.engine.dispatcher.running == 0)
    }

    @Test func acceptedCall_keepsItsLeaseUntilACallbackEndsIt() async throws {
        let fixture = try await EngineFixture()
        let (deployment, apply) = try await fixture.applyAccepted("p-dev-db")
        try await eventually("the call was accepted") {
            try await fixture.store.events(of: deployment.id, after: nil, limit: 50).items.contains {
                $0.message.hasPrefix("accepted")
            }
        }
        // Longer than the lease: the dispatcher renews it while the provisioner works.
        for _ in 0..<4 {
            try await eventually("the heartbeat waits for the clock") { fixture.clock.sleepers > 0 }
            fixture.clock.advance(by: 10)
            try await eventually("the lease was renewed") {
                try await fixture.store.deployment(deployment.id).lease?.expiresAt == fixture.clock.now + 30
            }
        }
        #expect(await fixture.engine.dispatcher.takeOverExpired().isEmpty)
        let token = CallbackToken(key: try await fixture.store.secret(named: "callback-token-key"))
            .token(deploymentID: deployment.id, attempt: 1)
        try await fixture.engine.callbacks.handle(
            CallbackReport(json: ["type": "completed", "attempt": 1, "outputs": ["endpoint": "db:1"]]),
            deploymentID: deployment.id, token: token)
        await apply.value
        #expect(try await fixture.store.deployment(deployment.id).status == .completed)
        #expect(fixture.engine.dispatcher.running == 0)
    }

    @Test func acceptedCall_withoutAVerdictFailsAtTheProvisionerTimeout() async throws {
        let fixture = try await EngineFixture()
        let (deployment, apply) = try await fixture.applyAccepted("p-dev-db")
        // 100 s of provisioner timeout, in beats of a third of the lease.
        for _ in 0..<10 {
            try await eventually("the heartbeat waits for the clock") { fixture.clock.sleepers > 0 }
            #expect(try await fixture.store.deployment(deployment.id).status == .running)
            fixture.clock.advance(by: 10)
        }
        await apply.value
        let failed = try await fixture.store.deployment(deployment.id)
        #expect(failed.status == .failed)
        #expect(failed.error?.hasPrefix("timed out") == true)
    }

    @Test func retryPolicy_retriesAFailedDeploymentWithItsSnapshotAfterTheBackoff_upToTheLimit() async throws {
        let fixture = try await EngineFixture(retry: "{limit: 2, backoff: 10s}")
        fixture.provisioner.answers.withLock { $0["p-dev-db"] = .failed("quota exceeded") }
        try await fixture.step()
        #expect(try await fixture.history("p-dev-db").map(\.status) == [.failed])
        // Not before the backoff: the reconcile asks to look again when it ends.
        #expect(try await fixture.engine.reconciler.reconcile("p-dev-db") == 10)
        #expect(try await fixture.condition("p-dev-db", .progressing)?.reason == "RetryScheduled")
        fixture.clock.advance(by: 10)
        try await fixture.step()
        var history = try await fixture.history("p-dev-db")
        #expect(history.map(\.status) == [.failed, .failed])
        #expect(history[0].retryOf == history[1].id)
        #expect(history[0].snapshot == history[1].snapshot.withMetadata(deploymentID: history[0].id))
        // The second retry waits twice as long.
        fixture.clock.advance(by: 10)
        try await fixture.step()
        #expect(try await fixture.history("p-dev-db").count == 2)
        fixture.clock.advance(by: 10)
        fixture.provisioner.answers.withLock { $0["p-dev-db"] = nil }
        try await fixture.step()
        history = try await fixture.history("p-dev-db")
        #expect(history.map(\.status) == [.completed, .failed, .failed])
        #expect(history[0].retryOf == history[1].id)
    }

    @Test func retryPolicy_stopsAtItsLimit_andNoPolicyMeansNoRetry() async throws {
        for retry in ["{limit: 1, backoff: 1s}", nil] {
            let fixture = try await EngineFixture(retry: retry)
            fixture.provisioner.answers.withLock { $0["p-dev-db"] = .failed("quota exceeded") }
            for _ in 0..<4 {
                try await fixture.step()
                fixture.clock.advance(by: 5)
            }
            #expect(try await fixture.history("p-dev-db").count == (retry == nil ? 1 : 2))
            #expect(try await fixture.condition("p-dev-db", .failed)?.message == "quota exceeded")
        }
    }

    @Test func failedDecommission_isNotRecreatedInALoop() async throws {
        let fixture = try await EngineFixture()
        try await fixture.step()
        try await fixture.step()
        fixture.provisioner.answers.withLock { $0["p-dev-app"] = .failed("still in use") }
        try fixture.write(policy: "auto", prune: true, appSize: nil)
        for _ in 0..<3 { try await fixture.step() }
        let app = try await fixture.history("p-dev-app")
        #expect(app.map(\.action) == [.decommission, .provision])
        #expect(app.first?.status == .failed)
    }
}

extension DeploymentSnapshot {
    /// The snapshot with the deployment id its store gave it in the metadata.
    func withMetadata(deploymentID: String) -> DeploymentSnapshot {
        var snapshot = self
        snapshot.metadata = metadata.merged(with: ["deploymentId": .string(deploymentID)])
        return snapshot
    }
}
