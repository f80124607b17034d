import ConvergeCore

/// A preview file (DESIGN §6): the keys users of other platforms already write, or a `kind: Preview` document.
public enum PreviewFile {
    /// The shape of the plain form: the preview's fields plus its project.
    static let shape = Shape.object(
        [Field("project", .string(.segment), required: true, "the project of the base environment")]
            + KindShapes.previewFields)

    /// Reads a preview from `text` after expanding `${VAR}` and `$VAR` from `environment` (undefined → empty).
    public static func load(
        _ text: String, file: String, environment: [String: String], limits: YAMLLimits = YAMLLimits()
    ) throws(ManifestErrors) -> Preview {
        let documents: [YAMLNode]
        do {
            documents = try YAMLParser(limits: limits).parse(expand(text, environment: environment), file: file)
        } catch {
            throw ManifestErrors([error])
        }
        let start = SourceLocation(file: file, line: 1, column: 1)
        guard documents.count == 1, let document = documents.first else {
            throw ManifestErrors([
                ManifestDiagnostic(start, "", "expected exactly one preview document, got \(documents.count)")
            ])
        }
        if document["kind"] != nil {
            var load = Load()
            load.declare(document)
            guard load.diagnostics.isEmpty else { throw ManifestErrors(load.diagnostics) }
            guard let preview = load.state.previews.values.first else {
                throw ManifestErrors([ManifestDiagnostic(document.location, "kind", "expected kind Preview")])
            }
            return preview
        }
        var diagnostics: [ManifestDiagnostic] = []
        shape.check(document, path: "", into: &diagnostics)
        guard diagnostics.isEmpty else { throw ManifestErrors(diagnostics) }
        return ManifestDecoding.preview(project: document["project"]!.string!, name: nil, fields: document)
    }

    /// `text` with `${NAME}` and `$NAME` replaced by their values in `environment`; undefined names become empty.
    public static func expand(_ text: String, environment: [String: String]) -> String {
        var output = ""
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            output += rest[..<dollar]
            rest = rest[rest.index(after: dollar)...]
            let braced = rest.first == "{"
            let nameStart = braced ? rest.index(after: rest.startIndex) : rest.startIndex
            let name = rest[nameStart...].prefix { $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }
            let end = name.endIndex
            guard !name.isEmpty, !(name.first!.isNumber), !braced || (end < rest.endIndex && rest[end] == "}") else {
                output += "$"
                continue
            }
            output += environment[String(name)] ?? ""
            rest = rest[(braced ? rest.index(after: end) : end)...]
        }
        return output + rest
    }
}
