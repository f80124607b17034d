import ConvergeCore
import Foundation

// The methods not written yet for PostgreSQL, grouped by the SQLite file they port; each group is removed as its
// port lands, and this file with the last one.

extension PostgresStore: Store {
    static func pending(_ function: String) -> ConvergeError {
        ConvergeError(.internal, "\(function) is not written for PostgreSQL yet")
    }
}

// SQLiteStore+Deployments.swift (one engineer)
extension PostgresStore {
    public func createDeployment(_ request: DeploymentRequest) async throws -> DeploymentCreation {
        throw Self.pending(#function)
    }
    public func approve(_ id: String, by approver: Approver, rule: ApproverRule?, step: Deployment.ApprovalStep?)
        async throws -> Deployment
    {
        throw Self.pending(#function)
    }
    public func reject(_ id: String, by approver: Approver, rule: ApproverRule?, reason: String?) async throws
        -> Deployment
    {
        throw Self.pending(#function)
    }
    public func abort(_ id: String, actor: String, reason: String?) async throws -> Deployment {
        throw Self.pending(#function)
    }
    public func claimNextDeployments(owner: String, leaseDuration: TimeInterval, limit: Int) async throws
        -> [Deployment]
    {
        throw Self.pending(#function)
    }
    public func takeOverExpiredLeases(
        owner: String, leaseDuration: TimeInterval, limit: Int, excluding applying: Set<String>
    ) async throws -> [Deployment] {
        throw Self.pending(#function)
    }
    public func renewLease(_ id: String, owner: String, epoch: Int64, leaseDuration: TimeInterval) async throws
        -> Deployment
    {
        throw Self.pending(#function)
    }
    public func complete(_ id: String, owner: String, epoch: Int64, outputs: Value, planResult: Value?) async throws
        -> Deployment
    {
        throw Self.pending(#function)
    }
    public func fail(_ id: String, owner: String, epoch: Int64, error: String) async throws -> Deployment {
        throw Self.pending(#function)
    }
    public func deployment(_ id: String) async throws -> Deployment {
        throw Self.pending(#function)
    }
    public func recentDeployments(of instanceID: String, limit: Int) async throws -> [DeploymentSummary] {
        throw Self.pending(#function)
    }
    public func reconcileInputs(of instanceID: String, upstream: [String], recentLimit: Int, includeConfiguration: Bool)
        async throws -> ReconcileInputs
    {
        throw Self.pending(#function)
    }
    public func history(of instanceID: String, after cursor: String?, limit: Int) async throws -> Page<Deployment> {
        throw Self.pending(#function)
    }
    public func appendEvents(_ events: [DeploymentEventDraft], to id: String) async throws {
        throw Self.pending(#function)
    }
    public func events(of id: String, after cursor: String?, limit: Int) async throws -> Page<DeploymentEvent> {
        throw Self.pending(#function)
    }
}

// SQLiteStore+Listing.swift, SQLiteStore+Rollouts.swift: what needs the deployments' port
extension PostgresStore {
    public func listDeployments(_ filter: DeploymentFilter, after cursor: String?, limit: Int) async throws -> Page<
        Deployment
    > {
        throw Self.pending(#function)
    }
    public func startRollout(_ rollout: Rollout) async throws -> (rollout: Rollout, replaced: Rollout?) {
        throw Self.pending(#function)
    }
}
