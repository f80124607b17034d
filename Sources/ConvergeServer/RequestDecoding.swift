import ConvergeCore
import Foundation

/// The errors of request bodies that do not decode: `invalid_argument` naming the field (`body: field "attempt":
/// expected an integer`, details `{"field": "attempt"}`), never the decoder's own description.
enum RequestDecoding {
    /// The API error of a decoding error.
    static func error(for error: DecodingError) -> ConvergeError {
        func located(_ path: [any CodingKey], _ problem: String) -> ConvergeError {
            guard !path.isEmpty else { return ConvergeError(.invalidArgument, "body: \(problem)") }
            let field = Self.field(path)
            return ConvergeError(
                .invalidArgument, "body: field \"\(field)\": \(problem)", details: ["field": .string(field)])
        }
        switch error {
        case .typeMismatch(let type, let context):
            return located(context.codingPath, "expected \(Self.name(of: type))")
        case .valueNotFound(let type, let context):
            return located(context.codingPath, "expected \(Self.name(of: type)), got null")
        case .keyNotFound(let key, let context):
            return located(context.codingPath + [key], "required")
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty
                ? ConvergeError(.invalidArgument, "body: expected a JSON document")
                : located(context.codingPath, "not a value the API document allows here")
        @unknown default:
            return ConvergeError(.invalidArgument, "body: expected a JSON document of the documented shape")
        }
    }

    /// `outputs.disks[0].size`: keys joined with dots, array positions in brackets.
    static func field(_ path: [any CodingKey]) -> String {
        var field = ""
        for key in path {
            if let index = key.intValue {
                field += "[\(index)]"
            } else {
                field += field.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return field
    }

    /// What a JSON reader would call a value of `type`: "an integer", "a string", "an object"…
    static func name(of type: Any.Type) -> String {
        switch type {
        case is any BinaryInteger.Type: "an integer"
        case is any BinaryFloatingPoint.Type: "a number"
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is any JSONArrayType.Type: "an array"
        case is any JSONObjectType.Type: "an object"
        case is Value.Type: "a JSON value"
        default: "a value of another type"
        }
    }
}

/// Marks arrays, to name them in decoding errors.
protocol JSONArrayType {}
extension Array: JSONArrayType {}
/// Marks dictionaries, to name them in decoding errors.
protocol JSONObjectType {}
extension Dictionary: JSONObjectType {}
