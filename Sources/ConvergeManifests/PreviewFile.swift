import ConvergeCore

/// A preview file (DESIGN §6): the keys users of other platforms already write, or a `kind: Preview` document.
public enum PreviewFile {
    /// The shape of the plain form: the preview's fields plus its project.
    static let shape = Shape.object(
        [Field("project", .string(.segment), required: true, "the project of the base environment")]
            + KindShapes.previewFields)

    /// Reads a preview from `text`, expanding variables from `environment` in its string values
    /// (`expandingVariables(in:environment:limits:)`).
    ///
    /// The text is parsed first and variables are expanded in the parsed tree, so a value can never add or change a
    /// key; the shape check then runs on the expanded tree, so a value that expanded into something that is not an
    /// identifier where one is expected (a branch name holding a newline) is a located error.
    public static func load(
        _ text: String, file: String, environment: [String: String], limits: YAMLLimits = YAMLLimits()
    ) throws(ManifestErrors) -> Preview {
        let documents: [YAMLNode]
        do {
            documents = try YAMLParser(limits: limits).parse(text, file: file)
        } catch {
            throw ManifestErrors([error])
        }
        let start = SourceLocation(file: file, line: 1, column: 1)
        guard documents.count == 1, let parsed = documents.first else {
            throw ManifestErrors([
                ManifestDiagnostic(start, "", "expected exactly one preview document, got \(documents.count)")
            ])
        }
        let document = try expandingVariables(in: parsed, environment: environment, limits: limits)
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

    /// `document` with the variables in every string scalar value expanded from `environment`; each scalar keeps
    /// its location.
    ///
    /// Only values are expanded: mapping keys stay as written, and so do numbers, booleans and nulls (a plain
    /// scalar that resolved to one has no `$` in it). An expanded value stays one string whatever it holds, since
    /// the tree is already parsed. Every undefined variable and malformed reference is reported, at its scalar and
    /// field path, and then nothing is returned. The expanded values together may hold at most
    /// `limits.maxFileBytes` bytes, as the file itself may, so that aliases of a large variable cannot blow up.
    static func expandingVariables(
        in document: YAMLNode, environment: [String: String], limits: YAMLLimits
    ) throws(ManifestErrors) -> YAMLNode {
        var expansion = VariableExpansion(environment: environment, maxBytes: limits.maxFileBytes)
        let expanded = expansion.expand(document, path: "")
        guard expansion.diagnostics.isEmpty else { throw ManifestErrors(expansion.diagnostics) }
        return expanded
    }

    /// `text` with its variables replaced by their values in `environment`, and the problems found (undefined
    /// variables, malformed references) as messages, each once.
    ///
    /// - `${NAME}` and `$NAME` (`NAME`: ASCII letters, digits and `_`, not starting with a digit) are the value of
    ///   `NAME`; an undefined `NAME` is a problem, one defined as empty is empty.
    /// - `${NAME:-default}` is `default` when `NAME` is undefined or empty, as in a POSIX shell; `default` is
    ///   literal text up to the first `}` and is not expanded again.
    /// - `$$` is a literal `$`.
    /// - Any other `$` (`$5`, `$ `, a trailing `$`) stays as written; a `${` that does not form one of the forms
    ///   above is a problem, since it is most likely a typo.
    ///
    /// A value is inserted as it is: a `$` in it is not expanded again.
    static func expandVariables(in text: String, environment: [String: String]) -> (value: String, problems: [String]) {
        guard text.contains("$") else { return (text, []) }
        var output = ""
        var problems: [String] = []
        func report(_ problem: String) {
            if !problems.contains(problem) { problems.append(problem) }
        }
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            output += rest[..<dollar]
            let reference = rest[dollar...]
            rest = rest[rest.index(after: dollar)...]
            if rest.first == "$" {
                output += "$"
                rest = rest.dropFirst()
                continue
            }
            guard rest.first == "{" else {
                let name = rest.prefix(while: isNameCharacter)
                guard let first = name.first, !first.isNumber else {
                    output += "$"
                    continue
                }
                if let value = environment[String(name)] {
                    output += value
                } else {
                    report(undefined(name))
                }
                rest = rest[name.endIndex...]
                continue
            }
            let body = rest.dropFirst()
            let name = body.prefix(while: isNameCharacter)
            guard let close = body.firstIndex(of: "}"), let first = name.first, !first.isNumber,
                name.endIndex == close || body[name.endIndex...].hasPrefix(":-")
            else {
                let end = body.firstIndex(of: "}").map { body.index(after: $0) } ?? body.endIndex
                report(
                    "malformed variable reference \(String(reference[..<end]).quotedForError) "
                        + "(write ${NAME}, ${NAME:-default}, or $$ for a literal $)")
                output += reference[..<end]
                rest = body[end...]
                continue
            }
            let value = environment[String(name)]
            if name.endIndex == close {
                if let value {
                    output += value
                } else {
                    report(undefined(name))
                }
            } else if let value, !value.isEmpty {
                output += value
            } else {
                output += body[body.index(name.endIndex, offsetBy: 2)..<close]
            }
            rest = body[body.index(after: close)...]
        }
        return (output + rest, problems)
    }

    /// Whether `character` can be part of a variable's name.
    private static func isNameCharacter(_ character: Character) -> Bool {
        character == "_" || (character.isASCII && (character.isLetter || character.isNumber))
    }

    /// The problem of an undefined variable `name`.
    private static func undefined(_ name: Substring) -> String {
        let name = String(name).excerptForError
        return "undefined variable \(name) (set it, or write ${\(name):-default})"
    }
}

/// One expansion of a preview document's variables: the diagnostics found so far and the bytes expanded.
private struct VariableExpansion {
    let environment: [String: String]
    let maxBytes: Int
    var expandedBytes = 0
    var diagnostics: [ManifestDiagnostic] = []

    /// `node`, whose field path is `path`, with its string values expanded.
    mutating func expand(_ node: YAMLNode, path: String) -> YAMLNode {
        var node = node
        switch node.kind {
        case .scalar(.string(let text)):
            guard expandedBytes <= maxBytes else { break }
            let (value, problems) = PreviewFile.expandVariables(in: text, environment: environment)
            diagnostics += problems.map { ManifestDiagnostic(node.location, path, $0) }
            guard value != text else { break }
            expandedBytes += value.utf8.count
            if expandedBytes > maxBytes {
                diagnostics.append(
                    ManifestDiagnostic(
                        node.location, path, "expanded values are more than the limit of \(maxBytes) bytes"))
            }
            node.kind = .scalar(.string(value))
        case .scalar:
            break
        case .sequence(var elements):
            for index in elements.indices {
                elements[index] = expand(elements[index], path: "\(path)[\(index)]")
            }
            node.kind = .sequence(elements)
        case .mapping(var entries):
            for index in entries.indices {
                entries[index].value = expand(entries[index].value, path: Shape.join(path, entries[index].key))
            }
            node.kind = .mapping(entries)
        }
        return node
    }
}
