import ConvergeCore

extension Load {
    /// Cross-resource checks, once every document is declared: dangling references, connection types, unwired
    /// required connections, connection cycles and params against their bundle's schema.
    ///
    /// Linear in the number of resources: every reference is a dictionary probe, and the names a "did you mean"
    /// could suggest are listed only for a reference that is dangling.
    mutating func checkReferences() {
        for id in state.environments.keys.sorted() {
            let environment = state.environments[id]!
            let document = documents[ResourceKey(.environment, id)]!
            _ = require(
                ResourceKey(.project, environment.project), at: document["metadata"]!["project"]!, "metadata.project",
                candidates: { Array($0.projects.keys) })
            checkDefaults(of: environment, document: document)
            if let parent = environment.forkOf {
                _ = require(
                    ResourceKey(.environment, parent), at: document["spec"]!["forkOf"]!, "spec.forkOf",
                    candidates: { Array($0.environments.keys) })
            }
        }
        for id in state.resources.keys.sorted() {
            let resource = state.resources[id]!
            let metadata = documents[ResourceKey(.resource, id)]!["metadata"]!
            _ = require(
                ResourceKey(.project, resource.project), at: metadata["project"]!, "metadata.project",
                candidates: { Array($0.projects.keys) })
            if let environment = resource.environment {
                _ = require(
                    ResourceKey(.environment, Identifier.join(resource.project, environment)),
                    at: metadata["environment"]!,
                    "metadata.environment", candidates: { Array($0.environments.keys) })
            }
        }
        for id in state.bundles.keys.sorted() {
            let bundle = state.bundles[id]!
            let spec = documents[ResourceKey(.bundle, id)]!["spec"]!
            guard
                require(
                    ResourceKey(.provisioner, bundle.provisioner), at: spec["provisioner"]!, "spec.provisioner",
                    candidates: { Array($0.provisioners.keys) }),
                let provisioner = state.provisioners[bundle.provisioner], let mechanism = provisioner.mechanism
            else { continue }
            if bundle.cloudResource != nil, mechanism != "cloud" {
                report(
                    spec["provisioner"]!, "spec.provisioner",
                    "provisioner \(provisioner.id) is not a cloud provisioner (it has \(mechanism)); a bundle with "
                        + "spec.cloud needs one with spec.cloud")
            } else if bundle.cloudResource == nil, mechanism == "cloud" {
                report(
                    spec["provisioner"]!, "spec.provisioner",
                    "provisioner \(provisioner.id) is a cloud provisioner; a bundle it applies needs spec.cloud.resource "
                        + "(one of \(CloudResources.kinds.keys.sorted().joined(separator: ", ")))")
            }
        }
        for id in state.provisioners.keys.sorted() where state.provisioners[id]!.mechanism == nil {
            report(
                documents[ResourceKey(.provisioner, id)]!["spec"]!, "spec",
                "exactly one of \"webhook\", \"exec\" and \"cloud\" must be set")
        }
        for id in state.instances.keys.sorted() { checkInstance(id) }
        checkCycles()
        for id in state.previews.keys.sorted() { checkPreview(id) }
    }

    /// Every default names a resource of the environment (or its project) whose type is the default's type.
    mutating func checkDefaults(of environment: Environment, document: YAMLNode) {
        var resolved: [String: String] = [:]
        for entry in document["spec"]?["defaults"]?.entries ?? [] {
            let path = Shape.join("spec.defaults", entry.key)
            guard let name = entry.value.string else { continue }
            let scoped = [Identifier.join(environment.id, name), Identifier.join(environment.project, name)]
            guard let id = scoped.first(where: { documents[ResourceKey(.resource, $0)] != nil }) else {
                report(
                    entry.value, path,
                    "unknown resource \"\(name)\" in environment \(environment.id) or project \(environment.project)"
                        + didYouMean(
                            name, among: state.resources.values.map { String($0.id.split(separator: "-").last!) }))
                continue
            }
            guard let resource = state.resources[id] else { continue }
            if resource.type != entry.key {
                report(entry.value, path, "resource \(id) is of type \(resource.type), not \(entry.key)")
            }
            resolved[entry.key] = id
        }
        state.environments[environment.id]?.defaults = resolved
    }

