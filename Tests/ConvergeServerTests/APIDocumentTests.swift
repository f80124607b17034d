import ConvergeCore
import ConvergeManifests
import Foundation
import HTTPTypes
import Hummingbird
import Testing

@testable import ConvergeServer

/// `openapi.yaml` is the source of the server's routes: these keep the document, the router and the access rules
/// saying the same thing.
@Suite struct APIDocumentTests {
    /// The document, parsed by the project's own YAML parser.
    static let document: Value = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../Sources/ConvergeAPI/openapi.yaml")
        let text = try! String(contentsOf: url, encoding: .utf8)
        return try! YAMLParser().parse(text, file: "openapi.yaml")[0].value
    }()

    /// Every (method, path) of the document, with its operation id.
    static var operations: [(method: String, path: String, id: String)] {
        var operations: [(String, String, String)] = []
        for (path, item) in Self.document["paths"]?.objectValue ?? [:] {
            for (method, operation) in item.objectValue ?? [:] where method != "parameters" {
                operations.append((method.uppercased(), path, operation["operationId"]?.stringValue ?? "?"))
            }
        }
        return operations.sorted { ($0.1, $0.0) < ($1.1, $1.0) }
    }

    @Test func everyRouteOfTheServer_isInTheDocument_andEveryPathOfTheDocumentIsServed() async throws {
        let fixture = try await ServerFixture()
        let served = Set(fixture.server.router.routes.map { "\($0.method) \($0.path)" })
        let documented = Set(Self.operations.map { "\($0.method) \($0.path)" })
        #expect(served == documented)
        #expect(documented.count == Self.operations.count)
    }

    @Test func everyOperation_hasAnAccessRule_andEveryRuleAnOperation() {
        let ids = Set(Self.operations.map(\.id))
        #expect(ids == Set(Access.operations.keys))
    }

    @Test func everythingUnderV1_needsAToken_exceptCallbacksAndTheGitHook() {
        for operation in Self.operations {
            let access = Access.operations[operation.id]
            if operation.path.hasPrefix("/v1/") {
                #expect(access != .open, "\(operation.id) is open")
            } else {
                #expect(access == .open, "\(operation.id) needs a token")
            }
        }
        #expect(Access.operations["reportDeploymentEvent"] == .callbackToken)
        #expect(Access.operations["receiveGitPush"] == .gitSignature)
    }

    @Test func everyErrorCode_ofConverge_isInTheDocumentsErrorSchema() {
        let codes = Self.document["components"]?["schemas"]?["Error"]?["properties"]?["code"]?["enum"]
        #expect(codes == .array(ConvergeError.Code.allCases.map { .string($0.rawValue) }))
    }
}

/// Bearer tokens and roles, through the router.
@Suite struct AuthenticationTests {
    @Test func noToken_unknownToken_andTooLowARole_areRefusedInTheErrorShape() async throws {
        let fixture = try await ServerFixture()
        let viewer = try fixture.tokens.create(name: "vera", role: .viewer)
        try await fixture.withClient { client in
            let none = try await client.execute(uri: "/v1/deployments", method: .get)
            #expect(none.status == .unauthorized)
            #expect(try json(none)["code"] as? String == "unauthenticated")

            let unknown = try await client.execute(
                uri: "/v1/deployments", method: .get, headers: [.authorization: "Bearer cvg_not-a-token"])
            #expect(unknown.status == .unauthorized)

            let listed = try await client.execute(
                uri: "/v1/deployments", method: .get, headers: [.authorization: "Bearer \(viewer)"])
            #expect(listed.status == .ok)

            let sync = try await client.execute(
                uri: "/v1/sync", method: .post, headers: [.authorization: "Bearer \(viewer)"])
            let object = try refusal(sync, .forbidden, code: "permission_denied")
            #expect(object["message"] as? String == "vera has the role viewer; requestSync needs deployer")
        }
    }

    @Test func aTokenAddedToTheFile_worksWithoutARestart_andRolesAreOrdered() async throws {
        let fixture = try await ServerFixture()
        try await fixture.withClient { client in
            let first = try fixture.tokens.create(name: "ann", role: .admin)
            let whoami = try await client.execute(
                uri: "/v1/whoami", method: .get, headers: [.authorization: "Bearer \(first)"])
            #expect(try json(whoami)["role"] as? String == "admin")
            let later = try fixture.tokens.create(name: "dan", role: .deployer)
            let sync = try await client.execute(
                uri: "/v1/sync", method: .post, headers: [.authorization: "Bearer \(later)"])
            #expect(sync.status == .accepted)
        }
        #expect(Role.viewer < .deployer && Role.deployer < .approver && Role.approver < .admin)
    }

    @Test func theTokensFile_keepsOnlyHashes_isPrivate_andRefusesDuplicateOrReservedNames() throws {
        let fixture = try TemporaryTokens()
        let token = try fixture.tokens.create(name: "ann", role: .admin)
        #expect(token.hasPrefix("cvg_"))
        let text = try String(contentsOfFile: fixture.tokens.path, encoding: .utf8)
        #expect(!text.contains(token))
        #expect(text.contains(TokensFile.hash(token)))
        let mode = try FileManager.default.attributesOfItem(atPath: fixture.tokens.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(throws: ConvergeError.self) { try fixture.tokens.create(name: "ann", role: .viewer) }
        #expect(throws: ConvergeError.self) { try fixture.tokens.create(name: "converge", role: .viewer) }
        #expect(throws: ConvergeError.self) { try fixture.tokens.create(name: "Has Spaces", role: .viewer) }
        #expect(try fixture.tokens.principal(for: token) == Principal(name: "ann", role: .admin))
        #expect(try fixture.tokens.principal(for: token + "x") == nil)
    }
}

/// A tokens file in a temporary directory.
struct TemporaryTokens {
    let tokens: TokensFile

    init() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("converge-tokens-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        tokens = TokensFile(path: directory.appendingPathComponent("tokens.json").path)
    }
}
