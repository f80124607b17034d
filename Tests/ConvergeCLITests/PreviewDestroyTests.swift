import Testing

/// `converge preview destroy` of a preview that does not exist, as CI runs it when a pull request that never had a
/// preview is closed.
@Suite struct PreviewDestroyTests {
    @Test func destroy_ofAMissingPreview_failsUnlessIgnoreNotFound() async throws {
        let daemon = try DaemonProcess(files: [
            "project.yaml": "apiVersion: converge/v1\nkind: Project\nmetadata: {name: ecomm}\n"
        ])
        try await daemon.start()
        let dora = try await daemon.token("dora", role: "deployer")

        let refused = try await daemon.cli(dora, "preview", "destroy", "pr404")
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("preview pr404 not found"), "\(refused.stderr)")

        let ignored = try await daemon.cli(dora, "preview", "destroy", "pr404", "--ignore-not-found", "--follow")
        #expect(ignored.status == 0, "\(ignored.stderr)")
        #expect(ignored.stderr == "preview pr404 not found: nothing to destroy\n")
        #expect(ignored.stdout.isEmpty)
    }
}
