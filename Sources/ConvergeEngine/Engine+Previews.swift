import ConvergeCore
import ConvergeStore
import Foundation

/// What `preview` did: the preview environment, its rollout, and when it expires.
public struct PreviewResult: Sendable {
    public var environment: String
    public var created: Bool
    public var instances: [String]
    public var rollout: Rollout
    public var expiresAt: Date?
}

extension Engine {
    /// DESIGN §6 preview: from one preview (the fields of a preview file, as a JSON object with its `project`), the
    /// environment `<project>-<name>` forked from the base environment, its defaults pinned, each instance's
    /// overrides deep-merged onto the base's params and version, the `kind: Preview` document itself, all applied in
    /// one transaction and checked like any manifest (a mistake is located at `api:Preview/<id>` and changes
    /// nothing); then the secrets asked for, the time to live, and a rollout of the environment. Run again, it
    /// converges: the documents are rebuilt from the base, so manual edits are reset, secrets are copied again, and
    /// an instance whose snapshot did not change is not deployed again. A `ttl` runs from this call: running it
    /// again extends it.
    public func preview(_ name: String, _ fields: [String: Value], actor: String) async throws -> PreviewResult {
        guard let project = fields["project"]?.stringValue else {
            throw ConvergeError(.invalidArgument, "project: required, the project of the base environment")
        }
        guard let base = fields["baseEnvironment"]?.stringValue else {
            throw ConvergeError(.invalidArgument, "baseEnvironment: required, the environment the preview forks")
        }
        guard let state = manifests.current?.state else {
            throw ConvergeError(.failedPrecondition, "the daemon has not loaded the manifests yet; try again shortly")
        }
        let baseID = Identifier.join(project, base)
        guard state.environments[baseID] != nil else {
            throw ConvergeError(
                .notFound, "base environment \(baseID) not found", details: ["field": "baseEnvironment"])
        }
        var draft = try await forkDraft(
            baseID, as: name, copyDefaults: fields["copyEnvironmentDefaults"] != .bool(false))
        let environmentKey = ResourceKey(.environment, draft.id)
        var environment = draft.documents[environmentKey]!.objectValue!
        var spec = environment["spec"]!.objectValue!
        spec["description"] = .string("preview \(name) of \(baseID)")
        var defaults = spec["defaults"]?.objectValue ?? [:]
        for pinned in fields["environmentDefaults"]?.arrayValue ?? [] {
            guard let type = pinned["resourceType"]?.stringValue, let id = pinned["resourceId"]?.stringValue,
                let resource = state.resources[id], resource.project == project, resource.environment == nil
            else { continue }  // The Preview document's check reports it, located.
            defaults[type] = .string(String(id.dropFirst(project.count + 1)))
        }
        spec["defaults"] = .object(defaults)
        environment["spec"] = .object(spec)
        draft.documents[environmentKey] = .object(environment)
        var secrets: [(instance: String, name: String, value: String)] = []
        for (instanceName, override) in fields["instances"]?.objectValue ?? [:] {
            let key = ResourceKey(.instance, Identifier.join(draft.id, instanceName))
            guard case .object(var instance)? = draft.documents[key], case .object(var instanceSpec)? = instance["spec"]
            else { continue }  // Not an instance of the base: the Preview document's check reports it, located.
            if let params = override["params"], params.objectValue != nil {
                instanceSpec["params"] = (instanceSpec["params"] ?? [:]).merged(with: params)
            }
            if let version = override["version"] { instanceSpec["version"] = version }
            instance["spec"] = .object(instanceSpec)
            draft.documents[key] = .object(instance)
            for (secret, value) in override["secrets"]?.objectValue ?? [:] {
                if let value = value.stringValue { secrets.append((key.id, secret, value)) }
            }
        }
        draft.documents[ResourceKey(.preview, draft.id)] = Self.previewDocument(name: name, fields: fields)
        // Nothing of the preview deploys before its secrets are in place, nor out of its rollout's order.
        let previous = rollouts.reserve(draft.id, at: clock.now)
        let created: Set<ResourceKey>
        let expiresAt: Date?
        do {
            created = try await manifests.apply(draft.documents, actor: actor).created
            if fields["copySecrets"] == .bool(true) { try await copyInstanceSecrets(draft.pairs, actor: actor) }
            for secret in secrets.sorted(by: { ($0.instance, $0.name) < ($1.instance, $1.name) }) {
                try await self.secrets.set(secret.name, of: secret.instance, to: secret.value, actor: actor)
            }
            expiresAt = manifests.current?.state.previews[draft.id]?.ttlSeconds.map {
                clock.now.addingTimeInterval(TimeInterval($0))
            }
            try await store.setPreviewExpiry(of: draft.id, to: expiresAt)
        } catch {
            rollouts.restore(previous, in: draft.id)
            await queue.add(draft.pairs.map(\.fork))
            throw error
        }
        let (rollout, _) = try await startRollout(of: draft.id, action: .deploy, actor: actor)
        return PreviewResult(
            environment: draft.id, created: created.contains(environmentKey), instances: draft.pairs.map(\.fork),
            rollout: rollout, expiresAt: expiresAt)
    }

