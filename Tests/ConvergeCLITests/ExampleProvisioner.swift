import Foundation

/// The example provisioner (`examples/provisioners/provisioner.py`) served as a webhook on loopback, with its state
/// in a temporary directory; killed and removed when the test drops it.
final class ExampleProvisioner {
    let port: Int
    /// Where it keeps a JSON file per instance: what it applied.
    let state: URL
    /// The HMAC secret it checks requests with, when given.
    let secret: String?
    private let process = Process()

    init(delay: Double = 0.2, secret: String? = "demo-secret") throws {
        port = try DaemonProcess.freePort()
        state = FileManager.default.temporaryDirectory.appendingPathComponent("converge-state-\(UUID().uuidString)")
        self.secret = secret
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", Self.script.path, "serve", "--port", "\(port)", "--delay", "\(delay)", "--state-dir", state.path,
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["CONVERGE_EXAMPLE_WEBHOOK_SECRET"] = secret
        environment["CONVERGE_EXAMPLE_STATE_DIR"] = state.path
        environment["CONVERGE_EXAMPLE_DELAY"] = "\(delay)"
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    deinit {
        // SIGKILL: the test process may hold SIGTERM blocked, and a child inherits that mask.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: state)
    }

    static let script = ConvergeBinary.repository.appendingPathComponent("examples/provisioners/provisioner.py")

    /// What a daemon using it needs in its environment.
    var daemonEnvironment: [String: String] {
        var environment = ["CONVERGE_EXAMPLE_STATE_DIR": state.path]
        environment["CONVERGE_EXAMPLE_WEBHOOK_SECRET"] = secret
        return environment
    }

    /// A daemon serving the example repository with this provisioner, started.
    func startDaemon() async throws -> DaemonProcess {
        let daemon = try DaemonProcess(files: try exampleRepository())
        daemon.environment = daemonEnvironment
        try await daemon.start()
        return daemon
    }

    /// The example repository (`examples/gitops`), flattened, with the webhook moved to this provisioner's port and
    /// the exec command made absolute.
    func exampleRepository() throws -> [String: String] {
        let root = ConvergeBinary.repository.appendingPathComponent("examples/gitops")
        var files: [String: String] = [:]
        let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)
        while let url = enumerator?.nextObject() as? URL {
            guard url.pathExtension == "yaml" else { continue }
            let relative = String(url.path.dropFirst(root.path.count + 1)).replacingOccurrences(of: "/", with: "-")
            files[relative] = try String(contentsOf: url, encoding: .utf8)
                .replacingOccurrences(of: "127.0.0.1:8790", with: "127.0.0.1:\(port)")
                .replacingOccurrences(of: "../provisioners/provisioner.py", with: Self.script.path)
        }
        return files
    }
}
