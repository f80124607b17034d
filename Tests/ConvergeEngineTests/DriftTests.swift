import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

@testable import ConvergeEngine

/// Drift checks: an environment's `driftCheck` schedule queues a PLAN of each provisioned instance's recorded
/// configuration, and the plan's result says whether the instance is `Drifted`.
@Suite struct DriftTests {
    /// A fixture whose two instances are PROVISIONED, with `driftCheck` on its environment.
    func provisioned(driftCheck: String? = "{every: 1h}") async throws -> EngineFixture {
        let fixture = try await EngineFixture(driftCheck: driftCheck)
        try await fixture.step()
        try await fixture.step()
        for id in ["p-dev-db", "p-dev-app"] { #expect(try await fixture.store.instance(id).status == .provisioned) }
        return fixture
    }

    func plans(_ fixture: EngineFixture, _ id: String) async throws -> [Deployment] {
        try await fixture.history(id).filter { $0.action == .plan }
    }

    /// Runs one drift check of the environment: the schedule is built, the clock moves one period, the checker queues
    /// its plans; they are dispatched with the provisioner answering `planResult` for `id`, and both instances are
    /// reconciled. Returns the plan of `id`.
    func check(_ fixture: EngineFixture, _ id: String, planResult: Value?) async throws -> Deployment {
        _ = await fixture.engine.driftChecker.checkDue()
        fixture.clock.advance(by: 3600)
        _ = await fixture.engine.driftChecker.checkDue()
        let plan = try #require(try await plans(fixture, id).first)
        #expect(plan.status == .pending)
        fixture.provisioner.answers.withLock { $0[id] = .completed(outputs: [:], planResult: planResult) }
        for deployment in await fixture.engine.dispatcher.claim() { await fixture.engine.dispatcher.apply(deployment) }
        fixture.provisioner.answers.withLock { $0[id] = nil }
        for id in ["p-dev-db", "p-dev-app"] { try await fixture.engine.reconciler.reconcile(id) }
        return try await fixture.store.deployment(plan.id)
    }

    func drifted(_ fixture: EngineFixture) async throws -> [String] {
        try await fixture.store.instances(environment: nil, drifted: true, labels: nil, after: nil, limit: 50).items
            .map(\.id)
    }

    @Test func schedule_queuesOnePlanPerProvisionedInstanceOfTheRecordedSnapshot_andNoSecondWhileOneIsOpen()
        async throws
    {
        let fixture = try await provisioned()
        let checker = fixture.engine.driftChecker
        let run = Task { try await checker.run() }
        defer { run.cancel() }
        try await eventually("the checker sleeps") { fixture.clock.sleepers > 0 }
        // Before the period ends, nothing is planned.
        fixture.clock.advance(by: 1800)
        try await eventually("the checker sleeps again") { fixture.clock.sleepers > 0 }
        #expect(try await plans(fixture, "p-dev-db").isEmpty)

        fixture.clock.advance(by: 1800)
        try await eventually("both instances have a drift plan") {
            let db = try await plans(fixture, "p-dev-db")
            let app = try await plans(fixture, "p-dev-app")
            return !db.isEmpty && !app.isEmpty
        }
        for id in ["p-dev-db", "p-dev-app"] {
            let record = try await fixture.store.instance(id)
            let plans = try await plans(fixture, id)
            #expect(plans.count == 1)
            let plan = try #require(plans.first)
            #expect(plan.status == .pending)
            #expect(plan.createdBy == "converge")
            #expect(plan.snapshot.params == record.params)
            #expect(plan.snapshot.connectionParams == record.connectionParams)
            #expect(plan.snapshot.version == record.version)
            #expect(plan.snapshot.metadata["driftCheck"] == true)
            #expect(plan.snapshot.metadata["actor"] == "converge")
            // A plan never moves the instance.
            #expect(record.status == .provisioned)
        }
        let app = try #require(try await plans(fixture, "p-dev-app").first)
        #expect(app.snapshot.connectionParams == ["database": ["host": "p-dev-db"]])

        // Still open a period later: no second plan.
        try await eventually("the checker sleeps again") { fixture.clock.sleepers > 0 }
        fixture.clock.advance(by: 3600)
        try await eventually("the checker sleeps again") { fixture.clock.sleepers > 0 }
        #expect(try await plans(fixture, "p-dev-db").count == 1)
        #expect(try await plans(fixture, "p-dev-app").count == 1)
    }

    @Test func planWithChanges_setsDrifted_oneWithoutClearsIt_andALaterProvisionClearsIt() async throws {
        let fixture = try await provisioned()
        let first = try await check(fixture, "p-dev-db", planResult: ["changes": ["instance_class", "storage_gb"]])
        #expect(first.status == .completed)
        var condition = try #require(try await fixture.condition("p-dev-db", .drifted))
        #expect(condition.status == true)
        #expect(condition.reason == "Drifted")
        #expect(condition.message.contains(first.id))
        #expect(condition.message.contains("2 changes: instance_class, storage_gb"))
        #expect(try await fixture.condition("p-dev-app", .drifted)?.status == false)
        #expect(try await drifted(fixture) == ["p-dev-db"])
        // The drift plan is no change: nothing is deployed for it, and the instance is otherwise as it was.
        #expect(try await fixture.condition("p-dev-db", .ready)?.status == true)
        #expect(try await fixture.condition("p-dev-db", .progressing)?.reason == "UpToDate")

        _ = try await check(fixture, "p-dev-db", planResult: ["changes": []])
        condition = try #require(try await fixture.condition("p-dev-db", .drifted))
        #expect(condition.status == false)
        #expect(condition.reason == "NoDrift")
        #expect(try await drifted(fixture).isEmpty)

        _ = try await check(fixture, "p-dev-db", planResult: ["changed": true])
        #expect(try await fixture.condition("p-dev-db", .drifted)?.status == true)
        #expect(try await drifted(fixture) == ["p-dev-db"])

        // Someone re-applies the instance: once that provision completed, the drift is gone.
        let deploy = try await fixture.engine.reconciler.requestDeployment(
            of: "p-dev-db", action: .provision, mode: nil, actor: "alice")
        #expect(deploy.created)
        try await fixture.engine.reconciler.reconcile("p-dev-db")
        #expect(try await fixture.condition("p-dev-db", .drifted)?.status == true, "only a completed provision clears")
        for deployment in await fixture.engine.dispatcher.claim() { await fixture.engine.dispatcher.apply(deployment) }
        try await fixture.engine.reconciler.reconcile("p-dev-db")
        #expect(try await fixture.store.deployment(deploy.deployment.id).status == .completed)
        #expect(try await fixture.condition("p-dev-db", .drifted)?.status == false)
        #expect(try await drifted(fixture).isEmpty)
        #expect(try await fixture.store.driftedInstanceCount() == 0)
    }

    @Test func orphanedInstances_areNeverChecked() async throws {
        let fixture = try await provisioned()
        _ = try await fixture.store.orphanInstance("p-dev-app", actor: "alice")
        _ = try await check(fixture, "p-dev-db", planResult: nil)
        #expect(try await plans(fixture, "p-dev-app").isEmpty)
        #expect(try await plans(fixture, "p-dev-db").count == 1)
        #expect(try await fixture.condition("p-dev-app", .drifted)?.status == false)
    }

    @Test func instancesNotProvisioned_areNotChecked() async throws {
        let fixture = try await EngineFixture(driftCheck: "{every: 1h}")
        // The database is provisioned; the app, blocked until then, is not yet.
        try await fixture.step()
        _ = await fixture.engine.driftChecker.checkDue()
        fixture.clock.advance(by: 3600)
        _ = await fixture.engine.driftChecker.checkDue()
        #expect(try await plans(fixture, "p-dev-db").count == 1)
        #expect(try await fixture.history("p-dev-app").isEmpty)
    }

    @Test func environmentWithoutDriftCheck_getsNoPlans() async throws {
        let fixture = try await provisioned(driftCheck: nil)
        #expect(await fixture.engine.driftChecker.checkDue() == fixture.clock.now.addingTimeInterval(10))
        fixture.clock.advance(by: 86_400 * 30)
        _ = await fixture.engine.driftChecker.checkDue()
        #expect(try await plans(fixture, "p-dev-db").isEmpty)
        #expect(try await plans(fixture, "p-dev-app").isEmpty)
        #expect(try await fixture.condition("p-dev-db", .drifted)?.reason == "NoDrift")
    }

    @Test func store_refusesADriftPlanOfAnotherConfiguration_orWhileAChangeIsOpen() async throws {
        let fixture = try await provisioned()
        let record = try await fixture.store.instance("p-dev-db")
        func refusal(_ snapshot: DeploymentSnapshot) async -> ConvergeError.Code? {
            do {
                _ = try await fixture.store.createDeployment(
                    DeploymentRequest(instanceID: "p-dev-db", snapshot: snapshot, mode: .direct, actor: "converge"))
                return nil
            } catch {
                return (error as? ConvergeError)?.code
            }
        }
        var stale = DriftChecker.snapshot(of: record, declared: nil, provisioner: nil, commit: nil)
        stale.params = ["size": 9]
        #expect(await refusal(stale) == .failedPrecondition)
        // A change queued between the checker's read and its insert.
        _ = try await fixture.engine.reconciler.requestDeployment(
            of: "p-dev-db", action: .provision, mode: nil, actor: "alice")
        #expect(
            await refusal(DriftChecker.snapshot(of: record, declared: nil, provisioner: nil, commit: nil))
                == .failedPrecondition)
        #expect(try await plans(fixture, "p-dev-db").isEmpty)
    }

