import ConvergeCore

extension Shape {
    /// The JSON Schema (draft 2020-12) of this shape, for editors.
    public var jsonSchema: Value { jsonSchema(allowingVariables: false) }

    /// The JSON Schema of this shape; with `allowingVariables`, a string value that holds a `$` passes whatever rule
    /// it has, since a preview file's values are checked only after their variables are expanded
    /// (`PreviewFile.expandingVariables(in:environment:limits:)`).
    func jsonSchema(allowingVariables: Bool) -> Value {
        switch self {
        case .string(let rule):
            guard allowingVariables, rule != .any, var schema = rule.jsonSchema.objectValue else {
                return rule.jsonSchema
            }
            schema["type"] = nil
            return ["type": "string", "anyOf": [.object(schema), ["pattern": "\\$"]]]
        case .integer(let minimum, let maximum):
            var schema: [String: Value] = ["type": "integer"]
            if let minimum { schema["minimum"] = .int(minimum) }
            if let maximum { schema["maximum"] = .int(maximum) }
            return .object(schema)
        case .boolean:
            return ["type": "boolean"]
        case .object(let fields):
            var properties: [String: Value] = [:]
            for field in fields {
                var property = field.shape.jsonSchema(allowingVariables: allowingVariables).objectValue ?? [:]
                property["description"] = .string(field.summary)
                properties[field.name] = .object(property)
            }
            var schema: [String: Value] = [
                "type": "object", "properties": .object(properties), "additionalProperties": false,
            ]
            let required = fields.filter(\.required).map { Value.string($0.name) }
            if !required.isEmpty { schema["required"] = .array(required) }
            return .object(schema)
        case .map(let keys, let values):
            return [
                "type": "object", "propertyNames": keys.jsonSchema,
                "additionalProperties": values.jsonSchema(allowingVariables: allowingVariables),
            ]
        case .array(let elements):
            return ["type": "array", "items": elements.jsonSchema(allowingVariables: allowingVariables)]
        case .anyObject:
            return ["type": "object"]
        }
    }
}

extension Shape.StringRule {
    var jsonSchema: Value {
        switch self {
        case .any: ["type": "string"]
        case .identifier: ["type": "string", "pattern": .string(Self.identifierPattern)]
        case .segment: ["type": "string", "pattern": .string(Self.segmentPattern)]
        case .oneOf(let allowed): ["type": "string", "enum": .array(allowed.map { .string($0) })]
        case .pattern(let pattern, _): ["type": "string", "pattern": .string("^(?:\(pattern.source))$")]
        case .duration: ["type": "string", "pattern": .string("^\(ManifestDuration.pattern)$")]
        }
    }
}

extension KindShapes {
    /// The JSON Schema document of `kind`, with its id and title, as `manifests/schemas/<kind>.json` holds it.
    ///
    /// A preview's is that of a preview file (`PreviewFile.load`): a `kind: Preview` document, or else the plain form,
    /// either with variables in its string values.
    public static func jsonSchema(_ kind: ResourceKind) -> Value {
        var schema: [String: Value]
        if kind == .preview {
            schema = [
                "if": ["required": ["kind"]],
                "then": document(.preview).jsonSchema(allowingVariables: true),
                "else": PreviewFile.shape.jsonSchema(allowingVariables: true),
            ]
        } else {
            schema = document(kind).jsonSchema.objectValue ?? [:]
        }
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = .string("https://converge.dev/schemas/\(kind.rawValue.lowercased()).json")
        schema["title"] = .string("converge \(kind.rawValue)")
        return .object(schema)
    }
}
