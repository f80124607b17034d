import ArgumentParser
import ConvergeCore

extension Converge {
    /// For arguments ArgumentParser refused: the message for a mistyped command — `unknown command "gett"; did you
    /// mean "get"?` — when they name a group of commands and then a word that is none of its commands; nil when the
    /// refusal is about something else.
    ///
    /// A group that runs a default command (`preview ID` is `preview up ID`) takes an unknown word as that command's
    /// argument, so there only a word close to one of its commands is called a mistyped command.
    static func unknownCommand(in arguments: [String]) -> String? {
        var command: any ParsableCommand.Type = Converge.self
        var path = ["converge"]
        for word in arguments {
            let subcommands = command.configuration.subcommands
            guard !word.hasPrefix("-"), !subcommands.isEmpty, word != "help" else { return nil }
            if let next = subcommands.first(where: {
                $0._commandName == word || $0.configuration.aliases.contains(word)
            }) {
                command = next
                path.append(word)
                continue
            }
            let names = subcommands.map { $0._commandName }
            let hint = didYouMean(word, among: names)
            if hint.isEmpty && command.configuration.defaultSubcommand != nil { return nil }
            let group = path.count == 1 ? "" : " for \"\(path.joined(separator: " "))\""
            return "unknown command \"\(word)\"\(group)"
                + (hint.isEmpty ? "; see \"\(path.joined(separator: " ")) --help\"" : hint)
        }
        return nil
    }
}

/// A value of `T` as ArgumentParser would parse it (`transform: choice`), refusing an unknown word with the closest
/// one and the list, so that a typo is a usage error (exit 2) that says what was meant: `The value 'RUNNNING' is
/// invalid for '--status <status>': "RUNNNING" is none of PROPOSED, …; did you mean "RUNNING"?`.
func choice<T: ExpressibleByArgument>(_ text: String) throws -> T {
    guard let value = T(argument: text) else { throw UnknownValue(text: text, candidates: T.allValueStrings) }
    return value
}

/// A word that is none of the values an argument takes.
struct UnknownValue: Error, CustomStringConvertible {
    var text: String
    var candidates: [String]

    var description: String {
        "\"\(text)\" is none of \(candidates.joined(separator: ", "))" + didYouMean(text, among: candidates)
    }
}
