import ConvergeAPI
import ConvergeCore
import ConvergeEngine

/// The environment workflows of DESIGN §6; the engine carries them out, this only translates.
extension APIHandler {
    func forkEnvironment(_ input: Operations.ForkEnvironment.Input) async throws -> Operations.ForkEnvironment.Output {
        guard case .json(let body) = input.body else { throw ConvergeError(.invalidArgument, "body: required") }
        let fork = try await engine.fork(
            input.path.id, as: body.name, copyDefaults: body.copyEnvironmentDefaults ?? false,
            copySecrets: body.copySecrets ?? false, actor: try RequestPrincipal.required().name)
        let result = Components.Schemas.Fork(
            environment: fork.environment, parent: fork.parent, instances: fork.instances,
            skippedDefaults: fork.skippedDefaults)
        return fork.created ? .created(.init(body: .json(result))) : .ok(.init(body: .json(result)))
    }

    func compareEnvironments(_ input: Operations.CompareEnvironments.Input) async throws
        -> Operations.CompareEnvironments.Output
    {
        let changes = try engine.compareEnvironments(input.query.from, input.query.to)
        return .ok(
            .init(
                body: .json(
                    .init(
                        from: input.query.from, to: input.query.to,
                        changes: changes.map {
                            .init(path: $0.path, before: $0.before?.container, after: $0.after?.container)
                        }))))
    }

    func setEnvironmentDefault(_ input: Operations.SetEnvironmentDefault.Input) async throws
        -> Operations.SetEnvironmentDefault.Output
    {
        guard case .json(let body) = input.body else { throw ConvergeError(.invalidArgument, "body: required") }
        try await engine.setDefault(
            of: input.path.id, to: body.resource, type: input.path._type == "-" ? nil : input.path._type,
            actor: try RequestPrincipal.required().name)
        return .noContent(.init())
    }

    func deleteEnvironment(_ input: Operations.DeleteEnvironment.Input) async throws
        -> Operations.DeleteEnvironment.Output
    {
        try await engine.deleteEnvironment(input.path.id, actor: try RequestPrincipal.required().name)
        return .noContent(.init())
    }

    func orphanInstance(_ input: Operations.OrphanInstance.Input) async throws -> Operations.OrphanInstance.Output {
        let record = try await engine.orphan(input.path.id, actor: try RequestPrincipal.required().name)
        return .ok(.init(body: .json(.init(record, secrets: try await engine.secrets.names(of: record.id)))))
    }
}
