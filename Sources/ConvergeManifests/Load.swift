import ConvergeCore

/// One manifest load in progress: declared resources with their documents, and every problem found so far.
struct Load {
    var state = DesiredState()
    var diagnostics: [ManifestDiagnostic] = []
    /// The document of every declared resource, for pointing errors at its fields.
    var documents: [ResourceKey: YAMLNode] = [:]
    /// Resources declared by a document with errors: references to them are not reported again as dangling.
    var broken: Set<ResourceKey> = []
    /// The compiled params schema of every sound bundle.
    var schemas: [String: ParamsSchema] = [:]
    /// The remembered params check of every sound instance's declaration.
    var paramsChecks: [String: ParamsCheck] = [:]

    mutating func report(_ node: YAMLNode, _ path: String, _ message: String) {
        diagnostics.append(ManifestDiagnostic(node.location, path, message))
    }

    /// Checks a document's shape and, when it is sound, declares the resource it describes.
    mutating func declare(_ document: YAMLNode) {
        add(Declaration(document))
    }

    /// Adds what one document declares: its problems, and its resource unless another document declared the same
    /// key first. One dictionary probe per document.
    mutating func add(_ declaration: Declaration) {
        diagnostics += declaration.diagnostics
        guard let key = declaration.key else { return }
        let document = declaration.document
        if let first = state.sources[key] ?? documents[key].map(\.location) {
            return report(
                document["metadata"]!["name"]!, "metadata.name", "duplicate \(key), first declared at \(first)")
        }
        documents[key] = document
        guard let resource = declaration.resource else {
            broken.insert(key)
            return
        }
        state.sources[key] = document.location
        switch resource {
        case .project(let project): state.projects[key.id] = project
        case .environment(let environment): state.environments[key.id] = environment
        case .resource(let resource): state.resources[key.id] = resource
        case .bundle(let bundle, let schema, let problems):
            state.bundles[key.id] = bundle
            schemas[key.id] = schema
            if !problems.isEmpty {
                diagnostics += problems
                broken.insert(key)
            }
        case .provisioner(let provisioner): state.provisioners[key.id] = provisioner
        case .instance(let instance):
            state.instances[key.id] = instance
            paramsChecks[key.id] = declaration.paramsCheck
        case .preview(let preview): state.previews[key.id] = preview
        }
    }

    /// Whether `key` is declared, soundly or not; reports a dangling reference at `node` when it is not.
    ///
    /// `candidates` lists the names a "did you mean" may suggest; it is called only when there is an error to explain.
    mutating func require(
        _ key: ResourceKey, at node: YAMLNode, _ path: String, candidates: (DesiredState) -> [String]
    ) -> Bool {
        if documents[key] != nil { return state.sources[key] != nil }
        report(
            node, path,
            "unknown \(key.kind.rawValue.lowercased()) \(key.id.quotedForError)"
                + didYouMean(key.id, among: candidates(state))
        )
        return false
    }
}
