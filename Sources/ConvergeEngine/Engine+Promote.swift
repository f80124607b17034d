import ConvergeCore
import ConvergeStore
import Foundation

/// What `copyInstance` did: the destination, whether its document changed, the PLAN staged for review (or why none
/// could be), and what changed in its declaration.
public struct InstanceCopy: Sendable, Equatable {
    /// The PLAN of the destination's new configuration.
    public struct Plan: Sendable, Equatable {
        public var id: String
        public var status: Deployment.Status
        /// False when a plan of the same configuration already stood (open, or completed) and was reused.
        public var created: Bool
    }

    public var source: String
    public var destination: String
    /// Whether the destination's document was written; false when it already declared this configuration.
    public var changed: Bool
    /// Nil when no plan could be staged; `noPlanReason` says why.
    public var plan: Plan?
    public var noPlanReason: String?
    /// The leaf-level changes from the destination's previous declaration: `params.…` and `version`.
    public var changes: [ValueChange]
    /// The names of the secrets written to the destination (`copySecrets`), sorted; those it already had with the
    /// same value are not written again.
    public var copiedSecrets: [String]
}

extension Engine {
    /// DESIGN §6 copy instance / promote: instance `destination` gets instance `source`'s params (as recorded when
    /// the source is PROVISIONED, else as declared) deep-merged with `overrides`, and the source's version, and keeps
    /// its own connections, labels and name; then a PLAN of its new configuration is staged for review, and its
    /// environment's policy decides how the change itself deploys.
    ///
    /// Both instances must be declared in the manifests in force and be of the same bundle, and the destination must
    /// be owned by the API (one the manifests declare would be undone by the next sync): otherwise
    /// `failed_precondition` and nothing changes. The new document is written as one API apply, so it is validated
    /// (a params-schema violation is a located `invalid_argument`) and audited like any other.
    ///
    /// The PLAN must run before any provision of the new configuration, so that its result shows the change before
    /// anything applies. The reconciler sees the destination as soon as the apply records it and may create the
    /// direct provision at once; but the dispatcher runs one deployment per instance at a time in creation order,
    /// so the plan is created first: the new configuration is validated and its snapshot taken with a dry-run apply
    /// (the state the real apply will record) and the destination's reconcile context (its upstream outputs, its
    /// environment's defaults), the plan is created through the reconciler, and only then is the document applied.
    /// Should the configuration the apply recorded differ from the one planned (someone changed the destination
    /// meanwhile), no plan is reported. A destination whose upstream has no outputs yet (the snapshot is
    /// `Blocked`) is applied all the same, and the result says why no plan was staged.
    ///
    /// Secrets (`copySecrets`) are copied after the dry run and before the plan, so that the plan and the change run
    /// with them.
    ///
    /// Idempotent: the same copy again writes no document (an unchanged one is skipped), no secret whose value is
    /// the same, and no deployment: the newest plan of the same configuration is reused unless it failed or was
    /// aborted, and the store dedupes an open one.
    public func copyInstance(
        _ source: String, to destination: String, overrides: Value = [:], copySecrets: Bool, actor: String
    ) async throws -> InstanceCopy {
        guard let state = manifests.current?.state else {
            throw ConvergeError(.failedPrecondition, "the daemon has not loaded the manifests yet; try again shortly")
        }
        guard source != destination else {
            throw ConvergeError(.invalidArgument, "an instance cannot be copied onto itself", details: ["field": "to"])
        }
        guard let from = state.instances[source] else {
            throw ConvergeError(.notFound, "instance \(source) is not declared in the manifests")
        }
        guard let previous = state.instances[destination] else {
            throw ConvergeError(.notFound, "instance \(destination) is not declared in the manifests")
        }
        let overrides = overrides == .null ? [:] : overrides
        guard overrides.objectValue != nil else {
            throw ConvergeError(
                .invalidArgument, "overrides: expected an object of params", details: ["field": "overrides"])
        }
        let key = ResourceKey(.instance, destination)
        guard case .object(var document)? = try await manifests.appliedDocument(key) else {
            let declared = state.sources[key]
            throw ConvergeError(
                .failedPrecondition,
                "instance \(destination) is declared in the manifests"
                    + (declared.map { " at \($0)" } ?? "") + "; change it there, since the next sync would undo a copy",
                details: declared.map { .object(["file": .string($0.file), "line": .int($0.line)]) })
        }
        guard from.bundle == previous.bundle else {
            throw ConvergeError(
                .failedPrecondition,
                "instance \(source) is of bundle \(from.bundle) and \(destination) of bundle \(previous.bundle); an "
                    + "instance is copied only onto one of the same bundle")
        }

        // The source as fork reads it: recorded once provisioned, declared before.
        let record = try? await store.instance(source)
        let deployed = record?.status == .provisioned
        let params = (deployed ? record?.params : nil) ?? from.params
        let version = (deployed ? record?.version : nil) ?? from.version
        let before = Value.object(document)
        var spec = document["spec"]?.objectValue ?? [:]
        spec["params"] = params.merged(with: overrides)
        spec["version"] = version.map { .string($0) }
        document["spec"] = .object(spec)
        let after = Value.object(document)

        // Validated as the real apply will be, and the instance as it will be recorded (params with defaults).
        let planned = try Self.instance(
            in: try await manifests.apply([key: after], actor: actor, dryRun: true).specs[key], key: key)
        var copied: [String] = []
        if copySecrets {
            let existing = try await secrets.values(of: destination)
            for (name, value) in try await secrets.values(of: source).sorted(by: { $0.key < $1.key })
            where existing[name] != value {
                try await secrets.set(name, of: destination, to: value, actor: actor)
                copied.append(name)
            }
        }
        var (plan, reason) = try await stagePlan(of: planned, copiedFrom: source, actor: actor)
        let applied = try await manifests.apply([key: after], actor: actor).specs[key]
        if plan != nil, try Self.instance(in: applied, key: key) != planned {
            (plan, reason) = (nil, "the configuration of \(destination) changed while it was copied; plan it again")
        }
        func declaration(_ instance: Instance) -> Value {
            var members: [String: Value] = ["params": instance.params]
            members["version"] = instance.version.map { .string($0) }
            return .object(members)
        }
        return InstanceCopy(
            source: source, destination: destination, changed: before.canonicalJSON != after.canonicalJSON,
            plan: plan, noPlanReason: reason, changes: declaration(previous).changes(to: declaration(planned)),
            copiedSecrets: copied)
    }

