import ConvergeCore

extension Shape {
    /// Checks `node` against this shape, appending every problem (wrong types, missing and unknown fields,
    /// duplicate keys, bad identifiers) to `diagnostics`; `path` is the field path of `node`.
    func check(_ node: YAMLNode, path: String, into diagnostics: inout [ManifestDiagnostic]) {
        func report(_ message: String, at location: SourceLocation = node.location, path: String = path) {
            diagnostics.append(ManifestDiagnostic(location, path, message))
        }
        switch self {
        case .string(let rule):
            guard let text = node.string else { return report("expected string, got \(node.describedForError)") }
            if let problem = rule.problem(with: text) { report(problem) }
        case .integer(let minimum, let maximum):
            guard case .int(let int)? = node.scalar else {
                return report("expected integer, got \(node.describedForError)")
            }
            if let minimum, int < minimum { report("must be at least \(minimum), got \(int)") }
            if let maximum, int > maximum { report("must be at most \(maximum), got \(int)") }
        case .boolean:
            guard case .bool? = node.scalar else { return report("expected boolean, got \(node.describedForError)") }
        case .object(let fields):
            guard let entries = node.entries else { return report("expected object, got \(node.describedForError)") }
            Shape.checkDuplicates(entries, path: path, into: &diagnostics)
            for entry in entries {
                if let field = fields.first(where: { $0.name == entry.key }) {
                    field.shape.check(entry.value, path: Shape.join(path, entry.key), into: &diagnostics)
                } else {
                    report(
                        "unknown field \(entry.key.quotedForError)" + didYouMean(entry.key, among: fields.map(\.name)),
                        at: entry.keyLocation, path: Shape.keyPath(path, entry.key))
                }
            }
            for field in fields where field.required && node[field.name] == nil {
                report("missing required field \"\(field.name)\"", path: Shape.join(path, field.name))
            }
        case .map(let keys, let values):
            guard let entries = node.entries else { return report("expected object, got \(node.describedForError)") }
            Shape.checkDuplicates(entries, path: path, into: &diagnostics)
            for entry in entries {
                if let problem = keys.problem(with: entry.key) {
                    report(problem, at: entry.keyLocation, path: Shape.keyPath(path, entry.key))
                }
                values.check(entry.value, path: Shape.join(path, entry.key), into: &diagnostics)
            }
        case .array(let elements):
            guard let items = node.elements else { return report("expected array, got \(node.describedForError)") }
            for (index, item) in items.enumerated() {
                elements.check(item, path: "\(path)[\(index)]", into: &diagnostics)
            }
        case .anyObject:
            guard node.entries != nil else { return report("expected object, got \(node.describedForError)") }
            Shape.checkDuplicatesDeeply(node, path: path, into: &diagnostics)
        }
    }

    /// The field path of `key` below `path`; a long key is cut short (`String.excerptForError`).
    static func join(_ path: String, _ key: String) -> String {
        let key = key.excerptForError
        return path.isEmpty ? key : "\(path).\(key)"
    }

    /// The field path of a problem with `key` itself, whose message quotes the key: a key too long to quote whole
    /// is named once, in the message, and the path stops at the mapping that holds it.
    static func keyPath(_ path: String, _ key: String) -> String {
        key.isTooLongToQuote ? path : join(path, key)
    }

    /// Reports every key of `entries` that an earlier entry already has; one dictionary probe per entry.
    static func checkDuplicates(_ entries: [YAMLNode.Entry], path: String, into diagnostics: inout [ManifestDiagnostic])
    {
        var first: [String: SourceLocation] = [:]
        first.reserveCapacity(entries.count)
        for entry in entries {
            if let earlier = first[entry.key] {
                diagnostics.append(
                    ManifestDiagnostic(
                        entry.keyLocation, keyPath(path, entry.key),
                        "duplicate key \(entry.key.quotedForError) (first at line \(earlier.line), column \(earlier.column))"
                    ))
            } else {
                first[entry.key] = entry.keyLocation
            }
        }
    }

    /// Duplicate keys anywhere below a free-form node (params, data) are errors too.
    static func checkDuplicatesDeeply(_ node: YAMLNode, path: String, into diagnostics: inout [ManifestDiagnostic]) {
        switch node.kind {
        case .scalar: break
        case .sequence(let items):
            for (index, item) in items.enumerated() where item.scalar == nil {
                checkDuplicatesDeeply(item, path: "\(path)[\(index)]", into: &diagnostics)
            }
        case .mapping(let entries):
            checkDuplicates(entries, path: path, into: &diagnostics)
            for entry in entries where entry.value.scalar == nil {
                checkDuplicatesDeeply(entry.value, path: join(path, entry.key), into: &diagnostics)
            }
        }
    }
}

extension YAMLNode {
    /// The node's type, and its text when it is a short scalar: `string "large"`, `integer 5`, `object`.
    var describedForError: String {
        guard let scalar else { return typeDescription }
        switch scalar {
        case .null: return "null"
        case .string(let text): return text.prefix(41).count <= 40 ? "string \"\(text)\"" : "string"
        default: return "\(scalar.typeName) \(scalar.canonicalJSON)"
        }
    }
}
