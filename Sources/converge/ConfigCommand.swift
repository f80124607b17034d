import ArgumentParser
import ConvergeClient
import ConvergeCore
import Foundation

/// `converge config use-context|get-contexts|current-context`: the contexts `converge login` saved, as kubectl
/// config shows and switches them.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Show and switch the contexts of the config file (see converge login).",
        subcommands: [GetContexts.self, CurrentContext.self, UseContext.self])

    struct GetContexts: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "get-contexts", abstract: "List the contexts: the current one (*), names and servers.")

        func run() throws {
            try withConfig { config, _ in
                let rows = config.contexts.keys.sorted().map { name -> Value in
                    [
                        "current": .string(name == config.currentContext ? "*" : ""), "name": .string(name),
                        "server": .string(config.contexts[name]!.server),
                    ]
                }
                let table = Table(
                    columns: [
                        .init("current", path: "current"), .init("name", path: "name"), .init("server", path: "server"),
                    ],
                    emptyMessage: "no contexts; converge login makes one")
                print(render(.array(rows), as: .table, table: table), terminator: "")
            }
        }
    }

    struct CurrentContext: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "current-context", abstract: "Print the current context's name.")

        func run() throws {
            try withConfig { config, path in
                guard let name = config.currentContext else {
                    throw ConvergeError(.notFound, "no current context in \(path); converge login sets one")
                }
                print(name)
            }
        }
    }

    struct UseContext: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "use-context", abstract: "Make a context the current one.")

        @Argument(help: "The context's name.") var name: String

        func run() throws {
            try withConfig { config, path in
                _ = try config.context(named: name, path: path)
                config.currentContext = name
                try config.save(path: path)
                print("switched to context \(name)")
            }
        }
    }
}

/// Runs `body` on the config file (saving is up to it); an error prints one line and exits 1, as `withDaemon` does.
private func withConfig(_ body: (inout ClientConfig, String) throws -> Void) throws {
    do {
        var (config, path) = try ClientConfig.current()
        try body(&config, path)
    } catch {
        FileHandle.standardError.write(line: "converge: \(describe(error))")
        throw ExitCode.failure
    }
}
