import ConvergeCore

/// One manifest load in progress: declared resources with their documents, and every problem found so far.
struct Load {
    var state = DesiredState()
    var diagnostics: [ManifestDiagnostic] = []
    /// The document of every declared resource, for pointing errors at its fields.
    var documents: [ResourceKey: YAMLNode] = [:]
    /// Resources declared by a document with errors: references to them are not reported again as dangling.
    var broken: Set<ResourceKey> = []

    mutating func report(_ node: YAMLNode, _ path: String, _ message: String) {
        diagnostics.append(ManifestDiagnostic(node.location, path, message))
    }

    /// Checks a document's shape and, when it is sound, declares the resource it describes.
    mutating func declare(_ document: YAMLNode) {
        guard document.entries != nil else {
            return report(
                document, "",
                "expected a manifest (an object with apiVersion, kind, metadata), got \(document.describedForError)")
        }
        let kinds = ResourceKind.allCases.map(\.rawValue)
        guard let kindNode = document["kind"] else {
            return report(document, "kind", "missing required field \"kind\"")
        }
        guard let kind = kindNode.string.flatMap(ResourceKind.init(rawValue:)) else {
            let text = kindNode.string ?? kindNode.describedForError
            return report(
                kindNode, "kind",
                "unknown kind \"\(text)\", expected one of \(kinds.joined(separator: ", "))"
                    + didYouMean(text, among: kinds)
            )
        }
        let before = diagnostics.count
        KindShapes.document(kind).check(document, path: "", into: &diagnostics)
        let metadata = document["metadata"]
        let nameIsValid = !diagnostics[before...].contains { $0.path.hasPrefix("metadata") }
        guard let metadata, nameIsValid else { return }
        let key = ManifestDecoding.key(kind: kind, metadata: metadata)
        if let first = state.sources[key] ?? documents[key].map(\.location) {
            return report(metadata["name"]!, "metadata.name", "duplicate \(key), first declared at \(first)")
        }
        documents[key] = document
        guard diagnostics.count == before else {
            broken.insert(key)
            return
        }
        state.sources[key] = document.location
        let spec = document["spec"]
        switch kind {
        case .project:
            state.projects[key.id] = Project(
                id: key.id, description: spec?["description"]?.string, labels: ManifestDecoding.labels(metadata))
        case .environment:
            state.environments[key.id] = ManifestDecoding.environment(id: key.id, metadata: metadata, spec: spec)
        case .resource:
            state.resources[key.id] = ImportedResource(
                id: key.id, project: metadata["project"]!.string!, environment: metadata["environment"]?.string,
                type: spec!["type"]!.string!, data: spec!["data"]?.value ?? [:],
                labels: ManifestDecoding.labels(metadata))
        case .bundle:
            state.bundles[key.id] = ManifestDecoding.bundle(id: key.id, metadata: metadata, spec: spec!)
        case .provisioner:
            state.provisioners[key.id] = ManifestDecoding.provisioner(id: key.id, metadata: metadata, spec: spec!)
        case .instance:
            let project = metadata["project"]!.string!
            state.instances[key.id] = Instance(
                id: key.id, project: project, environment: Identifier.join(project, metadata["environment"]!.string!),
                name: metadata["name"]!.string!, bundle: spec!["bundle"]!.string!, version: spec!["version"]?.string,
                params: spec!["params"]?.value ?? [:], connections: [:], labels: ManifestDecoding.labels(metadata))
        case .preview:
            state.previews[key.id] = ManifestDecoding.preview(
                project: metadata["project"]!.string!, name: metadata["name"]!.string!, fields: spec!)
        }
    }

    /// Whether `key` is declared, soundly or not; reports a dangling reference at `node` when it is not.
    mutating func require(_ key: ResourceKey, at node: YAMLNode, _ path: String, candidates: [String]) -> Bool {
        if documents[key] != nil { return state.sources[key] != nil }
        report(
            node, path,
            "unknown \(key.kind.rawValue.lowercased()) \"\(key.id)\"" + didYouMean(key.id, among: candidates))
        return false
    }
}
