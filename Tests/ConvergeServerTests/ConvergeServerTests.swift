import ConvergeCore
import ConvergeEngine
import ConvergeStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@testable import ConvergeServer

@Suite struct ConvergeServerTests {
    @Test func unknownPath_is404InTheErrorShape() async throws {
        let fixture = try await ServerFixture()
        try await fixture.withClient { client in
            let response = try await client.execute(uri: "/v1/nope", method: .get)
            #expect(response.status == .notFound)
            #expect(response.headers[.contentType] == "application/json")
            let object = try json(response)
            #expect(object["code"] as? String == "not_found")
            #expect(object["message"] as? String == "no route for GET /v1/nope")
            #expect(object.keys.sorted() == ["code", "message"])
        }
    }

    @Test func knownPathWithAnotherMethod_is405WithAllow() async throws {
        let fixture = try await ServerFixture()
        try await fixture.withClient { client in
            let sync = try await client.execute(uri: "/v1/sync", method: .get)
            #expect(sync.status == .methodNotAllowed)
            #expect(sync.headers[.allow] == "POST")
            let object = try json(sync)
            #expect(object["code"] as? String == "method_not_allowed")
            #expect(object["message"] as? String == "GET is not allowed on /v1/sync; expected POST")
            #expect((object["details"] as? [String: Any])?["allowedMethods"] as? [String] == ["POST"])

            let events = try await client.execute(uri: fixture.eventsPath, method: .delete)
            #expect(events.status == .methodNotAllowed)
            #expect(events.headers[.allow] == "GET, POST")

            let health = try await client.execute(uri: "/healthz", method: .post)
            #expect(health.status == .methodNotAllowed)
            #expect(health.headers[.allow] == "GET, HEAD")
        }
    }

    @Test func oversizedBody_is413WithTheLimit_whetherContentLengthSaysSoOrNot() async throws {
        let fixture = try await ServerFixture(gitWebhookSecret: Array("secret".utf8))
        let limit = ConvergeServer.maxBodyBytes
        let oversized = ByteBuffer(repeating: UInt8(ascii: "x"), count: limit + 1)
        try await fixture.withClient { client in
            let streamed = try await client.execute(
                uri: fixture.eventsPath, method: .post, headers: [.authorization: "Bearer \(fixture.token)"],
                body: oversized)
            let announced = try await client.execute(
                uri: "/v1/hooks/git", method: .post, headers: [.contentLength: "\(limit + 1)"], body: oversized)
            for response in [streamed, announced] {
                let object = try refusal(response, .contentTooLarge, code: "resource_exhausted")
                #expect(object["message"] as? String == "the request body must be at most \(limit) bytes")
                #expect((object["details"] as? [String: Any])?["limitBytes"] as? Int == limit)
            }
        }
    }

    @Test func callbackWithoutABearerToken_is401_andItsBodyIsNotRead() async throws {
        let fixture = try await ServerFixture()
        let oversized = ByteBuffer(repeating: UInt8(ascii: "x"), count: ConvergeServer.maxBodyBytes + 1)
        try await fixture.withClient { client in
            let response = try await client.execute(uri: fixture.eventsPath, method: .post, body: oversized)
            #expect(response.status == .unauthorized)
            #expect(try json(response)["code"] as? String == "unauthenticated")
        }
    }

