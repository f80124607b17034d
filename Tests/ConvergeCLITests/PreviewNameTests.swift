import ConvergeCore
import ConvergeTestSupport
import Foundation
import Testing

/// A preview has one spelling, its environment's id (`ecomm-pr9`), as `get previews` lists it; every preview command
/// takes it, and the name in the project (`pr9`) too.
@Suite struct PreviewNameTests {
    /// Regression (issue 13): `get previews` showed `ecomm-pr42` while `preview` took `pr42` only.
    @Test func previewCommands_takeTheIdThatGetPreviewsLists() async throws {
        let provisioner = try ExampleProvisioner(delay: 0.1)
        defer { withExtendedLifetime(provisioner) {} }
        let daemon = try await provisioner.startDaemon()
        let dora = try await daemon.token("dora", role: "deployer")
        let variables = ["PR_NUMBER": "9", "GIT_SHA": "abc123"]
        let file = ConvergeBinary.repository.appendingPathComponent("examples/preview.yaml").path

        let up = try await daemon.cli(dora, environment: variables, ["preview", "ecomm-pr9", "-f", file])
        #expect(up.status == 0, "\(up.stderr)")
        #expect(up.stdout.hasPrefix("preview/ecomm-pr9 created from staging\n"))
        let listed = try await daemon.cli(dora, "get", "previews", "-o", "name")
        #expect(listed.stdout == "preview/ecomm-pr9\n", "\(listed.stderr)")
        for spelling in ["ecomm-pr9", "pr9", "preview/ecomm-pr9"] {
            let shown = try await daemon.cli(dora, "preview", "show", spelling, "-o", "json")
            #expect(shown.status == 0, "\(spelling): \(shown.stderr)")
            #expect(try Value(json: shown.stdout)["environment"] == "ecomm-pr9")
        }
        let again = try await daemon.cli(dora, environment: variables, ["preview", "pr9", "-f", file])
        #expect(again.stdout.hasPrefix("preview/ecomm-pr9 converged from staging\n"), "\(again.stderr)")

        let otherProject = try await daemon.cli(dora, environment: variables, ["preview", "shop-pr9", "-f", file])
        #expect(otherProject.status == 2)
        #expect(
            otherProject.stderr
                == "converge: preview \"shop-pr9\": expected ecomm-NAME or NAME (the file's project is ecomm): "
                + "\"shop-pr9\" must be a single segment without dashes\n")
    }
}
