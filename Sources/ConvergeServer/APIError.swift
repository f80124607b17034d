import ConvergeCore
import Foundation
import HTTPTypes
import Hummingbird

extension ConvergeError.Code {
    /// The HTTP status of each API error code: the one place they are mapped.
    ///
    /// One response departs from it, built here by its own `APIError` constructor so that no handler picks a
    /// status: a request body over the limit is `resource_exhausted` with 413 (`APIError.bodyTooLarge`); 429 stays
    /// for being asked too often.
    public var httpStatus: HTTPResponse.Status {
        switch self {
        case .invalidArgument: .badRequest
        case .notFound: .notFound
        case .alreadyExists: .conflict
        case .failedPrecondition: .preconditionFailed
        case .aborted: .conflict
        case .permissionDenied: .forbidden
        case .unauthenticated: .unauthorized
        case .resourceExhausted: .tooManyRequests
        case .internal: .internalServerError
        case .methodNotAllowed: .methodNotAllowed
        }
    }

    /// The code of an HTTP error raised outside converge's handlers (by the framework), from its status.
    init(status: HTTPResponse.Status) {
        if status == .contentTooLarge {
            self = .resourceExhausted
        } else if let code = Self.allCases.first(where: { $0.httpStatus == status }) {
            self = code
        } else {
            self = status.kind == .serverError ? .internal : .invalidArgument
        }
    }
}

/// A `ConvergeError` as an HTTP response: `{"code", "message", "details"}` with the code's status.
struct APIError: HTTPResponseError {
    let error: ConvergeError
    let status: HTTPResponse.Status
    let headers: HTTPFields

    init(_ error: ConvergeError) {
        self.init(error, status: error.code.httpStatus)
    }

    init(_ code: ConvergeError.Code, _ message: String, details: Value? = nil) {
        self.init(ConvergeError(code, message, details: details))
    }

    private init(_ error: ConvergeError, status: HTTPResponse.Status, headers: HTTPFields = [:]) {
        self.error = error
        self.status = status
        self.headers = headers
    }

    /// 404 for a path no route serves.
    static func noRoute(_ method: HTTPRequest.Method, _ path: String) -> APIError {
        APIError(.notFound, "no route for \(method.rawValue) \(path)")
    }

    /// 405 `method_not_allowed` with `Allow` for a known path asked with another method.
    static func methodNotAllowed(_ method: HTTPRequest.Method, _ path: String, allowed: [HTTPRequest.Method])
        -> APIError
    {
        let names = allowed.map(\.rawValue)
        return APIError(
            ConvergeError(
                .methodNotAllowed,
                "\(method.rawValue) is not allowed on \(path); expected \(names.joined(separator: " or "))",
                details: ["allowedMethods": .array(names.map { .string($0) })]),
            status: .methodNotAllowed, headers: [.allow: names.joined(separator: ", ")])
    }

    /// 413 for a request body over `limit` bytes.
    static func bodyTooLarge(limit: Int) -> APIError {
        APIError(
            ConvergeError(
                .resourceExhausted, "the request body must be at most \(limit) bytes",
                details: ["limitBytes": .int(limit)]),
            status: .contentTooLarge)
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var body: [String: Value] = ["code": .string(error.code.rawValue), "message": .string(error.message)]
        if let details = error.details { body["details"] = details }
        var response = JSONValueResponse(Value.object(body), status: status).response
        response.headers.append(contentsOf: headers)
        return response
    }
}

/// A JSON response from a `Value`.
struct JSONValueResponse: ResponseGenerator {
    let value: Value
    let status: HTTPResponse.Status

    init(_ value: Value, status: HTTPResponse.Status = .ok) {
        self.value = value
        self.status = status
    }

    var response: Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: value.prettyJSON + "\n")))
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        response
    }
}
