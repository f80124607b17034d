import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Logging
import Testing

@testable import ConvergeEngine

/// Two daemons on one database, each reading the same manifests: what one applies through the API the other never
/// undoes when it records its next load.
@Suite struct SharedDatabaseTests {
    @Test func anAPIApplyThroughOneDaemon_survivesTheOthersNextLoad() async throws {
        let fixture = try await EngineFixture()
        let first = fixture.engine
        #expect(await first.manifests.load())
        let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let clock = fixture.clock
        let secondStore = try SQLiteStore(
            path: fixture.directory.appendingPathComponent("c.sqlite").path, clock: { clock.now }, logger: quiet)
        var configuration = EngineConfiguration(manifests: fixture.directory.appendingPathComponent("manifests"))
        configuration.owner = "second-daemon"
        configuration.callbackBaseURL = "http://127.0.0.1:1"
        let provisioner = fixture.provisioner
        let second = try await Engine(
            configuration: configuration, store: secondStore, clock: clock, makeProvisioner: { _ in provisioner },
            logger: quiet)
        #expect(await second.manifests.load())

        let key = ResourceKey(.instance, "p-dev-extra")
        let document: Value = [
            "apiVersion": "converge/v1", "kind": "Instance",
            "metadata": ["name": "extra", "project": "p", "environment": "dev"],
            "spec": ["bundle": "db", "version": "1.0.0"],
        ]
        _ = try await first.manifests.apply([key: document], actor: "alice")

        // A commit both daemons read: the second records it without the first's API-applied instance in mind.
        try fixture.write(policy: "auto", prune: true, appSize: 2)
        #expect(await second.manifests.load())
        #expect(await first.manifests.load())

        #expect(try await fixture.store.resource(key).resource.spec["bundle"] == "db")
        #expect(second.manifests.current?.state.instances[key.id] != nil)
        #expect(
            try await fixture.store.resource(ResourceKey(.instance, "p-dev-app")).resource.spec["params"] == [
                "size": 2
            ])
    }
}
