import ArgumentParser
import ConvergeAPI
import ConvergeClient
import ConvergeCore
import Foundation

/// `converge env …`: workflows over a whole environment.
struct Env: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Environment workflows: fork.", subcommands: [Fork.self])

    /// `converge env fork SRC NEWID`.
    struct Fork: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fork an environment into <project>-<NEWID> (run again: reset the fork to its parent).")

        @Argument(help: "The environment to fork, such as ecomm-staging.") var source: String
        @Argument(help: "The fork's name in the project, one segment, such as pr42.") var name: String
        @Flag(help: "Copy the parent's environment defaults.") var copyEnvironmentDefaults = false
        @Flag(help: "Copy every instance's secrets to its fork.") var copySecrets = false
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await withDaemon {
                let output = try await options.client().api.forkEnvironment(
                    path: .init(id: source),
                    body: .json(
                        .init(
                            name: name, copyEnvironmentDefaults: copyEnvironmentDefaults, copySecrets: copySecrets)))
                let fork: Components.Schemas.Fork
                if case .created(let created) = output {
                    fork = try created.body.json
                } else {
                    fork = try output.ok.body.json
                }
                if options.output == .table {
                    print(
                        "environment/\(fork.environment) forked from \(fork.parent): \(fork.instances.count) instances")
                    for type in fork.skippedDefaults {
                        FileHandle.standardError.write(
                            line: "converge: the default for \(type) names a resource of \(fork.parent); not copied")
                    }
                } else {
                    try options.print(fork, table: nil)
                }
            }
        }
    }
}
