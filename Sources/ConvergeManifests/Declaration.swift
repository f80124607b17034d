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

    var document: YAMLNode
    /// Problems of the document's own shape.
    var diagnostics: [ManifestDiagnostic]
    /// The key it declares, nil when its kind or metadata is too broken to tell.
    var key: ResourceKey?
    /// The resource, nil when the document has problems.
    var resource: Resource?
    /// An instance's params checked against its bundle's schema, kept for the next load while neither changes.
    let paramsCheck = ParamsCheck()

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
            let schema = spec!["paramsSchema"].map {
                ParamsSchema.compile($0, path: "spec.paramsSchema", into: &problems)
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
final class ParamsCheck: Sendable {
    struct Outcome: Sendable {
        var violations: [ManifestDiagnostic]
        var params: Value
    }

    private let memo = Mutex<(schema: ObjectIdentifier, outcome: Outcome)?>(nil)

    /// The outcome against `schema`, computed by `check` unless it is remembered for this very schema.
    func outcome(against schema: ParamsSchema, _ check: () -> Outcome) -> Outcome {
        let identity = ObjectIdentifier(schema)
        if let remembered = memo.withLock({ $0 }), remembered.schema == identity { return remembered.outcome }
        let outcome = check()
        memo.withLock { $0 = (identity, outcome) }
        return outcome
    }
}