    mutating func checkInstance(_ id: String) {
        let instance = state.instances[id]!
        let document = documents[ResourceKey(.instance, id)]!
        let metadata = document["metadata"]!
        let spec = document["spec"]!
        guard
            require(
                ResourceKey(.project, instance.project), at: metadata["project"]!, "metadata.project",
                candidates: { Array($0.projects.keys) })
        else { return }
        let environmentKnown = require(
            ResourceKey(.environment, instance.environment), at: metadata["environment"]!, "metadata.environment",
            candidates: { Array($0.environments.keys) })
        guard
            require(
                ResourceKey(.bundle, instance.bundle), at: spec["bundle"]!, "spec.bundle",
                candidates: { Array($0.bundles.keys) }),
            !broken.contains(ResourceKey(.bundle, instance.bundle)), let bundle = state.bundles[instance.bundle]
        else { return }
        let schema = schemas[instance.bundle] ?? .empty
        let checked = paramsChecks[id]!.outcome(against: schema, params: instance.params) { paramsNode in
            ParamsCheck.Outcome(
                violations: schema.violations(of: paramsNode, path: "spec.params"),
                params: schema.applyingDefaults(to: instance.params))
        }
        diagnostics += checked.violations
        state.instances[id]!.params = checked.params
        guard environmentKnown else { return }
        let environment = state.environments[instance.environment]
        var connections: [String: ConnectionTarget] = [:]
        for entry in spec["connections"]?.entries ?? [] {
            let path = Shape.join("spec.connections", entry.key)
            guard let slot = bundle.connections[entry.key] else {
                report(
                    entry.value, path,
                    "bundle \(bundle.id) has no connection \(entry.key.quotedForError)"
                        + didYouMean(entry.key, among: Array(bundle.connections.keys)))
                continue
            }
            guard let wire = entry.value.string else { continue }
            let parts = wire.split(separator: ".").map(String.init)
            let targetID = Identifier.join(instance.environment, parts[0])
            guard
                require(
                    ResourceKey(.instance, targetID), at: entry.value, path,
                    candidates: { state in state.instances.keys.filter { $0.hasPrefix(instance.environment + "-") } })
            else { continue }
            guard let target = state.instances[targetID], let targetBundle = state.bundles[target.bundle] else {
                continue
            }
            if let target = resolve(wire: parts, slot: slot, targetBundle: targetBundle, at: entry.value, path) {
                connections[entry.key] = ConnectionTarget(instance: targetID, artifact: target)
            }
        }
        state.instances[id]!.connections = connections
        for (name, slot) in bundle.connections.sorted(by: { $0.key < $1.key })
        where !slot.optional && spec["connections"]?[name] == nil && environment?.defaults[slot.type] == nil {
            report(
                spec, "spec.connections.\(name)",
                "required connection \"\(name)\" (type \(slot.type)) is not wired and environment \(instance.environment) has no default for \(slot.type)"
            )
        }
    }

