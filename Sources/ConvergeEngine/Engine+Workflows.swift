import ConvergeCore
import ConvergeStore
import Foundation

/// What `fork` did: the fork's environment and instances, and whether the environment was new.
public struct ForkResult: Sendable, Equatable {
    public var environment: String
    public var parent: String
    public var instances: [String]
    public var created: Bool
    /// Defaults not copied: those naming a resource of the parent environment itself, which the fork cannot see.
    public var skippedDefaults: [String]
}

/// A fork's documents before they are applied: the environment and its instances, and which parent instance each
/// forked instance copies.
struct ForkDraft {
    var id: String
    var documents: [ResourceKey: Value]
    var pairs: [(parent: String, fork: String)]
    var skipped: [String]
    /// Connection types that a forked instance takes from the environment default and that the parent has a
    /// default for, not copied because the fork was not asked to copy defaults.
    var uncopiedDefaults: [String]
}

extension Engine {
    /// DESIGN §6 fork: a new API-owned environment `<project>-<name>` linked to environment `source` (`forkOf`), with
    /// one instance per instance of the parent, with the parent's bundle, its params and version as recorded (as
    /// declared before the first deployment), and its connections wired inside the fork, all applied in one
    /// transaction; the parent is never modified. Running it again resets the fork to the parent's current params
    /// and version and copies again what the flags ask (so secrets can be backfilled); a fork of another parent
    /// is refused. The environment's policy then decides how the fork deploys.
    public func fork(
        _ source: String, as name: String, copyDefaults: Bool, copySecrets: Bool, actor: String
    ) async throws -> ForkResult {
        let draft = try await forkDraft(source, as: name, copyDefaults: copyDefaults)
        // Nothing of the fork deploys before its secrets are copied.
        let previous = rollouts.reserve(draft.id, at: clock.now)
        let created: Set<ResourceKey>
        do {
            do {
                created = try await manifests.apply(draft.documents, actor: actor).created
            } catch var error as ConvergeError where !draft.uncopiedDefaults.isEmpty {
                let hint =
                    "the fork has no defaults for \(draft.uncopiedDefaults.joined(separator: ", ")) unless it copies "
                    + "the parent's: fork again with copyEnvironmentDefaults (converge env fork \(source) \(name) "
                    + "--copy-environment-defaults)"
                error.message += "; \(hint)"
                error.details = (error.details ?? [:]).merged(with: ["hint": .string(hint)])
                throw error
            }
            if copySecrets { try await copyInstanceSecrets(draft.pairs, actor: actor) }
        } catch {
            rollouts.restore(previous, in: draft.id)
            await queue.add(draft.pairs.map(\.fork))
            throw error
        }
        rollouts.restore(previous, in: draft.id)
        await queue.add(draft.pairs.map(\.fork))
        return ForkResult(
            environment: draft.id, parent: source, instances: draft.pairs.map(\.fork),
            created: created.contains(ResourceKey(.environment, draft.id)), skippedDefaults: draft.skipped)
    }

