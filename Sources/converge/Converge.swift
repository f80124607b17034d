import ArgumentParser
import ConvergeCore
import ConvergeManifests
import Foundation

/// The converge command line: validate manifests, print schemas, and (later) drive the daemon.
@main
struct Converge: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "converge",
        abstract: "A reconciling operator that turns GitOps YAML into infrastructure deployments.",
        version: version,
        subcommands: [Serve.self, Validate.self, Schema.self, Version.self]
    )

    /// Runs the command; usage errors exit 2 (not ArgumentParser's 64) so that CI can tell them apart.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// How results are printed.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text
    case json
}

extension FileHandle {
    func write(line: String) {
        write(Data((line + "\n").utf8))
    }
}
