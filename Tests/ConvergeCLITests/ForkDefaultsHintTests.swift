import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Testing

/// Regression (issue 13): `converge env fork ecomm-staging f1` on the example repository failed with "required
/// connection network … has no default for aws-vpc" and no hint of what would fix it.
@Suite(.serialized) struct ForkDefaultsHintTests {
    @Test func fork_withoutTheDefaultsItsInstancesNeed_saysHowToCopyThem() async throws {
        let provisioner = try ExampleProvisioner()
        defer { withExtendedLifetime(provisioner) {} }
        let daemon = try await provisioner.startDaemon()
        let dora = try await daemon.token("dora", role: "deployer")

        let refused = try await daemon.cli(dora, "env", "fork", "ecomm-staging", "f1")
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("has no default for aws-vpc"), "\(refused.stderr)")
        #expect(
            refused.stderr.contains(
                "the fork has no defaults for aws-vpc unless it copies the parent's: fork again with "
                    + "copyEnvironmentDefaults (converge env fork ecomm-staging f1 --copy-environment-defaults)"),
            "\(refused.stderr)")

        let forked = try await daemon.cli(dora, "env", "fork", "ecomm-staging", "f1", "--copy-environment-defaults")
        #expect(forked.status == 0, "\(forked.stderr)")
        try await daemon.stop()
    }
}
