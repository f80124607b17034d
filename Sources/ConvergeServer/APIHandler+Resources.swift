import ConvergeAPI
import ConvergeCore
import ConvergeStore
import Foundation

/// Resources applied through the API: the engine checks and records them; this only translates.
extension APIHandler {
    func applyResource(_ input: Operations.ApplyResource.Input) async throws -> Operations.ApplyResource.Output {
        guard case .json(let body) = input.body, case .object(var document) = Value(body) else {
            throw ConvergeError(.invalidArgument, "body: expected a manifest document as a JSON object")
        }
        let key = ResourceKey(ResourceKind(input.path.kind), input.path.id)
        let principal = try Self.principal(allowedToWrite: key)
        if key.kind == .provisioner { try checkExecCommand(of: .object(document), id: key.id) }
        var expected: Int64?
        if case .object(var metadata)? = document["metadata"],
            let version = metadata.removeValue(forKey: "resourceVersion")
        {
            expected = try Self.resourceVersion(version.stringValue ?? version.canonicalJSON)
            document["metadata"] = .object(metadata)
        }
        let dryRun = input.query.dryRun == true
        let (created, specs) = try await engine.manifests.apply(
            [key: .object(document)], expectedVersions: expected.map { [key: $0] } ?? [:], actor: principal.name,
            dryRun: dryRun)
        let spec = specs[key] ?? .null
        let resource: Components.Schemas.Resource
        if dryRun {
            let current = try? await store.resource(key)
            resource = .init(
                kind: key.kind.rawValue, id: key.id, spec: spec.container, generation: current?.generation ?? 0,
                resourceVersion: current.map { String($0.resourceVersion) } ?? "0", owner: .api)
        } else {
            resource = Components.Schemas.Resource(try await store.resource(key))
        }
        return created.contains(key) ? .created(.init(body: .json(resource))) : .ok(.init(body: .json(resource)))
    }

    func deleteResource(_ input: Operations.DeleteResource.Input) async throws -> Operations.DeleteResource.Output {
        let key = ResourceKey(ResourceKind(input.path.kind), input.path.id)
        let principal = try Self.principal(allowedToWrite: key)
        let expected = try input.query.resourceVersion.map(Self.resourceVersion)
        try await engine.manifests.delete(
            [key], expectedVersions: expected.map { [key: $0] } ?? [:], actor: principal.name)
        return .noContent(.init())
    }

    /// The caller, when its role may write `key`: a Provisioner runs code and calls URLs, so it needs admin.
    static func principal(allowedToWrite key: ResourceKey) throws -> Principal {
        let principal = try RequestPrincipal.required()
        if key.kind == .provisioner, principal.role < .admin {
            throw ConvergeError(
                .permissionDenied,
                "\(principal.name) has the role \(principal.role.rawValue); declaring a Provisioner needs admin")
        }
        return principal
    }

    /// Refuses an exec provisioner whose command is not on the daemon's `--allow-exec-command` list: through the API
    /// an admin token would otherwise run any command on the daemon's host. A document without `spec.exec` is left to
    /// the manifest checks.
    func checkExecCommand(of document: Value, id: String) throws {
        guard case .object(let exec)? = document["spec"]?["exec"] else { return }
        let program = exec["command"]?.arrayValue?.first?.stringValue ?? ""
        guard !server.settings.allowedExecCommands.contains(program) else { return }
        throw ConvergeError(
            .permissionDenied,
            "provisioner \(id): the exec command \"\(program)\" is not allowed through the API (the daemon allows "
                + "those given with converge serve --allow-exec-command); declare the provisioner in the manifests",
            details: ["setting": "allowExecCommand", "command": .string(program)])
    }

    static func resourceVersion(_ text: String) throws -> Int64 {
        guard let version = Int64(text), version > 0 else {
            throw ConvergeError(
                .invalidArgument, "resourceVersion: expected a resource version as GET returns it, got \"\(text)\"",
                details: ["field": "resourceVersion"])
        }
        return version
    }
}
