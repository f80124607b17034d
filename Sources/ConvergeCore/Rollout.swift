import Foundation

/// An environment deployed or decommissioned as a whole (DESIGN §6): its instances in waves from the connection
/// graph, a wave starting only once every deployment of the one before completed. The newest rollout of an
/// environment governs it: while a deploy rollout runs (or after it failed) the instances of its later waves wait for
/// it, and after a decommission rollout the environment stays down until the next deploy rollout.
public struct Rollout: Equatable, Sendable {
    public enum Action: String, Sendable, CaseIterable {
        case deploy, decommission
    }

    public enum Status: String, Sendable, CaseIterable {
        case running = "RUNNING"
        case completed = "COMPLETED"
        case failed = "FAILED"
        /// A newer rollout of the same environment took over; its deployments that had not started were aborted.
        case replaced = "REPLACED"

        public var isTerminal: Bool { self != .running }
    }

    /// Where one instance of a rollout stands.
    public enum Outcome: String, Sendable, CaseIterable {
        /// Its wave has not started.
        case waiting
        /// Its deployment is open (proposed, queued or running).
        case deploying
        /// Already as the rollout wants it: nothing was deployed.
        case unchanged
        /// No longer managed (orphaned) or no longer declared: left alone.
        case skipped
        case completed
        case failed
        case aborted
        case rejected

        /// Whether the instance lets the next wave start.
        public var isDone: Bool { [.unchanged, .skipped, .completed].contains(self) }
        /// Whether the instance stops the rollout.
        public var isFailure: Bool { [.failed, .aborted, .rejected].contains(self) }
    }

    public struct Item: Equatable, Sendable {
        public var instance: String
        public var wave: Int
        public var outcome: Outcome
        public var deploymentID: String?
        /// Why it ended as it did, for a failure or a skip.
        public var message: String?

        public init(instance: String, wave: Int, outcome: Outcome = .waiting, deploymentID: String? = nil) {
            self.instance = instance
            self.wave = wave
            self.outcome = outcome
            self.deploymentID = deploymentID
        }
    }

    public var id: String
    public var environment: String
    public var action: Action
    public var status: Status
    /// The wave in progress (or where it stopped), from 0.
    public var wave: Int
    public var items: [Item]
    public var createdBy: String
    public var createdAt: Date
    public var updatedAt: Date
    public var finishedAt: Date?
    /// Why it failed, naming the instance.
    public var error: String?
    /// The rollout that replaced it.
    public var replacedBy: String?
    /// Whether the environment is deleted once it completed (a preview's destroy).
    public var deleteEnvironment: Bool

    public init(
        id: String, environment: String, action: Action, items: [Item], createdBy: String, createdAt: Date,
        deleteEnvironment: Bool = false
    ) {
        self.id = id
        self.environment = environment
        self.action = action
        self.status = .running
        self.wave = 0
        self.items = items
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.updatedAt = createdAt
        self.deleteEnvironment = deleteEnvironment
    }

    /// How many waves it has.
    public var waves: Int { (items.map(\.wave).max() ?? -1) + 1 }

    /// The rollout moved on as far as its current wave's observed outcomes allow, and the instances of the waves it
    /// released: it fails at the wave's first failure (naming the instance), waits while an instance of the wave is
    /// not done, and otherwise completes after the last wave or starts the next one, whose instances it releases.
    /// Items of a released wave are still `waiting`, so it stops there: starting them is the caller's.
    public func settled() -> (rollout: Rollout, released: [String]) {
        guard status == .running else { return (self, []) }
        var next = self
        let wave = items.filter { $0.wave == self.wave }
        if let failure = wave.first(where: \.outcome.isFailure) {
            next.status = .failed
            next.error =
                "instance \(failure.instance): " + (failure.deploymentID.map { "deployment \($0) " } ?? "")
                + "\(failure.outcome.rawValue)" + (failure.message.map { ": \($0)" } ?? "")
            return (next, [])
        }
        guard wave.allSatisfy(\.outcome.isDone) else { return (self, []) }
        guard self.wave + 1 < waves else {
            next.status = .completed
            return (next, [])
        }
        next.wave += 1
        return (next, items.filter { $0.wave == next.wave }.map(\.instance))
    }

    /// Why the rollout keeps `instance` from being provisioned by the reconciler now, or nil. After a decommission
    /// rollout the whole environment is held down; a deploy rollout that runs or failed holds the instances of the
    /// waves after the current one.
    public func hold(of instance: String) -> String? {
        switch (action, status) {
        case (_, .replaced), (.deploy, .completed): return nil
        case (.decommission, _):
            return "environment \(environment) was decommissioned by rollout \(id); converge env deploy "
                + "\(environment) brings it back"
        case (.deploy, _) where wave < 0:
            return "environment \(environment) is being set up; its rollout starts next"
        case (.deploy, _):
            guard let item = items.first(where: { $0.instance == instance }), item.wave > wave else { return nil }
            return status == .running
                ? "waiting for wave \(wave + 1) of rollout \(id) (this instance is in wave \(item.wave + 1))"
                : "rollout \(id) stopped at wave \(wave + 1): \(error ?? "failed"); converge env deploy "
                    + "\(environment) runs it again"
        }
    }

    /// Waves of `instances` from their connections (`upstream`: instance → the instances it connects to): an instance
    /// goes one wave after the latest of its upstream instances among `instances`; `reversed` puts the downstream
    /// first (a decommission). The graph is acyclic (the manifests refuse cycles).
    public static func waves(of instances: [String], upstream: [String: [String]], reversed: Bool) -> [String: Int] {
        let members = Set(instances)
        var edges: [String: [String]] = [:]
        for instance in instances {
            for target in upstream[instance] ?? [] where members.contains(target) && target != instance {
                if reversed {
                    edges[target, default: []].append(instance)
                } else {
                    edges[instance, default: []].append(target)
                }
            }
        }
        var waves: [String: Int] = [:]
        func wave(_ instance: String, depth: Int) -> Int {
            if let known = waves[instance] { return known }
            guard depth <= members.count else { return 0 }
            let value = (edges[instance] ?? []).map { wave($0, depth: depth + 1) + 1 }.max() ?? 0
            waves[instance] = value
            return value
        }
        for instance in instances { _ = wave(instance, depth: 0) }
        return waves
    }
}