    /// The documents of a fork of environment `source` named `name` (see `fork`), not yet applied.
    func forkDraft(_ source: String, as name: String, copyDefaults: Bool) async throws -> ForkDraft {
        guard let loaded = manifests.current else {
            throw ConvergeError(.failedPrecondition, "the daemon has not loaded the manifests yet; try again shortly")
        }
        guard let parent = loaded.state.environments[source] else {
            throw ConvergeError(.notFound, "environment \(source) not found")
        }
        if let problem = Identifier.problem(withSegment: name) {
            throw ConvergeError(.invalidArgument, "fork name: \(problem)", details: ["field": "name"])
        }
        let id = Identifier.join(parent.project, name)
        guard id != source else { throw ConvergeError(.invalidArgument, "an environment cannot be forked onto itself") }
        let existing = loaded.state.environments[id]
        if let existing, existing.forkOf != source {
            throw ConvergeError(
                .failedPrecondition,
                "environment \(id) exists and is "
                    + (existing.forkOf.map { "a fork of \($0)" } ?? "not a fork") + ", not a fork of \(source)")
        }
        var spec: [String: Value] = [
            "description": .string("fork of \(source)"), "policy": .string(parent.policy.rawValue),
            "prune": .bool(parent.prune), "forkOf": .string(parent.name),
        ]
        // The parent's defaults a fork can take: those naming a resource outside the parent environment.
        let copyable = parent.defaults.filter { loaded.state.resources[$0.value].map { $0.environment == nil } == true }
        let skipped = copyDefaults ? parent.defaults.keys.filter { copyable[$0] == nil }.sorted() : []
        if copyDefaults {
            spec["defaults"] = .object(copyable.mapValues { .string(String($0.dropFirst(parent.project.count + 1))) })
        }
        var documents: [ResourceKey: Value] = [
            ResourceKey(.environment, id): [
                "apiVersion": "converge/v1", "kind": "Environment",
                "metadata": [
                    "name": .string(name), "project": .string(parent.project),
                    "labels": .object(parent.labels.mapValues { .string($0) }),
                ],
                "spec": .object(spec),
            ]
        ]
        let instances = loaded.state.instances.values.filter { $0.environment == source }.sorted { $0.id < $1.id }
        var pairs: [(parent: String, fork: String)] = []
        for instance in instances {
            let record = try? await store.instance(instance.id)
            let deployed = record?.status == .provisioned
            var instanceSpec: [String: Value] = [
                "bundle": .string(instance.bundle),
                "params": deployed ? (record?.params ?? instance.params) : instance.params,
                "connections": Self.connections(of: instance, in: loaded.state),
            ]
            if let version = (deployed ? record?.version : nil) ?? instance.version {
                instanceSpec["version"] = .string(version)
            }
            let forked = Identifier.join(id, instance.name)
            documents[ResourceKey(.instance, forked)] = [
                "apiVersion": "converge/v1", "kind": "Instance",
                "metadata": [
                    "name": .string(instance.name), "project": .string(parent.project), "environment": .string(name),
                    "labels": .object(instance.labels.mapValues { .string($0) }),
                ],
                "spec": .object(instanceSpec),
            ]
            pairs.append((instance.id, forked))
        }
        let uncopied =
            copyDefaults
            ? []
            : Set(
                instances.flatMap { instance in
                    (loaded.state.bundles[instance.bundle]?.connections ?? [:]).filter {
                        !$0.value.optional && instance.connections[$0.key] == nil && copyable[$0.value.type] != nil
                    }.map(\.value.type)
                }
            ).sorted()
        return ForkDraft(id: id, documents: documents, pairs: pairs, skipped: skipped, uncopiedDefaults: uncopied)
    }

    /// Copies every secret of each pair's parent instance to its fork.
    func copyInstanceSecrets(_ pairs: [(parent: String, fork: String)], actor: String) async throws {
        for pair in pairs {
            for (secret, value) in try await secrets.values(of: pair.parent).sorted(by: { $0.key < $1.key }) {
                try await secrets.set(secret, of: pair.fork, to: value, actor: actor)
            }
        }
    }

    /// The leaf-level differences from environment `from`'s instances to `to`'s, as the manifests in force declare
    /// them (bundle, version, params, connections as `instance.artifact`), keyed by instance name.
    public func compareEnvironments(_ from: String, _ to: String) throws -> [ValueChange] {
        guard let state = manifests.current?.state else {
            throw ConvergeError(.failedPrecondition, "the daemon has not loaded the manifests yet; try again shortly")
        }
        func declared(_ id: String) throws -> Value {
            guard state.environments[id] != nil else { throw ConvergeError(.notFound, "environment \(id) not found") }
            var instances: [String: Value] = [:]
            for instance in state.instances.values where instance.environment == id {
                var spec: [String: Value] = [
                    "bundle": .string(instance.bundle), "params": instance.params,
                    "connections": Self.connections(of: instance, in: state),
                ]
                spec["version"] = instance.version.map { .string($0) }
                instances[instance.name] = .object(spec)
            }
            return .object(instances)
        }
        return try declared(from).changes(to: try declared(to))
    }

    /// An instance's connections as a manifest writes them: slot → `instance.artifact`, by instance name.
    static func connections(of instance: Instance, in state: DesiredState) -> Value {
        .object(
            instance.connections.mapValues { target in
                .string("\(state.instances[target.instance]?.name ?? target.instance).\(target.artifact)")
            })
    }

