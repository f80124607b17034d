import ConvergeCore
import Synchronization

/// What one document declares, worked out from that document alone: its shape problems, the key it declares and,
/// when it is sound, the typed resource.
///
/// Nothing here depends on other documents, so the loader keeps the declarations of a file for as long as the
/// file does not change; what does depend on other documents (duplicates, references) is checked by `Load`.
struct Declaration: Sendable {
    /// A sound document's resource, decoded.
    enum Resource: Sendable {
        case project(Project)
        case environment(Environment)
        case resource(ImportedResource)
        /// A bundle with its compiled params schema and the problems of that schema (the bundle is declared either
        /// way; instances of a bundle whose schema has problems are not checked against it).
        case bundle(BundleDefinition, schema: ParamsSchema, schemaProblems: [ManifestDiagnostic])
        case provisioner(Provisioner)
        case instance(Instance)
        case preview(Preview)
    }

    /// The document, for pointing errors at its fields; a sound instance's `spec.params` subtree is not kept here
    /// (the params of thousands of instances were most of the daemon's memory) but handed to `paramsCheck`.
    var document: YAMLNode
    /// Problems of the document's own shape.
    var diagnostics: [ManifestDiagnostic]
    /// The key it declares, nil when its kind or metadata is too broken to tell.
    var key: ResourceKey?
    /// The resource, nil when the document has problems.
    var resource: Resource?
    /// An instance's params checked against its bundle's schema, kept for the next load while neither changes.
    var paramsCheck = ParamsCheck(params: nil, at: SourceLocation(file: "", line: 1, column: 1))

    /// Checks `document` against its kind's shape and, when it is sound, decodes the resource it declares.
    init(_ document: YAMLNode) {
        self.document = document
        diagnostics = []
        key = nil
        resource = nil
        guard document.entries != nil else {
            report(
                document, "",
                "expected a manifest (an object with apiVersion, kind, metadata), got \(document.describedForError)")
            return
        }
        guard let kindNode = document["kind"] else {
            report(document, "kind", "missing required field \"kind\"")
            return
        }
        guard let kind = kindNode.string.flatMap(ResourceKind.init(rawValue:)) else {
            let kinds = ResourceKind.allCases.map(\.rawValue)
            let text = kindNode.string?.quotedForError ?? kindNode.describedForError
            report(
                kindNode, "kind",
                "unknown kind \(text), expected one of \(kinds.joined(separator: ", "))"
                    + (kindNode.string.map { didYouMean($0, among: kinds) } ?? ""))
            return
        }
        KindShapes.document(kind).check(document, path: "", into: &diagnostics)
        guard let metadata = document["metadata"], !diagnostics.contains(where: { $0.path.hasPrefix("metadata") })
        else { return }
        let key = ManifestDecoding.key(kind: kind, metadata: metadata)
        self.key = key
        guard diagnostics.isEmpty else { return }
        resource = Self.decode(kind: kind, id: key.id, metadata: metadata, spec: document["spec"])
        if kind == .instance, let spec = document["spec"] {
            paramsCheck = ParamsCheck(params: spec["params"], at: spec.location)
            self.document = document.removing(field: "params", of: "spec")
        }
    }

    private mutating func report(_ node: YAMLNode, _ path: String, _ message: String) {
        diagnostics.append(ManifestDiagnostic(node.location, path, message))
    }

    /// The resource of a document that matches its kind's shape, so every required field is there.
    private static func decode(kind: ResourceKind, id: String, metadata: YAMLNode, spec: YAMLNode?) -> Resource {
        switch kind {
        case .project:
            return .project(
                Project(id: id, description: spec?["description"]?.string, labels: ManifestDecoding.labels(metadata)))
        case .environment:
            return .environment(ManifestDecoding.environment(id: id, metadata: metadata, spec: spec))
        case .resource:
            return .resource(
                ImportedResource(
                    id: id, project: metadata["project"]!.string!, environment: metadata["environment"]?.string,
                    type: spec!["type"]!.string!, data: spec!["data"]?.value ?? [:],
                    labels: ManifestDecoding.labels(metadata)))
        case .bundle:
            var problems: [ManifestDiagnostic] = []
            let schema: ParamsSchema?
            if let resource = spec!["cloud"]?["resource"]?.string {
                schema = ParamsSchema.cloud[resource]
                if let written = spec!.entries!.first(where: { $0.key == "paramsSchema" }) {
                    problems.append(
                        ManifestDiagnostic(
                            written.keyLocation, "spec.paramsSchema",
                            "a cloud bundle's params schema is its driver's; see converge schema \(resource)"))
                }
            } else {
                schema = spec!["paramsSchema"].map {
                    ParamsSchema.compile($0, path: "spec.paramsSchema", into: &problems)
                }
            }
            return .bundle(
                ManifestDecoding.bundle(id: id, metadata: metadata, spec: spec!), schema: schema ?? .empty,
                schemaProblems: problems)
        case .provisioner:
            return .provisioner(ManifestDecoding.provisioner(id: id, metadata: metadata, spec: spec!))
        case .instance:
            let project = metadata["project"]!.string!
            return .instance(
                Instance(
                    id: id, project: project, environment: Identifier.join(project, metadata["environment"]!.string!),
                    name: metadata["name"]!.string!, bundle: spec!["bundle"]!.string!,
                    version: spec!["version"]?.string, params: spec!["params"]?.value ?? [:], connections: [:],
                    labels: ManifestDecoding.labels(metadata)))
        case .preview:
            return .preview(
                ManifestDecoding.preview(
                    project: metadata["project"]!.string!, name: metadata["name"]!.string!, fields: spec!))
        }
    }
}

/// The outcome of checking one instance document's params against one compiled schema — its violations and its
/// params with the schema's defaults — remembered with the declaration across loads, so a load after an edit
/// re-checks only the instances whose document or bundle changed, and the others keep sharing their params'
/// storage with the previous state (which makes comparing the two states cheap).
///
/// The params' located YAML is kept only until the first check. A later schema (its bundle's file changed) is
/// checked against the decoded params, located at the `params:` key with the exact field path.
final class ParamsCheck: Sendable {
    struct Outcome: Sendable {
        var violations: [ManifestDiagnostic]
        var params: Value
    }

    private let state: Mutex<(node: YAMLNode?, memo: (schema: ObjectIdentifier, outcome: Outcome)?)>
    /// Where the params are written, or their spec when they are not.
    private let location: SourceLocation

    init(params: YAMLNode?, at specLocation: SourceLocation) {
        state = Mutex((params, nil))
        location = params?.location ?? specLocation
    }

    /// The outcome against `schema` for `params` (the decoded ones), computed by `check` from the params' YAML
    /// unless it is remembered for this very schema.
    func outcome(against schema: ParamsSchema, params: Value, _ check: (YAMLNode) -> Outcome) -> Outcome {
        let identity = ObjectIdentifier(schema)
        let (node, memo) = state.withLock { ($0.node, $0.memo) }
        if let memo, memo.schema == identity { return memo.outcome }
        let outcome = check(node ?? YAMLNode(params, at: location))
        state.withLock { $0 = (nil, (identity, outcome)) }
        return outcome
    }
}
