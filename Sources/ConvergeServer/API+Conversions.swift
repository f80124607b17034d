import ConvergeAPI
import ConvergeCore
import ConvergeStore
import Foundation

/// The records of the store as the document's schemas spell them.
extension Components.Schemas.Deployment {
    init(_ deployment: Deployment) {
        self.init(
            id: deployment.id, sequence: deployment.sequence, instance: deployment.instanceID,
            action: .init(deployment.action), status: .init(rawValue: deployment.status.rawValue)!,
            params: deployment.snapshot.params.container,
            connectionParams: deployment.snapshot.connectionParams.container,
            version: deployment.snapshot.version, metadata: deployment.snapshot.metadata.container,
            desiredHash: deployment.desiredHash, createdBy: deployment.createdBy, proposedBy: deployment.proposedBy,
            approvedBy: deployment.approvedBy, createdAt: deployment.createdAt, updatedAt: deployment.updatedAt,
            startedAt: deployment.startedAt, finishedAt: deployment.finishedAt, attempt: deployment.attempt,
            error: deployment.error, outputs: deployment.outputs?.container,
            planResult: deployment.planResult?.container,
            retryOf: deployment.retryOf, rollbackOf: deployment.rollbackOf)
    }
}

extension Components.Schemas.DeploymentAction {
    init(_ action: Deployment.Action) {
        self.init(rawValue: action.rawValue)!
    }
}

extension Deployment.Action {
    init(_ action: Components.Schemas.DeploymentAction) {
        self.init(rawValue: action.rawValue)!
    }
}

extension Deployment {
    /// What `compare` compares: the desired state of the snapshot, not its metadata.
    var comparable: Value {
        [
            "params": snapshot.params, "connectionParams": snapshot.connectionParams,
            "version": .string(snapshot.version),
        ]
    }
}

extension Components.Schemas.Instance {
    init(_ record: InstanceRecord) {
        self.init(
            id: record.id, environment: record.environment, bundle: record.bundle,
            status: .init(rawValue: record.status.rawValue)!, params: record.params?.container,
            connectionParams: record.connectionParams?.container, version: record.version,
            outputs: record.outputs?.container, observedGeneration: record.observedGeneration,
            conditions: record.conditions.map {
                .init(
                    _type: $0.type.rawValue, status: $0.status, reason: $0.reason, message: $0.message,
                    lastTransitionTime: $0.lastTransitionTime)
            },
            updatedAt: record.updatedAt)
    }
}

extension Components.Schemas.Resource {
    init(_ stored: StoredResource) {
        self.init(
            kind: stored.resource.kind.rawValue, id: stored.resource.id, spec: stored.resource.spec.container,
            generation: stored.generation, resourceVersion: String(stored.resourceVersion),
            owner: stored.resource.source == nil ? .api : .manifests, source: stored.resource.source?.description)
    }
}

extension ResourceKind {
    /// The kind a path's plural names.
    init(_ plural: Components.Schemas.ResourceKind) {
        switch plural {
        case .projects: self = .project
        case .environments: self = .environment
        case .resources: self = .resource
        case .bundles: self = .bundle
        case .provisioners: self = .provisioner
        case .instances: self = .instance
        }
    }
}

extension Components.Schemas.Role {
    init(_ role: Role) {
        self.init(rawValue: role.rawValue)!
    }
}

extension Components.Schemas.DeploymentEvent {
    init(_ event: DeploymentEvent) {
        self.init(
            sequence: event.sequence, deployment: event.deploymentID, at: event.at, kind: event.kind.rawValue,
            message: event.message, data: event.data?.container)
    }
}

extension Components.Schemas.DeploymentChange {
    init(_ change: DeploymentChange) {
        self.init(
            sequence: change.sequence, deployment: change.deploymentID, instance: change.instanceID,
            status: .init(rawValue: change.status.rawValue)!, at: change.at)
    }
}

extension Components.Schemas.AuditEntry {
    init(_ entry: AuditEntry) {
        self.init(
            sequence: entry.sequence, at: entry.at, actor: entry.actor, action: entry.action,
            targetKind: entry.targetKind, targetId: entry.targetID, before: entry.before?.container,
            after: entry.after?.container)
    }
}
