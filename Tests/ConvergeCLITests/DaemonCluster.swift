import ConvergeCore
import ConvergeTestSupport
import Foundation
import Testing

/// Several `converge serve` processes on one PostgreSQL database, as replicas behind a load balancer run: each with
/// its own manifests directory (the same files), port and tokens file, all with one secrets key.
final class DaemonCluster {
    let daemons: [DaemonProcess]

    init(count: Int, files: [String: String], arguments: [String], databaseURL: String) throws {
        daemons = try (0..<count).map { _ in
            try DaemonProcess(files: files, arguments: arguments, databaseURL: databaseURL)
        }
        let key = try Data(contentsOf: URL(fileURLWithPath: daemons[0].secretsKeyFile))
        for daemon in daemons.dropFirst() { try key.write(to: URL(fileURLWithPath: daemon.secretsKeyFile)) }
    }

    /// The daemons whose process runs (a stopped one included).
    var running: [DaemonProcess] { daemons.filter(\.isRunning) }

    /// Starts every daemon and waits until each is ready.
    func start() async throws {
        for daemon in daemons { try await daemon.start() }
        for daemon in daemons {
            try await eventually("daemon on port \(daemon.port) is ready") { await daemon.isReady() }
        }
    }

    /// Writes `files` into every daemon's manifests, then asks each running daemon to read them, and waits until each
    /// has the same load in force, newer than `after` (a desired-state version); returns that version.
    @discardableResult
    func change(to files: [String: String], after version: Int) async throws -> Int {
        for daemon in daemons { try daemon.write(files) }
        for daemon in running {
            #expect(try await daemon.sync() == 202, "daemon on port \(daemon.port) did not take the sync")
        }
        var loaded = 0
        try await eventually("every daemon loaded the manifests newer than version \(version)") {
            var versions: Set<Int> = []
            for daemon in running {
                let checks = try await daemon.get("/readyz").body["checks"] as? [String: Any]
                let manifests = checks?["manifests"] as? [String: Any]
                versions.insert(manifests?["version"] as? Int ?? 0)
            }
            loaded = versions.first ?? 0
            return versions.count == 1 && loaded > version
        }
        return loaded
    }

    /// The lease owner of `daemon` (its id in the store), from its log.
    static func owner(of daemon: DaemonProcess) throws -> String {
        guard let match = daemon.logText.firstMatch(of: /lease\.owner=(\S+)/) else {
            throw TimedOut(description: "no lease.owner in the daemon's log:\n\(daemon.logTail())")
        }
        return String(match.1)
    }

    func stop() async {
        for daemon in daemons where daemon.isRunning {
            daemon.resume()
            _ = try? await daemon.stop()
        }
    }
}
