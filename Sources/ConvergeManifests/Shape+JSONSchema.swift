import ConvergeCore

extension Shape {
    /// The JSON Schema (draft 2020-12) of this shape, for editors.
    public var jsonSchema: Value {
        switch self {
        case .string(let rule):
            return rule.jsonSchema
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
                var property = field.shape.jsonSchema.objectValue ?? [:]
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
            return ["type": "object", "propertyNames": keys.jsonSchema, "additionalProperties": values.jsonSchema]
        case .array(let elements):
            return ["type": "array", "items": elements.jsonSchema]
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
    public static func jsonSchema(_ kind: ResourceKind) -> Value {
        var schema = document(kind).jsonSchema.objectValue ?? [:]
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = .string("https://converge.dev/schemas/\(kind.rawValue.lowercased()).json")
        schema["title"] = .string("converge \(kind.rawValue)")
        return .object(schema)
    }
}
