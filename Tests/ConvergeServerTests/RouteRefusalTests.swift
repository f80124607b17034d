import ConvergeCore
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import ConvergeServer

/// Every route of `openapi.yaml` asked badly — without a token, with a bad one, with a role too low, with a malformed
/// body, about an unknown id, with a method it does not serve — answers the status and code of its row. The routes
/// come from the document, so a new operation without a row fails here.
@Suite struct RouteRefusalTests {
    /// An answer: the HTTP status and, for an error, its code.
    struct Answer: Equatable, CustomStringConvertible {
        let status: Int
        let code: String?

        static let unauthenticated = Answer(status: 401, code: "unauthenticated")
        static let permissionDenied = Answer(status: 403, code: "permission_denied")
        static let invalidArgument = Answer(status: 400, code: "invalid_argument")
        static let notFound = Answer(status: 404, code: "not_found")
        static func success(_ status: Int) -> Answer { Answer(status: status, code: nil) }

        var description: String { "\(status) \(code ?? "(no error)")" }
    }

    /// What one operation answers to each bad request; nil where that request cannot be made: `lowRole` for an
    /// operation that needs no role above viewer, `malformedBody` for one without a request body, `unknownID` for a
    /// path without `{id}`.
    struct Row {
        var noToken: Answer
        var badToken: Answer
        var lowRole: Answer?
        var malformedBody: Answer?
        var unknownID: Answer?
        /// A well-formed body for the unknown-id request.
        var body: String?
        /// The unknown id, where the operation needs a well-formed one.
        var id = "nope"
    }

    /// An operation for viewers: no token and a bad token are 401, no lower role exists.
    static func viewer(unknownID: Answer? = nil) -> Row {
        Row(noToken: .unauthenticated, badToken: .unauthenticated, lowRole: nil, unknownID: unknownID)
    }

    /// An operation above viewer: a token one role too low is 403.
    static func above(
        malformedBody: Answer? = nil, unknownID: Answer? = nil, body: String? = nil, id: String = "nope"
    ) -> Row {
        Row(
            noToken: .unauthenticated, badToken: .unauthenticated, lowRole: .permissionDenied,
            malformedBody: malformedBody, unknownID: unknownID, body: body, id: id)
    }

    /// An operation open to anyone: tokens are not looked at.
    static func open(_ status: Int) -> Row {
        Row(noToken: .success(status), badToken: .success(status))
    }

