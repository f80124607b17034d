import ConvergeCore
import Foundation

// The methods not written yet for PostgreSQL, grouped by the SQLite file they port; each group is removed as its
// port lands, and this file with the last one.

extension PostgresStore: Store {
    static func pending(_ function: String) -> ConvergeError {
        ConvergeError(.internal, "\(function) is not written for PostgreSQL yet")
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
