import ConvergeAPI
import ConvergeCore
import HTTPTypes
import Hummingbird
import Logging
import OpenAPIRuntime

/// Turns whatever a request ends in into the API's one error shape: converge's errors keep their code, the
/// router's "no route" becomes 404 or, for a known path with another method, 405, and anything unexpected is an
/// `internal` error whose cause goes to the log, not to the caller.
///
/// Added to the router before any route, so it also wraps the router's not-found responder.
struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteTable
    /// The request body limit, for the error of a body the framework found too large.
    let maxBodyBytes: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        do {
            return try await next(request, context)
        } catch {
            return try apiError(for: error, request: request, context: context).response(
                from: request, context: context)
        }
    }

    func apiError(for error: any Error, request: Request, context: Context) -> APIError {
        switch error {
        case let error as ServerError:
            // An operation of the document failed: in a middleware, while decoding the request, or in the handler.
            switch error.underlyingError {
            case is DecodingError
            where error.requestMetadata.pathParameters["kind"].map {
                Components.Schemas.ResourceKind(rawValue: String($0)) == nil
            } == true:
                let kind = String(error.requestMetadata.pathParameters["kind"] ?? "")
                let kinds = Components.Schemas.ResourceKind.allCases.map(\.rawValue)
                return APIError(
                    .notFound,
                    "unknown kind \(kind)" + didYouMean(kind, among: kinds)
                        + " (kinds: \(kinds.joined(separator: ", ")))",
                    details: ["kind": .string(kind)])
            case let decoding as DecodingError:
                return APIError(RequestDecoding.error(for: decoding))
            case let underlying as APIError:
                return underlying
            case let underlying as ConvergeError:
                return APIError(underlying)
            default:
                guard (400..<500).contains(error.httpStatus.code) else {
                    return apiError(for: error.underlyingError, request: request, context: context)
                }
                // The runtime's own refusals (a missing body, a content type or a parameter it cannot read).
                if error.causeDescription.hasPrefix("Missing required request body") {
                    return APIError(.invalidArgument, "body: expected a JSON document, got none")
                }
                return APIError(
                    ConvergeError.Code(
                        status: error.httpStatus == .unsupportedMediaType ? .badRequest : error.httpStatus),
                    "request: \(error.causeDescription.prefix(1).lowercased() + error.causeDescription.dropFirst())")
            }
        case let error as APIError:
            return error
        case let error as ConvergeError:
            return APIError(error)
        case let error as HTTPError where error.status == .notFound:
            let path = request.uri.path
            let methods = routes.methods(forPath: path)
            if methods.isEmpty { return .noRoute(request.method, path) }
            if !methods.contains(request.method) { return .methodNotAllowed(request.method, path, allowed: methods) }
            return APIError(.notFound, error.body ?? "not found")
        case let error as any HTTPResponseError where error.status == .contentTooLarge:
            return .bodyTooLarge(limit: maxBodyBytes)
        case let error as any HTTPResponseError:
            let message = (error as? HTTPError)?.body ?? error.status.reasonPhrase.lowercased()
            return APIError(ConvergeError.Code(status: error.status), message)
        default:
            context.logger.error(
                "request failed", metadata: ["error": "\(error)", "http.path": "\(request.uri.path)"])
            return APIError(.internal, "the request failed inside the daemon; its log has the cause")
        }
    }
}
