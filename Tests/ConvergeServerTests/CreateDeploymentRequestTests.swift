import ConvergeCore
import ConvergeStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import ConvergeServer

/// The request body of `POST /v1/instances/{id}/deployments`.
@Suite struct CreateDeploymentRequestTests {
    /// Regression: a plan asked as a proposal was accepted and ran directly, dropping the mode without a word.
    @Test func aPlanAskedAsAProposal_isInvalidArgument_andCreatesNothing() async throws {
        let fixture = try await ServerFixture()
        let deployer = try fixture.bearer(.deployer)
        try await fixture.withClient { client in
            let response = try await client.execute(
                uri: "/v1/instances/shop-dev-db/deployments", method: .post,
                headers: deployer, body: body(#"{"action": "plan", "mode": "proposal"}"#))
            let object = try refusal(response, .badRequest, code: "invalid_argument")
            #expect(
                object["message"] as? String
                    == "mode: a plan runs directly; only provision and decommission can be proposed")
            #expect((object["details"] as? [String: Any])?["field"] as? String == "mode")
        }
        let deployments = try await fixture.store.listDeployments(
            DeploymentFilter(instanceID: "shop-dev-db"), after: nil, limit: 10)
        #expect(deployments.items.map(\.id) == [fixture.deploymentID])
    }
}
