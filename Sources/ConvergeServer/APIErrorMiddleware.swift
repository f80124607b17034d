import ConvergeCore
import HTTPTypes
import Hummingbird
import Logging

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
