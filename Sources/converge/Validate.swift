import ArgumentParser
import ConvergeClient
import ConvergeCore
import ConvergeManifests
import Foundation

/// `converge validate [DIR]`: loads a manifests directory and explains it, or every error in it.
struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a manifests directory.",
        discussion: "Exits 0 with a summary, or 1 with every error as file:line:col: field: message on stderr."
    )

    @Argument(help: "The manifests directory.", completion: .directory)
    var directory: String = "."

    @Option(
        name: [.short, .long], help: "Output: table (a summary for people), json or yaml.",
        completion: .list(["table", "json", "yaml"]), transform: choice)
    var output: OutputFormat = .table

    @OptionGroup var limits: LimitOptions

    func validate() throws {
        guard [.table, .json, .yaml].contains(output) else {
            throw ValidationError("--output: expected table, json or yaml, got \(output.rawValue)")
        }
    }

    func run() throws {
        do {
            let state = try ManifestLoader(limits: limits.yamlLimits).load(directory: URL(fileURLWithPath: directory))
            let counts = ResourceKind.allCases.map { kind in (kind, state.counts[kind] ?? 0) }
            switch output {
            case .table, .wide, .name:
                let parts = counts.map { "\($0.1) \($0.0.rawValue.lowercased())\($0.1 == 1 ? "" : "s")" }
                print("\(directory): valid: " + parts.joined(separator: ", "))
            case .json, .yaml:
                let summary = Dictionary(uniqueKeysWithValues: counts.map { ($0.0.rawValue, Value.int($0.1)) })
                print(
                    render(["valid": true, "counts": .object(summary), "errors": []], as: output, table: nil),
                    terminator: "")
            }
        } catch let errors {
            switch output {
            case .table, .wide, .name:
                for diagnostic in errors.diagnostics { FileHandle.standardError.write(line: diagnostic.description) }
                let count = errors.diagnostics.count
                FileHandle.standardError.write(line: "\(count) error\(count == 1 ? "" : "s") in \(directory)")
            case .json, .yaml:
                let report: Value = ["valid": false, "errors": .array(errors.diagnostics.map(\.jsonValue))]
                print(render(report, as: output, table: nil), terminator: "")
            }
            throw ExitCode.failure
        }
    }
}

/// The bounds on hostile YAML, settable on every command that reads manifests.
struct LimitOptions: ParsableArguments {
    @Option(help: "The largest manifest file read, in bytes.")
    var maxFileBytes = YAMLLimits().maxFileBytes

    @Option(help: "The deepest nesting allowed in a manifest.")
    var maxDepth = YAMLLimits().maxDepth

    @Option(help: "How many nodes YAML aliases may expand to in one document.")
    var maxAliasExpansion = YAMLLimits().maxAliasExpansion

    var yamlLimits: YAMLLimits {
        YAMLLimits(maxFileBytes: maxFileBytes, maxDepth: maxDepth, maxAliasExpansion: maxAliasExpansion)
    }

    func validate() throws {
        guard maxFileBytes > 0, maxDepth > 0, maxAliasExpansion >= 0 else {
            throw ValidationError("limits must be positive")
        }
    }
}