    @Test func callbackWithAWrongToken_is401BeforeItsBodyIsReadOrParsed() async throws {
        let fixture = try await ServerFixture()
        let wrong: HTTPFields = [.authorization: "Bearer \(String(repeating: "0", count: 64))"]
        try await fixture.withClient { client in
            let unparsable = try await client.execute(
                uri: fixture.eventsPath, method: .post, headers: wrong, body: body("not json"))
            let oversized = try await client.execute(
                uri: fixture.eventsPath, method: .post, headers: wrong,
                body: ByteBuffer(repeating: UInt8(ascii: "x"), count: ConvergeServer.maxBodyBytes + 1))
            for response in [unparsable, oversized] {
                let object = try refusal(response, .unauthorized, code: "unauthenticated")
                #expect(
                    object["message"] as? String
                        == "the callback token is not valid for deployment \(fixture.deploymentID)")
            }
        }
    }

    @Test func callbackForAnUnknownDeployment_isRefusedLikeAWrongToken() async throws {
        let fixture = try await ServerFixture()
        try await fixture.withClient { client in
            let response = try await client.execute(
                uri: "/v1/deployments/nope/events", method: .post,
                headers: [.authorization: "Bearer \(fixture.token)"], body: body("not json"))
            #expect(response.status == .unauthorized)
            #expect(try json(response)["message"] as? String == "the callback token is not valid for deployment nope")
        }
    }

    @Test(arguments: [
        (#"{"type": "log", "attempt": "1"}"#, #"body: field "attempt": expected an integer"#, "attempt"),
        (#"{"type": "log"}"#, #"body: field "attempt": required"#, "attempt"),
        (#"{"type": "log", "attempt": null}"#, #"body: field "attempt": expected an integer, got null"#, "attempt"),
        (#"{"type": 7, "attempt": 1}"#, #"body: field "type": expected a string"#, "type"),
        (
            #"{"type": "bogus", "attempt": 1}"#, #"body: field "type": not a value the API document allows here"#,
            "type"
        ),
        (
            #"{"type": "completed", "attempt": 1, "outputs": 5}"#, #"body: field "outputs": expected an object"#,
            "outputs"
        ),
        (#"{"type": "log", "attempt": 1, "message": ["a"]}"#, #"body: field "message": expected a string"#, "message"),
    ])
    func callbackWithABadField_namesTheField(text: String, message: String, field: String) async throws {
        let fixture = try await ServerFixture()
        try await fixture.withClient { client in
            let response = try await client.execute(
                uri: fixture.eventsPath, method: .post, headers: [.authorization: "Bearer \(fixture.token)"],
                body: body(text))
            let object = try refusal(response, .badRequest, code: "invalid_argument")
            #expect(object["message"] as? String == message)
            #expect((object["details"] as? [String: Any])?["field"] as? String == field)
        }
    }

    @Test func callbackWithABodyThatIsNotJSON_saysSoWithoutTheDecodersWords() async throws {
        let fixture = try await ServerFixture()
        try await fixture.withClient { client in
            for text in ["not json", "", "[1, 2]"] {
                let response = try await client.execute(
                    uri: fixture.eventsPath, method: .post, headers: [.authorization: "Bearer \(fixture.token)"],
                    body: body(text))
                #expect(response.status == .badRequest)
                let message = try json(response)["message"] as? String
                #expect(message?.hasPrefix("body: expected ") == true)
                #expect(message?.contains("DecodingError") == false)
                #expect(message?.contains("Context") == false)
            }
        }
    }

    @Test func callbackWithAValidTokenAndReport_isApplied() async throws {
        let fixture = try await ServerFixture()
        try await fixture.withClient { client in
            let response = try await client.execute(
                uri: fixture.eventsPath, method: .post, headers: [.authorization: "Bearer \(fixture.token)"],
                body: body(#"{"type": "log", "attempt": 1, "message": "applying"}"#))
            #expect(response.status == .noContent)
        }
        let events = try await fixture.store.events(of: fixture.deploymentID, after: nil, limit: 10).items
        #expect(events.map(\.message).contains("applying"))
    }

    @Test func callbackWithALaterAttemptsToken_isRefusedBeforeItsBodyIsRead() async throws {
        let fixture = try await ServerFixture()
        let second = CallbackToken(key: try await fixture.store.secret(named: "callback-token-key")).token(
            deploymentID: fixture.deploymentID, attempt: 2)
        try await fixture.withClient { client in
            // Attempt 2 does not exist yet: its token is refused before the body is read.
            let response = try await client.execute(
                uri: fixture.eventsPath, method: .post, headers: [.authorization: "Bearer \(second)"],
                body: body(#"{"type": "log", "attempt": 2}"#))
            #expect(response.status == .unauthorized)
        }
    }

    @Test func errorOutsideConverge_isAnInternalErrorThatHidesItsCause() async throws {
        let router = Router()
        router.add(middleware: APIErrorMiddleware(routes: RouteTable([]), maxBodyBytes: 10))
        router.get("boom") { _, _ -> Response in throw CocoaError(.fileReadNoPermission) }
        let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        try await Application(router: router, logger: quiet).test(.router) { client in
            let response = try await client.execute(uri: "/boom", method: .get)
            let object = try refusal(response, .internalServerError, code: "internal")
            #expect(object["message"] as? String == "the request failed inside the daemon; its log has the cause")
        }
    }

    @Test func statusOfEachCode_withTheOneDocumentedException() {
        let statuses = Dictionary(
            uniqueKeysWithValues: ConvergeError.Code.allCases.map { ($0.rawValue, $0.httpStatus.code) })
        #expect(
            statuses == [
                "invalid_argument": 400, "not_found": 404, "already_exists": 409, "failed_precondition": 412,
                "aborted": 409, "permission_denied": 403, "unauthenticated": 401, "resource_exhausted": 429,
                "internal": 500, "method_not_allowed": 405,
            ])
        #expect(APIError.methodNotAllowed(.get, "/x", allowed: [.post]).status == .methodNotAllowed)
        #expect(APIError.methodNotAllowed(.get, "/x", allowed: [.post]).error.code == .methodNotAllowed)
        #expect(APIError.bodyTooLarge(limit: 1).status == .contentTooLarge)
        #expect(APIError.bodyTooLarge(limit: 1).error.code == .resourceExhausted)
        #expect(ConvergeError.Code(status: .contentTooLarge) == .resourceExhausted)
        #expect(ConvergeError.Code(status: .unsupportedMediaType) == .invalidArgument)
        #expect(ConvergeError.Code(status: .badGateway) == .internal)
    }
}

@Suite struct RequestDecodingTests {
    struct Order: Decodable {
        struct Item: Decodable {
            var size: Int
        }
        var items: [Item]
    }

    @Test func nestedField_isNamedWithDotsAndPositions() {
        #expect(
            throws: ConvergeError(
                .invalidArgument, #"body: field "items[1].size": expected an integer"#,
                details: ["field": "items[1].size"])
        ) {
            do {
                _ = try JSONDecoder().decode(Order.self, from: Data(#"{"items": [{"size": 1}, {"size": "2"}]}"#.utf8))
            } catch let error as DecodingError {
                throw RequestDecoding.error(for: error)
            }
        }
    }

    @Test func routeTable_matchesParametersAndIgnoresSlashes() {
        let table = RouteTable([
            (.post, "/v1/deployments/{id}/events"), (.get, "v1/deployments/{id}/events"), (.get, "healthz"),
        ])
        #expect(table.methods(forPath: "/v1/deployments/d1/events/") == [.post, .get])
        #expect(table.methods(forPath: "/healthz") == [.get])
        #expect(table.methods(forPath: "/v1/deployments/events").isEmpty)
        #expect(table.methods(forPath: "/").isEmpty)
    }
}
