import ArgumentParser
import ConvergeCore
import ConvergeServer
import Foundation

extension Role: ExpressibleByArgument {}

/// `converge token create|list`: the API's bearer tokens, in the tokens file the daemon reads.
///
/// These act on the file directly, on the daemon's host, as an administrator would: the daemon never hands out
/// tokens, and it picks up a new one without a restart.
struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create and list the API's bearer tokens (on the daemon's host).",
        subcommands: [Create.self, List.self])

    struct FileOptions: ParsableArguments {
        @Option(name: .customLong("tokens-file"), help: "The tokens file the daemon reads (default converge.tokens).")
        var tokensFile = "converge.tokens"
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a token for a principal and print it, once; only its SHA-256 is stored.")

        @Option(help: "Who the token is for; the actor of everything it does.")
        var name: String

        @Option(
            help: "viewer, deployer, approver or admin.", completion: .list(Role.allValueStrings), transform: choice)
        var role: Role

        @OptionGroup var file: FileOptions

        func run() throws {
            do {
                print(try TokensFile(path: file.tokensFile).create(name: name, role: role))
            } catch let error as ConvergeError {
                FileHandle.standardError.write(line: "converge token create: \(error.message)")
                throw ExitCode.failure
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tokens' principals and roles.")

        @OptionGroup var file: FileOptions

        func run() throws {
            let formatter = ISO8601DateFormatter()
            for entry in try TokensFile(path: file.tokensFile).entries() {
                print("\(entry.name)\t\(entry.role.rawValue)\t\(formatter.string(from: entry.createdAt))")
            }
        }
    }
}
