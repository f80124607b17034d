import ConvergeAPI
import ConvergeCore
import Foundation
import HTTPTypes
import OpenAPIRuntime

/// How an operation is authenticated, and the least role it needs.
enum Access: Equatable, Sendable {
    /// Health, readiness, version and metrics: open to anyone who reaches the port.
    case open
    /// A provisioner's callback: the per-attempt token it was given.
    case callbackToken
    /// The git push webhook: the HMAC of its payload, checked by the handler.
    case gitSignature
    /// A bearer token from the tokens file whose role is at least this one.
    case role(Role)

    /// Every operation of the document and its access: the one place authorization is decided. A test checks that
    /// every operation of `openapi.yaml` is here.
    static let operations: [String: Access] = [
        Operations.GetHealth.id: .open,
        Operations.GetVersion.id: .open,
        Operations.GetReadiness.id: .open,
        Operations.GetMetrics.id: .open,
        Operations.HeadHealth.id: .open,
        Operations.HeadReadiness.id: .open,
        Operations.HeadMetrics.id: .open,
        Operations.ReportDeploymentEvent.id: .callbackToken,
        Operations.ReceiveGitPush.id: .gitSignature,
        Operations.GetPrincipal.id: .role(.viewer),
        Operations.ListResources.id: .role(.viewer),
        Operations.GetResource.id: .role(.viewer),
        Operations.ListInstances.id: .role(.viewer),
        Operations.GetInstance.id: .role(.viewer),
        Operations.ListInstanceSecrets.id: .role(.viewer),
        Operations.ListDeployments.id: .role(.viewer),
        Operations.GetDeployment.id: .role(.viewer),
        Operations.ListDeploymentEvents.id: .role(.viewer),
        Operations.CompareDeployments.id: .role(.viewer),
        Operations.CompareEnvironments.id: .role(.viewer),
        Operations.WatchDeployments.id: .role(.viewer),
        Operations.ListAudit.id: .role(.viewer),
        Operations.ListRollouts.id: .role(.viewer),
        Operations.GetRollout.id: .role(.viewer),
        Operations.GetPreview.id: .role(.viewer),
        Operations.RequestSync.id: .role(.deployer),
        Operations.CreateDeployment.id: .role(.deployer),
        Operations.PlanDeployment.id: .role(.deployer),
        Operations.AbortDeployment.id: .role(.deployer),
        Operations.RollbackInstance.id: .role(.deployer),
        Operations.SetInstanceSecret.id: .role(.deployer),
        Operations.DeleteInstanceSecret.id: .role(.deployer),
        Operations.ApplyResource.id: .role(.deployer),
        Operations.ForkEnvironment.id: .role(.deployer),
        Operations.DeleteEnvironment.id: .role(.deployer),
        Operations.OrphanInstance.id: .role(.deployer),
        Operations.CopyInstance.id: .role(.deployer),
        Operations.SetEnvironmentDefault.id: .role(.deployer),
        Operations.DeployEnvironment.id: .role(.deployer),
        Operations.DecommissionEnvironment.id: .role(.deployer),
        Operations.ApplyPreview.id: .role(.deployer),
        Operations.DestroyPreview.id: .role(.deployer),
        Operations.DeleteResource.id: .role(.deployer),
        Operations.ApproveDeployment.id: .role(.approver),
        Operations.RejectDeployment.id: .role(.approver),
    ]
}

/// The principal of the request being handled, set by `AuthenticationMiddleware` for the handler.
enum RequestPrincipal {
    @TaskLocal static var current: Principal?
    /// The callback token of a provisioner's report, checked against its deployment.
    @TaskLocal static var callbackToken: String?

    /// The caller, for a handler of an operation that needs a role (the middleware let it through only with one).
    static func required() throws -> Principal {
        guard let current else { throw ConvergeError(.unauthenticated, "this operation needs a bearer token") }
        return current
    }
}

/// Authenticates every operation before its body is read, as `Access.operations` says, and then caps the body.
///
/// A bearer token is looked up by its SHA-256 in the tokens file; a callback token is checked against the
/// deployment's attempts. Refusals are `unauthenticated` (no or unknown token) or `permission_denied` (a role too
/// low), and never say whether a token exists for another principal.
struct AuthenticationMiddleware: ServerMiddleware {
    let tokens: TokensFile
    let authenticateCallback: @Sendable (_ token: String, _ deploymentID: String) async throws -> Void
    /// The largest request body read.
    let maxBodyBytes: Int

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, metadata: ServerRequestMetadata, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        guard let access = Access.operations[operationID] else {
            throw ConvergeError(.internal, "operation \(operationID) has no access rule")
        }
        switch access {
        case .open, .gitSignature:
            return try await next(request, try await capped(body, json: false), metadata)
        case .callbackToken:
            guard let token = Self.bearer(request) else {
                throw ConvergeError(.unauthenticated, "a callback needs Authorization: Bearer <token>")
            }
            try await authenticateCallback(token, String(metadata.pathParameters["id"] ?? ""))
            let body = try await capped(body, json: true)
            return try await RequestPrincipal.$callbackToken.withValue(token) {
                try await next(request, body, metadata)
            }
        case .role(let needed):
            guard let token = Self.bearer(request) else {
                throw ConvergeError(
                    .unauthenticated, "this operation needs Authorization: Bearer <token> (see converge token create)")
            }
            guard let principal = try tokens.principal(for: token) else {
                throw ConvergeError(.unauthenticated, "the bearer token is not valid")
            }
            guard principal.role >= needed else {
                throw ConvergeError(
                    .permissionDenied,
                    "\(principal.name) has the role \(principal.role.rawValue); \(operationID) needs \(needed.rawValue)"
                )
            }
            let body = try await capped(body, json: true)
            return try await RequestPrincipal.$current.withValue(principal) {
                try await next(request, body, metadata)
            }
        }
    }

    /// The token of an `Authorization: Bearer` header.
    static func bearer(_ request: HTTPRequest) -> String? {
        guard let value = request.headerFields[.authorization], value.hasPrefix("Bearer ") else { return nil }
        let token = value.dropFirst("Bearer ".count).trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }

    /// The body read whole, refused with 413 past `maxBodyBytes` (at once when `Content-Length` says so), and for a
    /// `json` one with duplicate keys; nil when empty.
    func capped(_ body: HTTPBody?, json: Bool) async throws -> HTTPBody? {
        guard let body else { return nil }
        if case .known(let length) = body.length, length > maxBodyBytes {
            throw APIError.bodyTooLarge(limit: maxBodyBytes)
        }
        // An empty body is no body: an operation whose body is optional then gets none, not an empty document.
        let bytes: ArraySlice<UInt8>
        do {
            bytes = try await ArraySlice<UInt8>(collecting: body, upTo: maxBodyBytes)
        } catch {
            throw APIError.bodyTooLarge(limit: maxBodyBytes)
        }
        // Duplicate keys in a JSON body are refused, as in YAML manifests; any other fault is left to the
        // operation's decoder.
        if json {
            do {
                _ = try Value(json: String(decoding: bytes, as: UTF8.self))
            } catch let error as ConvergeError where error.details?["duplicateKey"] != nil {
                throw ConvergeError(.invalidArgument, "body: " + error.message, details: error.details)
            } catch {}
        }
        return bytes.isEmpty ? nil : HTTPBody(bytes)
    }
}