    /// The artifact of the target's bundle that a wire (`db` or `db.endpoint`) connects to a slot, checking types.
    mutating func resolve(
        wire parts: [String], slot: ConnectionSlot, targetBundle: BundleDefinition, at node: YAMLNode, _ path: String
    ) -> String? {
        let target = parts[0]
        if parts.count == 2 {
            let artifact = parts[1]
            guard let type = targetBundle.artifacts[artifact] else {
                report(
                    node, path,
                    "instance \(target) (bundle \(targetBundle.id)) has no artifact \"\(artifact)\""
                        + didYouMean(artifact, among: Array(targetBundle.artifacts.keys)))
                return nil
            }
            guard type == slot.type else {
                report(
                    node, path,
                    "artifact \(target).\(artifact) is of type \(type), but the connection expects \(slot.type)")
                return nil
            }
            return artifact
        }
        let matching = targetBundle.artifacts.filter { $0.value == slot.type }.keys.sorted()
        switch matching.count {
        case 1:
            return matching[0]
        case 0:
            let produced = targetBundle.artifacts.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }
            report(
                node, path,
                "instance \(target) produces no artifact of type \(slot.type); it produces "
                    + (produced.isEmpty ? "none" : produced.joined(separator: ", ")))
        default:
            report(
                node, path,
                "instance \(target) produces several artifacts of type \(slot.type) (\(matching.joined(separator: ", "))); name one as \(target).ARTIFACT"
            )
        }
        return nil
    }

    /// Reports every cycle of connections between instances once, named in order from its first instance.
    ///
    /// A depth-first walk with its own stack (a chain of thousands of instances must not exhaust the thread's), and
    /// a set of the instances on the current path, so each instance and connection is visited once.
    mutating func checkCycles() {
        var finished: Set<String> = []
        var reported: Set<Set<String>> = []
        var path: [String] = []
        var onPath: [String: Int] = [:]
        var stack: [(id: String, targets: [String], next: Int)] = []
        for start in state.instances.keys.sorted() where !finished.contains(start) {
            stack.append((start, targets(of: start), 0))
            path.append(start)
            onPath[start] = 0
            while let top = stack.last {
                guard top.next < top.targets.count else {
                    stack.removeLast()
                    path.removeLast()
                    onPath[top.id] = nil
                    finished.insert(top.id)
                    continue
                }
                stack[stack.count - 1].next += 1
                let target = top.targets[top.next]
                if let index = onPath[target] {
                    reportCycle(Array(path[index...]), reported: &reported)
                } else if !finished.contains(target), state.instances[target] != nil {
                    stack.append((target, targets(of: target), 0))
                    onPath[target] = path.count
                    path.append(target)
                }
            }
        }
    }

    private func targets(of id: String) -> [String] {
        Set(state.instances[id]!.connections.values.map(\.instance)).sorted()
    }

    private mutating func reportCycle(_ cycle: [String], reported: inout Set<Set<String>>) {
        guard reported.insert(Set(cycle)).inserted, let first = cycle.min() else { return }
        let start = cycle.firstIndex(of: first)!
        let rotated = Array(cycle[start...] + cycle[..<start])
        let next = rotated.count > 1 ? rotated[1] : rotated[0]
        let slot = state.instances[first]!.connections.filter { $0.value.instance == next }.keys.min()!
        let node = documents[ResourceKey(.instance, first)]!["spec"]!["connections"]![slot]!
        report(
            node, Shape.join("spec.connections", slot),
            "connection cycle: \((rotated + [first]).joined(separator: " -> "))")
    }

    mutating func checkPreview(_ id: String) {
        let preview = state.previews[id]!
        let document = documents[ResourceKey(.preview, id)]!
        let spec = document["spec"]!
        guard
            require(
                ResourceKey(.project, preview.project), at: document["metadata"]!["project"]!, "metadata.project",
                candidates: { Array($0.projects.keys) })
        else { return }
        let base = Identifier.join(preview.project, preview.baseEnvironment)
        guard
            require(
                ResourceKey(.environment, base), at: spec["baseEnvironment"]!, "spec.baseEnvironment",
                candidates: { Array($0.environments.keys) })
        else { return }
        for (index, pinned) in preview.environmentDefaults.enumerated() {
            let node = spec["environmentDefaults"]!.elements![index]["resourceId"]!
            let path = "spec.environmentDefaults[\(index)].resourceId"
            guard
                require(
                    ResourceKey(.resource, pinned.resourceId), at: node, path, candidates: { Array($0.resources.keys) }),
                let resource = state.resources[pinned.resourceId]
            else { continue }
            if resource.type != pinned.resourceType {
                report(node, path, "resource \(resource.id) is of type \(resource.type), not \(pinned.resourceType)")
            }
        }
        for entry in spec["instances"]?.entries ?? [] {
            _ = require(
                ResourceKey(.instance, Identifier.join(base, entry.key)), at: entry.value,
                Shape.join("spec.instances", entry.key),
                candidates: { state in state.instances.keys.filter { $0.hasPrefix(base + "-") } })
        }
    }
}

extension Provisioner {
    /// How it applies a bundle (`webhook`, `exec` or `cloud`), nil unless exactly one is set.
    var mechanism: String? {
        let set = [("webhook", webhook != nil), ("exec", exec != nil), ("cloud", cloud != nil)].filter(\.1)
        return set.count == 1 ? set[0].0 : nil
    }
}
