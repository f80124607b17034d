import ConvergeCore

/// Typed resources from documents already checked against their `KindShapes`, so every required field is there
/// and has the right type.
enum ManifestDecoding {
    static func labels(_ metadata: YAMLNode) -> [String: String] {
        var labels: [String: String] = [:]
        for entry in metadata["labels"]?.entries ?? [] where labels[entry.key] == nil {
            labels[entry.key] = entry.value.string
        }
        return labels
    }

    static func stringMap(_ node: YAMLNode?) -> [String: String] {
        var map: [String: String] = [:]
        for entry in node?.entries ?? [] where map[entry.key] == nil { map[entry.key] = entry.value.string }
        return map
    }

    /// The key (kind and id) a document declares.
    static func key(kind: ResourceKind, metadata: YAMLNode) -> ResourceKey {
        let name = metadata["name"]!.string!
        let project = metadata["project"]?.string
        let environment = metadata["environment"]?.string
        switch kind {
        case .project, .bundle, .provisioner:
            return ResourceKey(kind, name)
        case .environment, .preview:
            return ResourceKey(kind, Identifier.join(project!, name))
        case .resource:
            return ResourceKey(kind, [project, environment, name].compactMap { $0 }.joined(separator: "-"))
        case .instance:
            return ResourceKey(kind, Identifier.join(project!, environment!, name))
        }
    }

    static func environment(id: String, metadata: YAMLNode, spec: YAMLNode?) -> Environment {
        Environment(
            id: id, project: metadata["project"]!.string!, name: metadata["name"]!.string!,
            description: spec?["description"]?.string,
            policy: spec?["policy"]?.string.flatMap(ApprovalPolicy.init(rawValue:)) ?? .review,
            prune: spec?["prune"]?.scalar == .bool(true), defaults: stringMap(spec?["defaults"]),
            labels: labels(metadata), retry: spec?["retry"].flatMap(retryPolicy),
            approvers: spec?["approvers"].map { node in
                ApproverRule(
                    principals: node["principals"]?.elements?.compactMap(\.string) ?? [],
                    roles: node["roles"]?.elements?.compactMap(\.string) ?? [])
            },
            reviewSelector: spec?["reviewSelector"].map { LabelSelector(matchLabels: stringMap($0["matchLabels"])) },
            forkOf: spec?["forkOf"]?.string.map { Identifier.join(metadata["project"]!.string!, $0) },
            driftCheck: spec?["driftCheck"]?["every"]?.string.flatMap(ManifestDuration.seconds).map(DriftCheck.init))
    }

    /// `spec.retry` of an environment; absent means no automatic retry.
    static func retryPolicy(_ node: YAMLNode) -> RetryPolicy? {
        guard case .int(let limit)? = node["limit"]?.scalar, let backoff = node["backoff"]?.string,
            let seconds = ManifestDuration.seconds(backoff)
        else { return nil }
        return RetryPolicy(limit: limit, backoff: seconds)
    }

    static func bundle(id: String, metadata: YAMLNode, spec: YAMLNode) -> BundleDefinition {
        var connections: [String: ConnectionSlot] = [:]
        for entry in spec["connections"]?.entries ?? [] where connections[entry.key] == nil {
            connections[entry.key] = ConnectionSlot(
                type: entry.value["type"]!.string!, optional: entry.value["optional"]?.scalar == .bool(true))
        }
        var artifacts: [String: String] = [:]
        for entry in spec["artifacts"]?.entries ?? [] where artifacts[entry.key] == nil {
            artifacts[entry.key] = entry.value["type"]!.string!
        }
        // A cloud bundle's schema is its driver's (it may not declare one: `Declaration` reports that).
        let cloudResource = spec["cloud"]?["resource"]?.string
        let paramsSchema = cloudResource.flatMap { CloudResources.kinds[$0]?.paramsSchema }
        return BundleDefinition(
            id: id, provisioner: spec["provisioner"]!.string!, description: spec["description"]?.string,
            connections: connections, artifacts: artifacts,
            paramsSchema: paramsSchema ?? spec["paramsSchema"]?.value ?? [:], labels: labels(metadata),
            cloudResource: cloudResource)
    }

    static func provisioner(id: String, metadata: YAMLNode, spec: YAMLNode) -> Provisioner {
        let webhook = spec["webhook"].map { node in
            Provisioner.Webhook(
                url: node["url"]!.string!, secretEnv: node["secretEnv"]?.string, timeoutSeconds: timeout(node))
        }
        let exec = spec["exec"].map { node in
            Provisioner.Exec(
                command: node["command"]!.elements!.compactMap(\.string),
                workingDirectory: node["workingDirectory"]?.string, timeoutSeconds: timeout(node))
        }
        let cloud = spec["cloud"].map { node in
            let credentials = node["credentials"]
            let defaults = Provisioner.Cloud.Credentials()
            return Provisioner.Cloud(
                provider: node["provider"]!.string!, region: node["region"]!.string!,
                endpoint: node["endpoint"]?.string,
                credentials: Provisioner.Cloud.Credentials(
                    accessKeyID: credentials?["accessKeyId"]?.string ?? defaults.accessKeyID,
                    secretAccessKey: credentials?["secretAccessKey"]?.string ?? defaults.secretAccessKey,
                    sessionToken: credentials?["sessionToken"]?.string ?? defaults.sessionToken),
                timeoutSeconds: timeout(node))
        }
        return Provisioner(id: id, webhook: webhook, exec: exec, cloud: cloud, labels: labels(metadata))
    }

    static func timeout(_ node: YAMLNode) -> Int {
        if case .int(let seconds)? = node["timeoutSeconds"]?.scalar { return seconds }
        return 600
    }

    /// A preview from its fields, as a `kind: Preview` spec or the top level of a preview file.
    static func preview(project: String, name: String?, fields: YAMLNode) -> Preview {
        var instances: [String: Preview.Override] = [:]
        for entry in fields["instances"]?.entries ?? [] where instances[entry.key] == nil {
            instances[entry.key] = Preview.Override(
                version: entry.value["version"]?.string, params: entry.value["params"]?.value,
                secrets: stringMap(entry.value["secrets"]))
        }
        return Preview(
            project: project, name: name, baseEnvironment: fields["baseEnvironment"]!.string!,
            copyEnvironmentDefaults: fields["copyEnvironmentDefaults"]?.scalar != .bool(false),
            copySecrets: fields["copySecrets"]?.scalar == .bool(true), attributes: fields["attributes"]?.value ?? [:],
            environmentDefaults: (fields["environmentDefaults"]?.elements ?? []).map {
                Preview.Default(resourceType: $0["resourceType"]!.string!, resourceId: $0["resourceId"]!.string!)
            },
            instances: instances, ttlSeconds: fields["ttl"]?.string.flatMap(seconds(of:)))
    }

    /// Seconds in a duration such as `30m`, `72h` or `7d`.
    static func seconds(of duration: String) -> Int? {
        guard let unit = duration.last, let count = Int(duration.dropLast()) else { return nil }
        let scale = ["s": 1, "m": 60, "h": 3600, "d": 86400][unit]
        return scale.map { count * $0 }
    }
}
