import ArgumentParser
import ConvergeAPI
import ConvergeClient
import ConvergeCore
import Foundation

/// `converge env …`: workflows over a whole environment.
struct Env: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Environment workflows: fork, default, deploy, decommission, rollouts, delete.",
        subcommands: [
            Fork.self, Default.self, Deploy.self, Decommission.self, Rollouts.self, Delete.self,
        ])

    /// `converge env delete ENV`.
    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete an API-owned environment once every instance is decommissioned or orphaned.")

        @Argument(help: "The environment, such as ecomm-pr42.") var environment: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await withDaemon {
                _ = try await options.client().api.deleteEnvironment(path: .init(id: environment)).noContent
                print("environment/\(environment) deleted")
            }
        }
    }

    /// `converge env default ENV RESOURCE [--type TYPE]`.
    struct Default: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set an API-owned environment's default for a connection type to an imported resource.")

        @Argument(help: "The environment, such as ecomm-pr42.") var environment: String
        @Argument(help: "The imported resource: its id, or its name in the environment or project.")
        var resource: String
        @Option(help: "The connection type (default: the resource's own type).") var type: String?
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await withDaemon {
                _ = try await options.client().api.setEnvironmentDefault(
                    path: .init(id: environment, _type: type ?? "-"), body: .json(.init(resource: resource))
                ).noContent
                print("environment/\(environment): default\(type.map { " for \($0)" } ?? "") set to \(resource)")
            }
        }
    }

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
                if options.output.isTable {
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

/// `converge instance …`: workflows over one instance.
struct InstanceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "instance", abstract: "Instance workflows: copy (promote), orphan.",
        subcommands: [Copy.self, Orphan.self])

    /// `converge instance orphan ID`.
    struct Orphan: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop managing an instance without decommissioning it (its infrastructure stays).")

        @Argument(help: "The instance.") var instance: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await withDaemon {
                let record = try await options.client().api.orphanInstance(path: .init(id: instance)).ok.body.json
                if options.output.isTable {
                    print("instance/\(record.id) orphaned: no longer managed; nothing was decommissioned")
                } else {
                    try options.print(record, table: nil)
                }
            }
        }
    }
}
