import ConvergeCore

/// A bundle's `paramsSchema`, the JSON-Schema subset of DESIGN §2, read once into what each keyword asks.
///
/// Keywords: type, properties, required, enum, minimum, maximum, minLength, maxLength, pattern, items,
/// additionalProperties, default (plus the annotations title, description and $schema). A schema is compiled when
/// its bundle's document is read (its `pattern` compiled then), and the result is used for every instance of the
/// bundle, so validating params never looks a keyword up or compiles a regular expression.
final class ParamsSchema: Sendable {
    static let keywords = [
        "type", "properties", "required", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern", "items",
        "additionalProperties", "default", "title", "description", "$schema",
    ]
    static let typeNames = ["object", "array", "string", "integer", "number", "boolean", "null"]

    /// What `additionalProperties` says of members that `properties` does not name.
    enum Additional: Sendable {
        /// Allowed and unchecked (the keyword is absent or `true`).
        case allowed
        /// Refused (`false`).
        case refused
        /// Checked against a schema.
        case schema(ParamsSchema)
    }

    /// The allowed JSON types, nil when any is.
    let types: [String]?
    let properties: [String: ParamsSchema]
    let required: [String]
    let allowedValues: [Value]?
    let minimum: Value?
    let maximum: Value?
    let minLength: Int?
    let maxLength: Int?
    let pattern: Pattern?
    let items: ParamsSchema?
    let additional: Additional
    let defaultValue: Value?

    /// The schema that allows anything (a bundle without `paramsSchema`).
    static let empty = ParamsSchema(
        YAMLNode(kind: .mapping([]), location: SourceLocation(file: "", line: 1, column: 1)))

    /// Reads `node`, a bundle's `spec.paramsSchema` at `path`, reporting every problem of the schema itself.
    ///
    /// The schema returned is meaningful only when nothing was reported.
    static func compile(_ node: YAMLNode, path: String, into diagnostics: inout [ManifestDiagnostic]) -> ParamsSchema {
        checkSchema(node, path: path, into: &diagnostics)
        return ParamsSchema(node)
    }