    /// The PLAN of `instance`'s configuration as it will be declared: the newest plan of the same snapshot unless it
    /// failed or was aborted, else a new one; or why none can be staged.
    private func stagePlan(of instance: Instance, copiedFrom source: String, actor: String) async throws
        -> (InstanceCopy.Plan?, String?)
    {
        guard var context = try await reconciler.context(of: instance.id) else {
            return (nil, "instance \(instance.id) is not known yet")
        }
        if let by = context.record?.orphanedBy {
            return (nil, "instance \(instance.id) is orphaned (by \(by)); nothing is planned for it")
        }
        context.desired = instance
        let snapshot: DeploymentSnapshot
        switch ReconcilePlanner.snapshot(of: instance, context: context, actor: actor) {
        case .failure(let blocked): return (nil, blocked.message)
        case .success(let taken): snapshot = taken
        }
        var plan = ReconcilePlanner.planSnapshot(of: snapshot)
        plan.metadata = plan.metadata.merged(with: ["copyOf": .string(source)])
        let hash = plan.desiredHash
        if let standing = context.history.first(where: { $0.action == .plan && $0.desiredHash == hash }),
            standing.status != .failed, standing.status != .aborted
        {
            return (InstanceCopy.Plan(id: standing.id, status: standing.status, created: false), nil)
        }
        let creation = try await reconciler.create(
            DeploymentRequest(instanceID: instance.id, snapshot: plan, mode: .direct, actor: actor))
        return (
            InstanceCopy.Plan(
                id: creation.deployment.id, status: creation.deployment.status, created: creation.created), nil
        )
    }

    /// The instance an apply's spec records.
    private static func instance(in spec: Value?, key: ResourceKey) throws -> Instance {
        guard let spec, spec != .null else {
            throw ConvergeError(.internal, "the apply of \(key) recorded no instance")
        }
        return try JSONDecoder().decode(Instance.self, from: Data(spec.canonicalJSON.utf8))
    }
}
