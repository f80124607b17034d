import ConvergeCore

/// The JSON-Schema subset of DESIGN §2 that a bundle's `paramsSchema` is written in.
///
/// Keywords: type, properties, required, enum, minimum, maximum, minLength, maxLength, pattern, items,
/// additionalProperties, default (plus the annotations title, description and $schema).
struct ParamsSchema {
    static let keywords = [
        "type", "properties", "required", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern", "items",
        "additionalProperties", "default", "title", "description", "$schema",
    ]
    static let types = ["object", "array", "string", "integer", "number", "boolean", "null"]

    /// Problems of the schema itself, located at the bundle's `spec.paramsSchema` node.
    static func problems(of node: YAMLNode, path: String) -> [ManifestDiagnostic] {
        var diagnostics: [ManifestDiagnostic] = []
        checkSchema(node, path: path, into: &diagnostics)
        return diagnostics
    }

    private static func checkSchema(_ node: YAMLNode, path: String, into diagnostics: inout [ManifestDiagnostic]) {
        func report(_ at: YAMLNode, _ path: String, _ message: String) {
            diagnostics.append(ManifestDiagnostic(at.location, path, message))
        }
        guard let entries = node.entries else { return report(node, path, "a schema must be an object") }
        for entry in entries {
            let at = Shape.join(path, entry.key)
            let value = entry.value
            switch entry.key {
            case "type":
                let names = value.elements?.compactMap(\.string) ?? value.string.map { [$0] } ?? []
                if names.isEmpty { report(value, at, "expected a type name or a list of them") }
                for name in names where !types.contains(name) {
                    report(value, at, "unknown type \"\(name)\"" + didYouMean(name, among: types))
                }
            case "properties":
                guard let properties = value.entries else {
                    report(value, at, "expected object")
                    continue
                }
                for property in properties {
                    checkSchema(property.value, path: Shape.join(at, property.key), into: &diagnostics)
                }
            case "items":
                checkSchema(value, path: at, into: &diagnostics)
            case "additionalProperties":
                if case .bool? = value.scalar { continue }
                checkSchema(value, path: at, into: &diagnostics)
            case "required":
                if value.elements?.allSatisfy({ $0.string != nil }) != true {
                    report(value, at, "expected a list of property names")
                }
            case "enum":
                if value.elements == nil { report(value, at, "expected a list of allowed values") }
            case "minimum", "maximum":
                switch value.scalar {
                case .int?, .double?: break
                default: report(value, at, "expected number")
                }
            case "minLength", "maxLength":
                guard case .int(let int)? = value.scalar, int >= 0 else {
                    report(value, at, "expected a non-negative integer")
                    continue
                }
            case "pattern":
                guard let pattern = value.string, (try? Regex(pattern)) != nil else {
                    report(value, at, "expected a valid regular expression")
                    continue
                }
            case "default", "title", "description", "$schema":
                break
            default:
                diagnostics.append(
                    ManifestDiagnostic(
                        entry.keyLocation, at,
                        "unsupported schema keyword \"\(entry.key)\"" + didYouMean(entry.key, among: keywords)))
            }
        }
    }

    /// Problems of `node` (instance params) against `schema`, each at the offending value.
    static func violations(of node: YAMLNode, schema: Value, path: String) -> [ManifestDiagnostic] {
        var diagnostics: [ManifestDiagnostic] = []
        validate(node, schema: schema, path: path, into: &diagnostics)
        return diagnostics
    }

    private static func validate(
        _ node: YAMLNode, schema: Value, path: String, into diagnostics: inout [ManifestDiagnostic]
    ) {
        func report(_ message: String, at location: SourceLocation = node.location, path: String = path) {
            diagnostics.append(ManifestDiagnostic(location, path, message))
        }
        let value = node.value
        if let type = schema["type"] {
            let allowed = type.stringValue.map { [$0] } ?? (type.arrayValue ?? []).compactMap(\.stringValue)
            guard allowed.contains(where: { matches(value, type: $0) }) else {
                return report("expected \(allowed.joined(separator: " or ")), got \(node.describedForError)")
            }
        }
        if case .array(let allowed)? = schema["enum"], !allowed.contains(value) {
            report(
                "expected one of \(allowed.map(\.canonicalJSON).joined(separator: ", ")), got \(value.canonicalJSON)")
        }
        if let minimum = schema["minimum"]?.numberValue, let number = value.numberValue, number < minimum {
            report("must be at least \(schema["minimum"]!.canonicalJSON), got \(value.canonicalJSON)")
        }
        if let maximum = schema["maximum"]?.numberValue, let number = value.numberValue, number > maximum {
            report("must be at most \(schema["maximum"]!.canonicalJSON), got \(value.canonicalJSON)")
        }
        if let text = value.stringValue {
            if case .int(let minLength)? = schema["minLength"], text.count < minLength {
                report("must be at least \(minLength) characters long, got \(text.count)")
            }
            if case .int(let maxLength)? = schema["maxLength"], text.count > maxLength {
                report("must be at most \(maxLength) characters long, got \(text.count)")
            }
            if let pattern = schema["pattern"]?.stringValue, let regex = try? Regex(pattern), !text.contains(regex) {
                report("\"\(text)\" does not match pattern \(pattern)")
            }
        }
        if let items = node.elements, let itemSchema = schema["items"] {
            for (index, item) in items.enumerated() {
                validate(item, schema: itemSchema, path: "\(path)[\(index)]", into: &diagnostics)
            }
        }
        if let entries = node.entries {
            let properties = schema["properties"]?.objectValue ?? [:]
            for name in (schema["required"]?.arrayValue ?? []).compactMap(\.stringValue)
            where node[name] == nil && properties[name]?["default"] == nil {
                report("missing required property \"\(name)\"", path: Shape.join(path, name))
            }
            for entry in entries {
                let entryPath = Shape.join(path, entry.key)
                if let property = properties[entry.key] {
                    validate(entry.value, schema: property, path: entryPath, into: &diagnostics)
                } else if let additional = schema["additionalProperties"] {
                    if additional == .bool(false) {
                        report(
                            "unknown property \"\(entry.key)\"" + didYouMean(entry.key, among: Array(properties.keys)),
                            at: entry.keyLocation, path: entryPath)
                    } else if additional.objectValue != nil {
                        validate(entry.value, schema: additional, path: entryPath, into: &diagnostics)
                    }
                }
            }
        }
    }

    private static func matches(_ value: Value, type: String) -> Bool {
        switch (type, value) {
        case ("object", .object), ("array", .array), ("string", .string), ("integer", .int), ("number", .int),
            ("number", .double), ("boolean", .bool), ("null", .null):
            true
        default:
            false
        }
    }

    /// `value` with the schema's defaults filled in for absent properties, recursively through present objects.
    static func applyingDefaults(to value: Value, schema: Value) -> Value {
        guard case .object(var members) = value else {
            if case .array(let items) = value, let itemSchema = schema["items"] {
                return .array(items.map { applyingDefaults(to: $0, schema: itemSchema) })
            }
            return value
        }
        for (name, property) in schema["properties"]?.objectValue ?? [:] {
            if let present = members[name] {
                members[name] = applyingDefaults(to: present, schema: property)
            } else if let fallback = property["default"] {
                members[name] = applyingDefaults(to: fallback, schema: property)
            }
        }
        return .object(members)
    }
}

extension Value {
    var arrayValue: [Value]? {
        if case .array(let items) = self { return items }
        return nil
    }

    var numberValue: Double? {
        switch self {
        case .int(let int): Double(int)
        case .double(let double): double
        default: nil
        }
    }
}
