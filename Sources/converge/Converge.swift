import ArgumentParser
import ConvergeCore
import ConvergeManifests
import Foundation

/// The converge command line: validate manifests, run the daemon, and drive it through its API.
@main
struct Converge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "converge",
        abstract: "A reconciling operator that turns GitOps YAML into infrastructure deployments.",
        discussion: """
            Commands that talk to the daemon take --server, --token and --context (or CONVERGE_SERVER and
            CONVERGE_TOKEN, or the current context of ~/.config/converge/config.json, which converge login writes) and
            -o table|wide|name|json|yaml.

            Exit status: 0 success; 1 an error (the daemon's answer or a connection failure, on stderr); 2 a usage
            error. With --wait: 0 COMPLETED, 3 FAILED, 4 ABORTED, 5 REJECTED, 6 still running at --timeout. With
            --follow (rollouts, previews): 0 COMPLETED, 3 FAILED, 4 REPLACED, 6 still running at --timeout.
            converge validate exits 1 when the manifests have errors.
            """,
        version: convergeVersion,
        subcommands: [
            Serve.self, Validate.self, Schema.self, Get.self, Describe.self, Apply.self, Diff.self, Delete.self,
            Deploy.self,
            Propose.self, Plan.self,
            Approve.self, Reject.self, Abort.self, Rollback.self, Compare.self, Logs.self, Watch.self, Audit.self,
            Env.self, InstanceCommand.self, PreviewCommand.self, Sync.self, Status.self, Whoami.self, Token.self,
            Secret.self, InitKey.self, Login.self, ConfigCommand.self, Completion.self,
            Version.self,
        ]
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
                let message =
                    unknownCommand(in: Array(CommandLine.arguments.dropFirst())).map { "error: \($0)" }
                    ?? fullMessage(for: error)
                FileHandle.standardError.write(Data((message + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

extension FileHandle {
    func write(line: String) {
        write(Data((line + "\n").utf8))
    }
}
