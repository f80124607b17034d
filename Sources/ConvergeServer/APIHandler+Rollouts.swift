import ConvergeAPI
import ConvergeCore
import ConvergeEngine
import ConvergeStore
import Foundation

/// Rollouts of whole environments and pull-request previews (DESIGN §6); the engine carries them out.
extension APIHandler {
    func deployEnvironment(_ input: Operations.DeployEnvironment.Input) async throws
        -> Operations.DeployEnvironment.Output
    {
        let (rollout, _) = try await engine.startRollout(
            of: input.path.id, action: .deploy, actor: try RequestPrincipal.required().name)
        return .created(.init(body: .json(.init(rollout))))
    }

    func decommissionEnvironment(_ input: Operations.DecommissionEnvironment.Input) async throws
        -> Operations.DecommissionEnvironment.Output
    {
        let (rollout, _) = try await engine.startRollout(
            of: input.path.id, action: .decommission, actor: try RequestPrincipal.required().name)
        return .created(.init(body: .json(.init(rollout))))
    }

    func listRollouts(_ input: Operations.ListRollouts.Input) async throws -> Operations.ListRollouts.Output {
        let rollouts = try await store.rollouts(environment: input.query.environment, limit: input.query.limit ?? 50)
        return .ok(.init(body: .json(.init(items: rollouts.map(Components.Schemas.Rollout.init)))))
    }

    func getRollout(_ input: Operations.GetRollout.Input) async throws -> Operations.GetRollout.Output {
        .ok(.init(body: .json(.init(try await store.rollout(input.path.id)))))
    }

    func applyPreview(_ input: Operations.ApplyPreview.Input) async throws -> Operations.ApplyPreview.Output {
        guard case .json(let body) = input.body, case .object(let fields) = Value(body) else {
            throw ConvergeError(.invalidArgument, "body: expected a preview's fields as a JSON object")
        }
        guard let project = fields["project"]?.stringValue, input.path.id.hasPrefix(project + "-") else {
            throw ConvergeError(
                .invalidArgument, "the preview's id must be <project>-<name>, with the project of its body",
                details: ["field": "project"])
        }
        let name = String(input.path.id.dropFirst(project.count + 1))
        let result = try await engine.preview(name, fields, actor: try RequestPrincipal.required().name)
        let status = try await engine.previewStatus(result.environment)
        var preview = Components.Schemas.Preview(status)
        preview.created = result.created
        return result.created ? .created(.init(body: .json(preview))) : .ok(.init(body: .json(preview)))
    }

    func getPreview(_ input: Operations.GetPreview.Input) async throws -> Operations.GetPreview.Output {
        .ok(.init(body: .json(.init(try await engine.previewStatus(input.path.id)))))
    }

    func destroyPreview(_ input: Operations.DestroyPreview.Input) async throws -> Operations.DestroyPreview.Output {
        let rollout = try await engine.destroyPreview(input.path.id, actor: try RequestPrincipal.required().name)
        return .accepted(.init(body: .json(.init(rollout))))
    }
}

extension Components.Schemas.Rollout {
    init(_ rollout: ConvergeCore.Rollout) {
        self.init(
            id: rollout.id, environment: rollout.environment, action: .init(rawValue: rollout.action.rawValue)!,
            status: .init(rawValue: rollout.status.rawValue)!, wave: rollout.wave, waves: rollout.waves,
            items: rollout.items.map {
                .init(
                    instance: $0.instance, wave: $0.wave, outcome: .init(rawValue: $0.outcome.rawValue)!,
                    deployment: $0.deploymentID, message: $0.message)
            }, createdBy: rollout.createdBy, createdAt: rollout.createdAt, updatedAt: rollout.updatedAt,
            finishedAt: rollout.finishedAt, error: rollout.error, replacedBy: rollout.replacedBy,
            deleteEnvironment: rollout.deleteEnvironment)
    }
}

extension Components.Schemas.Preview {
    init(_ status: PreviewStatus) {
        self.init(
            environment: status.environment, expiresAt: status.expiresAt, rollout: status.rollout.map { .init($0) },
            instances: status.instances.map { record in
                .init(
                    id: record.id, name: String(record.id.dropFirst(status.environment.count + 1)),
                    status: .init(rawValue: record.status.rawValue)!, outputs: record.outputs?.shown)
            })
    }
}
