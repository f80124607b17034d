import ConvergeCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import ConvergeServer

/// Regression: duplicate keys in a JSON request body were accepted silently, the last one winning.
@Suite struct DuplicateKeyBodyTests {
    @Test func aDuplicateKey_isInvalidArgumentNamingTheKeyAndItsPath() async throws {
        let fixture = try await ServerFixture(loaded: true)
        let admin = try fixture.bearer(.admin)
        try await fixture.withClient { client in
            let response = try await client.execute(
                uri: "/v1/resources/provisioners/x", method: .put, headers: admin,
                body: body(
                    #"{"kind": "Provisioner", "spec": {"webhook": {"url": "http://127.0.0.1:1/a", "url": "http://x"}}}"#
                ))
            let object = try refusal(response, .badRequest, code: "invalid_argument")
            #expect(object["message"] as? String == #"body: duplicate key "url" at spec.webhook.url"#)
        }
        #expect(throws: ConvergeError.self) { try Value(json: #"[1, {"a": 1, "a": 2}]"#) }
    }
}
