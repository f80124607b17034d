import ConvergeAPI
import ConvergeCore
import ConvergeEngine
import ConvergeStore
import Foundation
import OpenAPIRuntime

/// The records of the store as the document's schemas spell them.
extension Components.Schemas.Deployment {
    init(_ deployment: Deployment) {
        self.init(
            id: deployment.id, sequence: deployment.sequence, instance: deployment.instanceID,
            action: .init(deployment.action), status: .init(rawValue: deployment.status.rawValue)!,
            params: deployment.snapshot.params.container,
            connectionParams: deployment.snapshot.connectionParams.shown,
            version: deployment.snapshot.version, metadata: deployment.snapshot.metadata.container,
            desiredHash: deployment.desiredHash, createdBy: deployment.createdBy, proposedBy: deployment.proposedBy,
            approvedBy: deployment.approvedBy, createdAt: deployment.createdAt, updatedAt: deployment.updatedAt,
            startedAt: deployment.startedAt, finishedAt: deployment.finishedAt, attempt: deployment.attempt,
            error: deployment.error, outputs: deployment.outputs?.shown, planResult: deployment.planResult?.shown,
            retryOf: deployment.retryOf, rollbackOf: deployment.rollbackOf,
            approvalStep: deployment.approvalStep.flatMap { .init(rawValue: $0.rawValue) },
            awaiting: deployment.awaitedApproval.map {
                switch $0 {
                case .review: .approval
                case .plan: .planApproval
                case .apply: .applyApproval
                }
            },
            planDeployment: deployment.planDeploymentID.map { id in
                .init(
                    id: id, status: .init(rawValue: (deployment.planOutcome?.status ?? .pending).rawValue)!,
                    result: deployment.planOutcome?.result?.shown)
            },
            approvals: deployment.approvals.isEmpty
                ? nil
                : deployment.approvals.map {
                    .init(step: .init(rawValue: $0.step.rawValue)!, by: $0.by, at: $0.at)
                })
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
    /// What `compare` compares: the desired state of the snapshot, not its metadata, as it is shown.
    var comparable: Value {
        [
            "params": snapshot.params, "connectionParams": snapshot.connectionParams.showingSensitiveByName,
            "version": .string(snapshot.version),
        ]
    }
}

extension Value {
    /// The value of outputs, connection params or a plan result as every answer shows it: sensitive values by name
    /// only (`[sensitive]`), never sealed nor plain.
    var shown: OpenAPIValueContainer { showingSensitiveByName.container }
}

extension Components.Schemas.Instance {
    /// An instance's view: its record and the names (never the values) of its secrets.
    init(_ record: InstanceRecord, secrets: [String]) {
        self.init(
            id: record.id, environment: record.environment, bundle: record.bundle,
            status: .init(rawValue: record.status.rawValue)!, params: record.params?.container,
            connectionParams: record.connectionParams?.shown, version: record.version,
            outputs: record.outputs?.shown, observedGeneration: record.observedGeneration,
            conditions: record.conditions.map {
                .init(
                    _type: $0.type.rawValue, status: $0.status, reason: $0.reason, message: $0.message,
                    lastTransitionTime: $0.lastTransitionTime)
            },
            secrets: secrets, updatedAt: record.updatedAt, orphanedBy: record.orphanedBy,
            createdAt: record.details?.createdAt,
            labels: record.details.map { .init(additionalProperties: $0.labels) },
            provisioner: record.details?.provisioner, lastDeployment: record.details?.lastDeployment)
    }
}

extension Components.Schemas.Resource {
    init(_ stored: StoredResource) {
        self.init(
            kind: stored.resource.kind.rawValue, id: stored.resource.id, spec: stored.resource.spec.container,
            generation: stored.generation, resourceVersion: String(stored.resourceVersion),
            owner: stored.resource.source?.isAPI == false ? .manifests : .api, createdAt: stored.createdAt,
            source: stored.resource.source.flatMap { $0.isAPI ? nil : $0.description })
    }
}

extension ResourceKind {
    /// The kind a path's plural names (`instances`).
    init(_ plural: Components.Schemas.ResourceKind) {
        switch plural {
        case .projects: self = .project
        case .environments: self = .environment
        case .resources: self = .resource
        case .bundles: self = .bundle
        case .provisioners: self = .provisioner
        case .instances: self = .instance
        case .previews: self = .preview
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

extension Principal {
    /// The principal as an environment's approver rules see it: its name and every role it reaches.
    var approver: Approver {
        Approver(name: name, roles: Set(Role.allCases.filter { $0 <= role }.map(\.rawValue)))
    }
}
