import ConvergeCore
import Foundation
import HTTPTypes
import Hummingbird

/// Reading request bodies: capped, and decoded with errors a caller can act on.
enum RequestBodyReader {
    /// The body of `request`, refused with 413 past `limit` bytes: at once when `Content-Length` says so, otherwise
    /// as soon as the bytes read pass it.
    static func collect(_ request: Request, limit: Int) async throws -> Data {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw APIError.bodyTooLarge(limit: limit)
        }
        do {
            return Data(buffer: try await request.body.collect(upTo: limit))
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw APIError.bodyTooLarge(limit: limit)
        }
    }

    /// `body` decoded as JSON into `type`; a mismatch is `invalid_argument` naming the field (`body: field
    /// "attempt": expected an integer`, details `{"field": "attempt"}`), never the decoder's own description.
    static func decode<T: Decodable>(_ type: T.Type, from body: Data) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: body)
        } catch let error as DecodingError {
            throw APIError(Self.error(for: error))
        }
    }

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
                : located(context.codingPath, "invalid value (a number out of range?)")
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
