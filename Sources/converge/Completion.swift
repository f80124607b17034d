import ArgumentParser

/// `converge completion bash|zsh|fish`: the shell completion script, for commands, options and their values.
struct Completion: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the shell completion script for bash, zsh or fish.",
        discussion: """
            source <(converge completion bash)                                  bash, this shell
            converge completion bash > /etc/bash_completion.d/converge          bash, every shell
            converge completion zsh > "${fpath[1]}/_converge"                   zsh (compinit loads it)
            converge completion fish > ~/.config/fish/completions/converge.fish fish
            """)

    /// The shells ArgumentParser writes scripts for.
    enum Shell: String, CaseIterable, ExpressibleByArgument {
        case bash, zsh, fish
    }

    @Argument(help: "bash, zsh or fish.", completion: .list(Shell.allValueStrings), transform: choice)
    var shell: Shell

    func run() {
        print(Converge.completionScript(for: CompletionShell(rawValue: shell.rawValue)!), terminator: "")
    }
}
