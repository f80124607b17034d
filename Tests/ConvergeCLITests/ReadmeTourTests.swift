import ConvergeTestSupport
import Foundation
import Testing

/// The README's tour, as a new user runs it: `make demo` (on free ports, in a temporary directory), then every
/// command between `<!-- tour:start -->` and `<!-- tour:end -->` in one shell that stops at the first error.
@Suite struct ReadmeTourTests {
    /// The tour's shell lines, from the README.
    static func tour() throws -> String {
        let readme = try String(
            contentsOf: ConvergeBinary.repository.appendingPathComponent("README.md"), encoding: .utf8)
        guard let start = readme.range(of: "<!-- tour:start -->\n```sh\n"),
            let end = readme.range(of: "```\n<!-- tour:end -->", range: start.upperBound..<readme.endIndex)
        else { throw TimedOut(description: "README.md has no ```sh block between the tour markers") }
        return String(readme[start.upperBound..<end.lowerBound])
    }

    @Test func readmeTour_runsAgainstTheDemo() async throws {
        let demo = try DemoProcess()
        let token = try await demo.start()
        let environment = [
            "CONVERGE_SERVER": "http://127.0.0.1:\(demo.port)", "XDG_CONFIG_HOME": demo.directory.path,
        ]
        // What a user sees before the tour: staging deployed, production's changes proposed.
        for (instance, status) in [("ecomm-production-network", "PROPOSED"), ("ecomm-staging-db", "COMPLETED")] {
            try await eventually("\(instance) has a \(status) deployment") {
                let listed = try await ConvergeBinary.run(
                    ["get", "deployments", "--instance", instance, "--status", status, "-o", "name"],
                    environment: environment.merging(["CONVERGE_TOKEN": token]) { $1 })
                return !listed.stdout.isEmpty
            }
        }
        let script =
            "set -eo pipefail\ntrap 'echo \"tour: failed: $BASH_COMMAND\" >&2' ERR\n"
            + (try Self.tour())
            .replacingOccurrences(of: "cvg_…", with: token)
            .replacingOccurrences(of: ":8787", with: ":\(demo.port)")
        let result = try await ConvergeBinary.run(
            ["-c", script], environment: environment, program: URL(fileURLWithPath: "/bin/bash"))
        #expect(result.status == 0, "\(result.stderr)\n\(result.stdout)\ndemo log:\n\(demo.logTail())")
        #expect(result.stdout.contains("ecomm-production-network"))
        // The provisioner answered before the daemon's first call.
        #expect(!demo.logText.contains("connection refused"))
    }
}

/// `make demo` in its own process group, on free ports and a temporary `DEMO_DIR`, with the binary under test
/// (`-o build`: the test's build is the one to run); stopped, provisioner and daemon together, when dropped.
final class DemoProcess {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("converge-demo-\(UUID().uuidString)")
    let port: Int
    let provisionerPort: Int
    private let process = Process()
    var log: URL { directory.appendingPathComponent("demo.log") }

    init() throws {
        port = try freeLoopbackPort()
        provisionerPort = try freeLoopbackPort()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit {
        // The whole group: make, its shell, the provisioner and the daemon (never group 0: this test's own).
        if process.processIdentifier > 0 {
            kill(-process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Starts the demo and returns the token it printed, once the daemon listens.
    func start() async throws -> String {
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        // python3 (which the demo needs anyway) makes the process a group leader, then becomes make.
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c", "import os, sys; os.setpgrp(); os.execvp('make', ['make'] + sys.argv[1:])",
            "--no-print-directory", "-o", "build", "demo", "DEMO_DIR=\(directory.appendingPathComponent("demo").path)",
            "PORT=\(port)", "PROVISIONER_PORT=\(provisionerPort)", "PROVISIONER_DELAY=0.2",
            "CONVERGE=\(ConvergeBinary.executable.path)",
        ]
        process.currentDirectoryURL = ConvergeBinary.repository
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        try await eventually("the demo's daemon listens", timeout: .seconds(60)) { [self] in
            logText.contains("] listening") || !process.isRunning
        }
        guard process.isRunning,
            let line = logText.split(separator: "\n").first(where: { $0.hasPrefix("export CONVERGE_TOKEN=") }),
            let token = line.dropFirst("export CONVERGE_TOKEN=".count).split(separator: " ").first
        else { throw TimedOut(description: "make demo did not start:\n\(logTail())") }
        return String(token)
    }

    var logText: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    func logTail(_ count: Int = 40) -> String {
        logText.split(separator: "\n", omittingEmptySubsequences: false).suffix(count).joined(separator: "\n")
    }
}
