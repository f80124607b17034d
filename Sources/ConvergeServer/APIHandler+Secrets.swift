import ConvergeAPI
import ConvergeCore
import ConvergeEngine
import ConvergeStore
import Foundation

/// The secrets of instances: set, listed by name and deleted through the engine, which seals them before the store
/// sees them. No answer, error or log line of these operations carries a value.
extension APIHandler {
    func listInstanceSecrets(_ input: Operations.ListInstanceSecrets.Input) async throws
        -> Operations.ListInstanceSecrets.Output
    {
        .ok(.init(body: .json(.init(names: try await engine.secrets.names(of: input.path.id)))))
    }

    func setInstanceSecret(_ input: Operations.SetInstanceSecret.Input) async throws
        -> Operations.SetInstanceSecret.Output
    {
        guard case .json(let body) = input.body else { throw ConvergeError(.invalidArgument, "body: required") }
        try await engine.secrets.set(
            input.path.name, of: input.path.id, to: body.value, actor: try RequestPrincipal.required().name)
        return .noContent(.init())
    }

    func deleteInstanceSecret(_ input: Operations.DeleteInstanceSecret.Input) async throws
        -> Operations.DeleteInstanceSecret.Output
    {
        try await engine.secrets.delete(
            input.path.name, of: input.path.id, actor: try RequestPrincipal.required().name)
        return .noContent(.init())
    }

    /// An instance as the API shows it, with the names of its secrets.
    func instanceView(_ record: InstanceRecord) async throws -> Components.Schemas.Instance {
        .init(record, secrets: try await engine.secrets.names(of: record.id))
    }

    /// A page of instances as the API shows them, the names of their secrets read in one query.
    func instanceViews(_ records: [InstanceRecord]) async throws -> [Components.Schemas.Instance] {
        let names = try await engine.secrets.names(ofInstances: records.map(\.id))
        return records.map { .init($0, secrets: names[$0.id] ?? []) }
    }
}
