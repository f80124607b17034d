import ConvergeAPI
import ConvergeCore
import ConvergeEngine

/// DESIGN §6 copy instance / promote; the engine carries it out, this only translates.
extension APIHandler {
    func copyInstance(_ input: Operations.CopyInstance.Input) async throws -> Operations.CopyInstance.Output {
        guard case .json(let body) = input.body else { throw ConvergeError(.invalidArgument, "body: required") }
        let overrides = Value.object(body.overrides?.additionalProperties.mapValues(Value.init) ?? [:])
        let copy = try await engine.copyInstance(
            input.path.id, to: body.to, overrides: overrides, copySecrets: body.copySecrets ?? false,
            actor: try RequestPrincipal.required().name)
        let result = Components.Schemas.InstanceCopy(
            source: copy.source, destination: copy.destination, changed: copy.changed,
            plan: copy.plan.map {
                .init(id: $0.id, status: .init(rawValue: $0.status.rawValue)!, created: $0.created)
            },
            noPlanReason: copy.noPlanReason,
            changes: copy.changes.map {
                .init(path: $0.path, before: $0.before?.container, after: $0.after?.container)
            },
            copiedSecrets: copy.copiedSecrets)
        return .ok(.init(body: .json(result)))
    }
}
