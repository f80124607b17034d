import ConvergeCore
import Foundation
import HTTPTypes
import Hummingbird

extension ConvergeError.Code {
    /// The HTTP status of each API error code: the one place they are mapped.
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
        }
    }
}

/// A `ConvergeError` as an HTTP response: `{"code", "message", "details"}` with the code's status.
struct APIError: HTTPResponseError {
    let error: ConvergeError

    init(_ error: ConvergeError) {
        self.error = error
    }

    init(_ code: ConvergeError.Code, _ message: String) {
        self.error = ConvergeError(code, message)
    }

    var status: HTTPResponse.Status { error.code.httpStatus }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var body: [String: Value] = ["code": .string(error.code.rawValue), "message": .string(error.message)]
        if let details = error.details { body["details"] = details }
        return JSONValueResponse(Value.object(body), status: status).response
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