    /// The `kind: Preview` document of a preview, without its secrets' values (they are sealed in the store, never
    /// kept in a document).
    static func previewDocument(name: String, fields: [String: Value]) -> Value {
        var spec = fields
        spec["project"] = nil
        if case .object(var instances)? = spec["instances"] {
            for (instance, override) in instances {
                guard case .object(var members) = override else { continue }
                members["secrets"] = nil
                instances[instance] = .object(members)
            }
            spec["instances"] = .object(instances)
        }
        return [
            "apiVersion": "converge/v1", "kind": "Preview",
            "metadata": ["name": .string(name), "project": fields["project"] ?? .null], "spec": .object(spec),
        ]
    }

    /// Destroys preview `id` (its environment id): a decommission rollout of its environment that deletes the
    /// environment, its instances and its Preview document once every instance is decommissioned.
    public func destroyPreview(_ id: String, actor: String) async throws -> Rollout {
        guard let state = manifests.current?.state else {
            throw ConvergeError(.failedPrecondition, "the daemon has not loaded the manifests yet; try again shortly")
        }
        guard state.previews[id] != nil, state.environments[id] != nil else {
            throw ConvergeError(.notFound, "preview \(id) not found")
        }
        try await store.setPreviewExpiry(of: id, to: nil)
        return try await startRollout(of: id, action: .decommission, actor: actor, deleteEnvironment: true).rollout
    }

    /// Starts the destroy of every preview whose time to live ran out.
    func destroyExpiredPreviews() async {
        do {
            for expired in try await store.previewExpiries(dueBy: clock.now) {
                logger.info("preview expired", metadata: ["environment": "\(expired.environment)"])
                do {
                    _ = try await destroyPreview(expired.environment, actor: Self.actor)
                } catch let error as ConvergeError where error.code == .notFound {
                    try await store.setPreviewExpiry(of: expired.environment, to: nil)
                }
            }
        } catch {
            logger.warning("cannot destroy expired previews", metadata: ["error": "\(error)"])
        }
    }
}

/// Where a preview stands: its instances as recorded, its newest rollout and its expiry.
public struct PreviewStatus: Sendable {
    public var environment: String
    public var instances: [InstanceRecord]
    public var rollout: Rollout?
    public var expiresAt: Date?
}

extension Engine {
    /// Preview `id` (its environment id) as it stands; `not_found` when there is none.
    public func previewStatus(_ id: String) async throws -> PreviewStatus {
        guard let state = manifests.current?.state else {
            throw ConvergeError(.failedPrecondition, "the daemon has not loaded the manifests yet; try again shortly")
        }
        guard state.previews[id] != nil else { throw ConvergeError(.notFound, "preview \(id) not found") }
        var records: [InstanceRecord] = []
        for instance in state.instances.values.filter({ $0.environment == id }).sorted(by: { $0.id < $1.id }) {
            if let record = try? await store.instance(instance.id) { records.append(record) }
        }
        let expiry = try await store.previewExpiries(dueBy: .distantFuture).first { $0.environment == id }
        return PreviewStatus(
            environment: id, instances: records,
            rollout: try await store.rollouts(environment: id, limit: 1).first,
            expiresAt: expiry?.expiresAt)
    }
}