    /// Sets environment `id`'s default for connection type `type` (the resource's own type when nil) to the imported
    /// resource `resource` (its id, or its name in the environment or the project). Only an environment owned by the
    /// API can change this way; one the manifests declare is changed in its file. Setting the same default again
    /// changes nothing.
    public func setDefault(of id: String, to resource: String, type: String?, actor: String) async throws {
        guard let state = manifests.current?.state else {
            throw ConvergeError(.failedPrecondition, "the daemon has not loaded the manifests yet; try again shortly")
        }
        guard let environment = state.environments[id] else {
            throw ConvergeError(.notFound, "environment \(id) not found")
        }
        let candidates = [resource, Identifier.join(id, resource), Identifier.join(environment.project, resource)]
        guard let imported = candidates.lazy.compactMap({ state.resources[$0] }).first,
            imported.project == environment.project, imported.environment == nil || imported.environment == id
        else {
            throw ConvergeError(
                .notFound, "resource \(resource) not found in environment \(id) or project \(environment.project)")
        }
        let type = type ?? imported.type
        guard type == imported.type else {
            throw ConvergeError(
                .invalidArgument,
                "resource \(imported.id) is of type \(imported.type); it cannot be the default for \(type)",
                details: ["field": "type"])
        }
        let key = ResourceKey(.environment, id)
        guard case .object(var document)? = try await manifests.appliedDocument(key) else {
            let source = state.sources[key].map { " (declared at \($0))" } ?? ""
            throw ConvergeError(
                .failedPrecondition, "environment \(id) is declared in the manifests\(source); set its default there")
        }
        var spec = document["spec"]?.objectValue ?? [:]
        var defaults = spec["defaults"]?.objectValue ?? [:]
        let scope = imported.environment == nil ? environment.project : id
        defaults[type] = .string(String(imported.id.dropFirst(scope.count + 1)))
        spec["defaults"] = .object(defaults)
        document["spec"] = .object(spec)
        _ = try await manifests.apply([key: .object(document)], actor: actor)
    }

    /// Stops managing instance `id` without decommissioning it: its infrastructure stays, and the reconciler no
    /// longer deploys, plans or decommissions it, whatever the manifests declare.
    public func orphan(_ id: String, actor: String) async throws -> InstanceRecord {
        let record = try await store.orphanInstance(id, actor: actor)
        await queue.add([id])
        return record
    }

    /// Deletes an API-owned environment, its API-owned instances and its preview, once every instance is decommissioned, orphaned
    /// or was never deployed; otherwise `failed_precondition` naming one that is not. An environment the manifests
    /// declare is removed from them instead.
    public func deleteEnvironment(_ id: String, actor: String) async throws {
        guard let state = manifests.current?.state else {
            throw ConvergeError(.failedPrecondition, "the daemon has not loaded the manifests yet; try again shortly")
        }
        let key = ResourceKey(.environment, id)
        guard state.environments[id] != nil else { throw ConvergeError(.notFound, "environment \(id) not found") }
        if let source = state.sources[key], !source.isAPI {
            throw ConvergeError(
                .failedPrecondition, "environment \(id) is declared in the manifests at \(source); remove it there")
        }
        var keys = [key]
        for instance in state.instances.values.filter({ $0.environment == id }).sorted(by: { $0.id < $1.id }) {
            let record = try? await store.instance(instance.id)
            let live: Bool
            switch record?.status {
            case nil: live = false
            case .decommissioned?: live = false
            case .initialized?:
                live = !(try await store.recentDeployments(of: instance.id, limit: 1).isEmpty)
            default: live = true
            }
            if live && record?.orphanedBy == nil {
                throw ConvergeError(
                    .failedPrecondition,
                    "instance \(instance.id) is \(record?.status.rawValue ?? "live"); decommission or orphan it first")
            }
            keys.append(ResourceKey(.instance, instance.id))
        }
        if state.previews[id] != nil { keys.append(ResourceKey(.preview, id)) }
        try await manifests.delete(keys, actor: actor)
        rollouts.forget(id)
    }
}
