import ConvergeCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import ConvergeServer

/// Probes that send HEAD (load balancers, `curl -I`) get the GET status without a body.
@Suite struct HeadRequestTests {
    @Test func headOnHealthReadinessAndMetrics_answersTheStatusWithoutABody() async throws {
        let fixture = try await ServerFixture()
        try await fixture.withClient { client in
            // Before a first load of the manifests the daemon is not ready.
            let notReady = try await client.execute(uri: "/readyz", method: .head)
            #expect(notReady.status == .serviceUnavailable)
            #expect(notReady.body.readableBytes == 0)
        }
        #expect(await fixture.engine.manifests.load())
        try await fixture.withClient { client in
            for uri in ["/healthz", "/readyz", "/metrics"] {
                let response = try await client.execute(uri: uri, method: .head)
                #expect(response.status == .ok, "\(uri)")
                #expect(response.body.readableBytes == 0, "\(uri)")
            }
        }
    }
}