    @Test func schedule_followsTheManifests_keepingDueTimesUntilThePeriodChanges() {
        let start = Date(timeIntervalSince1970: 0)
        var schedule = DriftSchedule()
        #expect(schedule.nextDue == nil)
        schedule.follow(version: 1, periods: ["a": 3600, "b": 60], now: start)
        #expect(schedule.nextDue == start + 60)
        #expect(schedule.takeDue(now: start + 59).isEmpty)
        #expect(schedule.takeDue(now: start + 60) == ["b"])
        #expect(schedule.nextDue == start + 120)
        // A reload that changed nothing for the schedule keeps it; a new period restarts one environment's.
        schedule.follow(version: 2, periods: ["a": 3600, "b": 60], now: start + 90)
        #expect(schedule.entries["b"]?.due == start + 120)
        schedule.follow(version: 3, periods: ["a": 600], now: start + 100)
        #expect(schedule.entries.keys.sorted() == ["a"])
        #expect(schedule.entries["a"]?.due == start + 700)
        // Long late (the process was suspended): next due one period from now, not a burst of catch-up checks.
        #expect(schedule.takeDue(now: start + 5000) == ["a"])
        #expect(schedule.entries["a"]?.due == start + 5600)
    }

    @Test func report_readsChangesArraysObjectsAndFlags() {
        let cases: [(Value?, Bool, [String])] = [
            (nil, false, []), (["changes": []], false, []), (["changes": [:]], false, []),
            (["changes": ["size", 3]], true, ["size", "3"]), (["changes": ["b": 1, "a": 2]], true, ["a", "b"]),
            (["changed": true], true, []), (["drifted": true], true, []), (["changed": false], false, []),
            (["summary": "2 to change"], false, []),
        ]
        for (result, drifted, changes) in cases {
            #expect(DriftReport(planResult: result) == DriftReport(drifted: drifted, changes: changes), "\(result)")
        }
        let many = DriftReport(planResult: ["changes": .array((1...12).map { .string("p\($0)") })])
        #expect(many.summary == "p1, p2, p3, p4, p5, p6, p7, p8, p9, p10 and 2 more")
    }
}