    static let rows: [String: Row] = [
        "getHealth": open(200),
        "getVersion": open(200),
        "getReadiness": open(200),
        "getMetrics": open(200),
        "headHealth": open(200),
        "headReadiness": open(200),
        "headMetrics": open(200),
        // Without a signature or with a wrong one the hint is refused; its payload is never parsed, so any bytes do.
        "receiveGitPush": Row(
            noToken: .unauthenticated, badToken: .unauthenticated, malformedBody: .success(202)),
        "reportDeploymentEvent": Row(
            noToken: .unauthenticated, badToken: .unauthenticated, malformedBody: .invalidArgument,
            unknownID: .unauthenticated, body: #"{"type": "log", "attempt": 1}"#),
        "requestSync": above(),
        "getPrincipal": viewer(),
        "listResources": viewer(),
        "getResource": viewer(unknownID: .notFound),
        // Applying creates what it names: what is unknown is what the document refers to.
        "applyResource": above(
            malformedBody: .invalidArgument, unknownID: .invalidArgument,
            body: #"{"apiVersion": "converge/v1", "kind": "Instance", "metadata": {"name": "db", "#
                + #""project": "nope", "environment": "dev"}, "spec": {"bundle": "nope", "version": "1.0.0"}}"#,
            id: "nope-dev-db"),
        "deleteResource": above(unknownID: .notFound),
        "deleteEnvironment": above(unknownID: .notFound),
        "deployEnvironment": above(unknownID: .notFound),
        "decommissionEnvironment": above(unknownID: .notFound),
        "listRollouts": viewer(),
        "getRollout": viewer(unknownID: .notFound),
        "applyPreview": above(
            malformedBody: .invalidArgument, unknownID: .notFound,
            body: #"{"project": "nope", "baseEnvironment": "nope-staging"}"#, id: "nope-pr1"),
        "getPreview": viewer(unknownID: .notFound),
        "destroyPreview": above(unknownID: .notFound),
        "orphanInstance": above(unknownID: .notFound),
        "copyInstance": above(malformedBody: .invalidArgument, unknownID: .notFound, body: #"{"to": "nope-dev-db"}"#),
        "forkEnvironment": above(malformedBody: .invalidArgument, unknownID: .notFound, body: #"{"name": "pr1"}"#),
        "setEnvironmentDefault": above(
            malformedBody: .invalidArgument, unknownID: .notFound, body: #"{"resource": "vpc"}"#),
        "listInstances": viewer(),
        "getInstance": viewer(unknownID: .notFound),
        "listInstanceSecrets": viewer(unknownID: .notFound),
        "setInstanceSecret": above(malformedBody: .invalidArgument, unknownID: .notFound, body: #"{"value": "v"}"#),
        "deleteInstanceSecret": above(unknownID: .notFound),
        "createDeployment": above(
            malformedBody: .invalidArgument, unknownID: .notFound, body: #"{"action": "provision"}"#),
        "rollbackInstance": above(malformedBody: .invalidArgument, unknownID: .notFound, body: #"{"to": "nope"}"#),
        "listDeployments": viewer(),
        "getDeployment": viewer(unknownID: .notFound),
        "approveDeployment": above(malformedBody: .invalidArgument, unknownID: .notFound),
        "rejectDeployment": above(malformedBody: .invalidArgument, unknownID: .notFound),
        "abortDeployment": above(malformedBody: .invalidArgument, unknownID: .notFound),
        "planDeployment": above(unknownID: .notFound),
        "listDeploymentEvents": viewer(unknownID: .notFound),
        "compareDeployments": viewer(),
        "compareEnvironments": viewer(),
        "watchDeployments": viewer(),
        "listAudit": viewer(),
    ]

    /// The role an operation needs, and the one just below it.
    static func roles(of id: String) -> (needed: Role, below: Role?) {
        guard case .role(let needed)? = Access.operations[id] else { return (.admin, nil) }
        let all: [Role] = [.viewer, .deployer, .approver, .admin]
        let index = all.firstIndex(of: needed)!
        return (needed, index > 0 ? all[index - 1] : nil)
    }

    /// `path` with its parameters filled: a real kind, and `id` for every other one.
    static func concrete(_ path: String, id: String) -> String {
        path.replacingOccurrences(of: "{kind}", with: "instances")
            .replacingOccurrences(of: "{type}", with: "aws-vpc")
            .replacingOccurrences(of: "{name}", with: "token")
            .replacingOccurrences(of: "{id}", with: id)
    }

    @Test func everyOperationOfTheDocument_hasARow_andEveryRowAnOperation() {
        #expect(Set(APIDocumentTests.operations.map(\.id)) == Set(Self.rows.keys))
    }

    @Test func everyRouteAskedBadly_answersItsRow() async throws {
        let secret = Array("hook-secret".utf8)
        // Loaded (no manifests), so that lookups answer instead of "not loaded yet".
        let fixture = try await ServerFixture(loaded: true, gitWebhookSecret: secret)
        let bearers = try Dictionary(
            uniqueKeysWithValues: [Role.viewer, .deployer, .approver, .admin].map { ($0, try fixture.bearer($0)) })
        let document = APIDocumentTests.document
        let operations = APIDocumentTests.operations
        try await fixture.withClient { client in
            /// The answer to one request, checked against `expected`.
            func check(
                _ what: String, _ operation: (method: String, path: String, id: String), path: String,
                headers: HTTPFields, body: String?, expected: Answer
            ) async throws {
                let response = try await client.execute(
                    uri: path, method: HTTPRequest.Method(operation.method)!, headers: headers,
                    body: body.map { ByteBuffer(string: $0) })
                let code =
                    response.status.code >= 400
                    ? (try? JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])?["code"]
                        as? String : nil
                #expect(
                    Answer(status: response.status.code, code: code) == expected,
                    "\(operation.method) \(operation.path) (\(operation.id)), \(what): \(String(buffer: response.body))"
                )
            }
            func bearer(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)"] }
            func signed(_ payload: String) -> HTTPFields {
                let mac = HMAC<SHA256>.authenticationCode(for: Array(payload.utf8), using: SymmetricKey(data: secret))
                return [
                    HTTPField.Name("X-Hub-Signature-256")!: "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
                ]
            }

            for operation in operations {
                let row = try #require(Self.rows[operation.id], "\(operation.id) has no row")
                let access = Access.operations[operation.id]
                let item = document["paths"]?[operation.path]?[operation.method.lowercased()]
                let hasBody = item?["requestBody"] != nil
                let path = Self.concrete(operation.path, id: fixture.deploymentID)
                let (needed, below) = Self.roles(of: operation.id)

                // The row says what the document implies: a lower role where one exists, a body where one is taken,
                // an unknown id where the path names one.
                #expect((row.lowRole != nil) == (below != nil), "\(operation.id): lowRole")
                #expect((row.malformedBody != nil) == hasBody, "\(operation.id): malformedBody")
                #expect((row.unknownID != nil) == operation.path.contains("{id}"), "\(operation.id): unknownID")

                // Credentials are checked before the body is read: these carry a well-formed one where one is taken.
                let body = hasBody ? row.body ?? "{}" : nil
                try await check("no token", operation, path: path, headers: [:], body: body, expected: row.noToken)
                let badToken: HTTPFields =
                    access == .gitSignature ? [HTTPField.Name("X-Hub-Signature-256")!: "sha256=00"] : bearer("cvg_bad")
                try await check(
                    "bad token", operation, path: path, headers: badToken, body: body, expected: row.badToken)
                if let expected = row.lowRole, let below {
                    try await check(
                        "role \(below.rawValue)", operation, path: path, headers: bearers[below]!, body: body,
                        expected: expected)
                }
                // The credentials that let a request through: the callback token of the fixture's deployment, a
                // signature of the payload, or a token of the role needed (admin for a Provisioner's sake).
                let malformed = "{\"unclosed\": "
                let good: (String) -> HTTPFields = { payload in
                    switch access {
                    case .callbackToken: bearer(fixture.token)
                    case .gitSignature: signed(payload)
                    default: bearers[needed == .viewer ? .viewer : .admin]!
                    }
                }
                if let expected = row.malformedBody {
                    try await check(
                        "malformed body", operation, path: path, headers: good(malformed), body: malformed,
                        expected: expected)
                }
                if let expected = row.unknownID {
                    try await check(
                        "unknown id", operation, path: Self.concrete(operation.path, id: row.id),
                        headers: good(row.body ?? ""), body: row.body, expected: expected)
                }
            }

            // A method no route of the path serves: 405 method_not_allowed with the path's methods in Allow.
            for (path, item) in document["paths"]?.objectValue ?? [:] {
                let methods = Set((item.objectValue ?? [:]).keys.filter { $0 != "parameters" }.map { $0.uppercased() })
                let wrong = try #require(["PATCH", "DELETE", "PUT", "POST"].first { !methods.contains($0) })
                let response = try await client.execute(
                    uri: Self.concrete(path, id: "nope"), method: HTTPRequest.Method(wrong)!,
                    headers: bearers[.admin]!)
                #expect(response.status == .methodNotAllowed, "\(wrong) \(path)")
                #expect(try json(response)["code"] as? String == "method_not_allowed", "\(wrong) \(path)")
                let allowed = Set(
                    (response.headers[.allow] ?? "").split(separator: ",").map {
                        $0.trimmingCharacters(in: .whitespaces)
                    })
                #expect(allowed == methods, "\(wrong) \(path)")
            }
        }
    }
}
