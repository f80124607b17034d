import ConvergeCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import ConvergeServer

/// Regression: a kind in the singular in a path (`/v1/resources/provisioner/x`) answered "body: expected a JSON
/// document".
@Suite struct ResourceKindPathTests {
    @Test func anUnknownKindInThePath_isNotFound_suggestingThePlural() async throws {
        let fixture = try await ServerFixture()
        let admin = try fixture.bearer(.admin)
        try await fixture.withClient { client in
            for (method, uri) in [
                (HTTPRequest.Method.put, "/v1/resources/provisioner/x"), (.get, "/v1/resources/provisioner"),
            ] {
                let response = try await client.execute(uri: uri, method: method, headers: admin, body: body("{}"))
                let object = try refusal(response, .notFound, code: "not_found")
                #expect(
                    (object["message"] as? String)?.hasPrefix(
                        #"unknown kind provisioner; did you mean "provisioners"?"#)
                        == true, "\(object)")
            }
        }
    }
}