    /// The schema of a node already checked by `checkSchema`: the first of duplicate keys wins, as in `Value`.
    private init(_ node: YAMLNode) {
        var first: [String: YAMLNode] = [:]
        for entry in node.entries ?? [] where first[entry.key] == nil { first[entry.key] = entry.value }
        let type = first["type"]
        types = type.map { $0.elements?.compactMap(\.string) ?? $0.string.map { [$0] } ?? [] }
        var properties: [String: ParamsSchema] = [:]
        for property in first["properties"]?.entries ?? [] where properties[property.key] == nil {
            properties[property.key] = ParamsSchema(property.value)
        }
        self.properties = properties
        required = first["required"]?.elements?.compactMap(\.string) ?? []
        allowedValues = first["enum"]?.elements?.map(\.value)
        minimum = first["minimum"]?.scalar.flatMap { $0.numberValue == nil ? nil : $0 }
        maximum = first["maximum"]?.scalar.flatMap { $0.numberValue == nil ? nil : $0 }
        if case .int(let length)? = first["minLength"]?.scalar { minLength = length } else { minLength = nil }
        if case .int(let length)? = first["maxLength"]?.scalar { maxLength = length } else { maxLength = nil }
        pattern = first["pattern"]?.string.flatMap(Pattern.init(validating:))
        items = first["items"].map(ParamsSchema.init)
        switch first["additionalProperties"] {
        case nil: additional = .allowed
        case let node? where node.scalar == .bool(false): additional = .refused
        case let node? where node.entries != nil: additional = .schema(ParamsSchema(node))
        default: additional = .allowed
        }
        defaultValue = first["default"]?.value
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
                for name in names where !typeNames.contains(name) {
                    report(value, at, "unknown type \(name.quotedForError)" + didYouMean(name, among: typeNames))
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
                guard let pattern = value.string, Pattern(validating: pattern) != nil else {
                    report(value, at, "expected a valid regular expression")
                    continue
                }
            case "default", "title", "description", "$schema":
                break
            default:
                diagnostics.append(
                    ManifestDiagnostic(
                        entry.keyLocation, Shape.keyPath(path, entry.key),
                        "unsupported schema keyword \(entry.key.quotedForError)"
                            + didYouMean(entry.key, among: keywords)
                    ))
            }
        }
    }

    /// Problems of `node` (instance params) against this schema, each at the offending value.
    func violations(of node: YAMLNode, path: String) -> [ManifestDiagnostic] {
        var diagnostics: [ManifestDiagnostic] = []
        validate(node, path: path, into: &diagnostics)
        return diagnostics
    }

    /// Checks one node; every node of the params is visited once, and only `enum` looks at a whole subtree.
    private func validate(_ node: YAMLNode, path: String, into diagnostics: inout [ManifestDiagnostic]) {
        func report(_ message: String, at location: SourceLocation = node.location, path: String = path) {
            diagnostics.append(ManifestDiagnostic(location, path, message))
        }
        if let types, !types.contains(where: { Self.matches(node, type: $0) }) {
            return report("expected \(types.joined(separator: " or ")), got \(node.describedForError)")
        }
        if let allowedValues {
            let value = node.value
            if !allowedValues.contains(value) {
                report(
                    "expected one of \(allowedValues.map(\.canonicalJSON).joined(separator: ", ")), got "
                        + value.canonicalJSON.excerptForError)
            }
        }
        if let scalar = node.scalar {
            if let minimum, let number = scalar.numberValue, number < minimum.numberValue! {
                report("must be at least \(minimum.canonicalJSON), got \(scalar.canonicalJSON)")
            }
            if let maximum, let number = scalar.numberValue, number > maximum.numberValue! {
                report("must be at most \(maximum.canonicalJSON), got \(scalar.canonicalJSON)")
            }
            if let text = scalar.stringValue {
                validate(text: text, report: { report($0) })
            }
        }
        if let elements = node.elements, let items {
            for (index, item) in elements.enumerated() {
                items.validate(item, path: "\(path)[\(index)]", into: &diagnostics)
            }
        }
        if let entries = node.entries {
            if !required.isEmpty {
                let present = Set(entries.map(\.key))
                for name in required where !present.contains(name) && properties[name]?.defaultValue == nil {
                    report("missing required property \(name.quotedForError)", path: Shape.join(path, name))
                }
            }
            for entry in entries {
                if let property = properties[entry.key] {
                    property.validate(entry.value, path: Shape.join(path, entry.key), into: &diagnostics)
                    continue
                }
                switch additional {
                case .allowed:
                    break
                case .refused:
                    report(
                        "unknown property \(entry.key.quotedForError)"
                            + didYouMean(entry.key, among: Array(properties.keys)),
                        at: entry.keyLocation, path: Shape.keyPath(path, entry.key))
                case .schema(let schema):
                    schema.validate(entry.value, path: Shape.join(path, entry.key), into: &diagnostics)
                }
            }
        }
    }

    /// The length and pattern rules of a string.
    private func validate(text: String, report: (String) -> Void) {
        if let minLength, text.count < minLength {
            report("must be at least \(minLength) characters long, got \(text.count)")
        }
        if let maxLength, text.count > maxLength {
            report("must be at most \(maxLength) characters long, got \(text.count)")
        }
        if let pattern, !pattern.matchesPart(of: text) {
            report("\(text.quotedForError) does not match pattern \(pattern.source)")
        }
    }

    private static func matches(_ node: YAMLNode, type: String) -> Bool {
        switch (type, node.kind) {
        case ("object", .mapping), ("array", .sequence):
            return true
        case (_, .scalar(let value)):
            switch (type, value) {
            case ("string", .string), ("integer", .int), ("number", .int), ("number", .double), ("boolean", .bool),
                ("null", .null):
                return true
            default:
                return false
            }
        default:
            return false
        }
    }

    /// `value` with the schema's defaults filled in for absent properties, recursively through present objects.
    func applyingDefaults(to value: Value) -> Value {
        guard case .object(var members) = value else {
            if case .array(let elements) = value, let items {
                return .array(elements.map { items.applyingDefaults(to: $0) })
            }
            return value
        }
        for (name, property) in properties {
            if let present = members[name] {
                members[name] = property.applyingDefaults(to: present)
            } else if let fallback = property.defaultValue {
                members[name] = property.applyingDefaults(to: fallback)
            }
        }
        return .object(members)
    }
}

extension Value {
    var numberValue: Double? {
        switch self {
        case .int(let int): Double(int)
        case .double(let double): double
        default: nil
        }
    }
}
