import ArgumentParser
import ConvergeAPI
import ConvergeClient
import ConvergeCore
import ConvergeManifests
import Foundation

extension InstanceCommand {
    /// `converge instance copy SRC --to DST [--overrides FILE] [--copy-secrets]`, also `converge instance promote`.
    struct Copy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "copy",
            abstract: "Copy an instance's params and version onto another of the same bundle and plan the change.",
            discussion: """
                The destination (API-owned, such as an instance of a fork) gets the source's params, as recorded once \
                it is PROVISIONED, deep-merged with the overrides file (YAML or JSON: objects merge member by member, \
                lists and scalars replace, null deletes), and the source's version; it keeps its own connections, \
                labels and name. A PLAN of the new configuration runs before anything applies; then the destination \
                environment's policy decides (auto deploys, review proposes). Running it again changes nothing.
                """,
            aliases: ["promote"])

        @Argument(help: "The instance to copy, such as ecomm-staging-db.") var source: String
        @Option(help: "The destination instance, such as ecomm-production-db.") var to: String
        @Option(help: "A YAML or JSON file of params deep-merged onto the source's.", completion: .file())
        var overrides: String?
        @Flag(help: "Copy the source's secrets to the destination.") var copySecrets = false
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let params: Value
            do {
                params = try overrides.map(Self.readOverrides) ?? [:]
            } catch {
                FileHandle.standardError.write(line: "converge: \(describe(error))")
                throw ExitCode(2)
            }
            try await withDaemon {
                let copy = try await options.client().api.copyInstance(
                    path: .init(id: source),
                    body: .json(
                        .init(
                            to: to,
                            overrides: .init(additionalProperties: params.objectValue?.mapValues(\.container) ?? [:]),
                            copySecrets: copySecrets))
                ).ok.body.json
                guard options.output.isTable else { return try options.print(copy, table: nil) }
                print(
                    "instance/\(copy.destination) copied from \(copy.source): "
                        + (copy.changed ? "configured" : "unchanged"))
                for change in copy.changes {
                    let before = change.before.map { Value($0).canonicalJSON } ?? "<absent>"
                    let after = change.after.map { Value($0).canonicalJSON } ?? "<absent>"
                    print("  \(change.path): \(before) -> \(after)")
                }
                if !copy.copiedSecrets.isEmpty {
                    print("secrets copied: \(copy.copiedSecrets.joined(separator: ", "))")
                }
                if let plan = copy.plan {
                    print("plan \(plan.id) \(plan.status.rawValue)\(plan.created ? "" : " (already staged)")")
                } else {
                    print("no plan staged: \(copy.noPlanReason ?? "unknown reason")")
                }
            }
        }

        /// The params of an overrides file: one mapping, in YAML or JSON; its errors name the file, line and column.
        static func readOverrides(_ path: String) throws -> Value {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw ConvergeError(
                    .invalidArgument, "cannot read the overrides file \(path): \(error.localizedDescription)")
            }
            let documents: [YAMLNode]
            do {
                documents = try YAMLParser().parse(text, file: path)
            } catch {
                throw ConvergeError(.invalidArgument, error.description)
            }
            guard documents.count == 1, let root = documents.first else {
                throw ConvergeError(
                    .invalidArgument,
                    "\(path): the overrides file must be one mapping of params, got \(documents.count) documents")
            }
            guard root.entries != nil else {
                throw ConvergeError(
                    .invalidArgument, "\(root.location): expected a mapping of params, got \(root.typeDescription)")
            }
            try checkUniqueKeys(root)
            return root.value
        }

        /// Refuses a mapping, at any depth, that names a key twice (YAML would otherwise keep the first silently).
        static func checkUniqueKeys(_ node: YAMLNode, path: String = "") throws {
            if let entries = node.entries {
                var seen: Set<String> = []
                for entry in entries {
                    let field = path.isEmpty ? entry.key : "\(path).\(entry.key)"
                    guard seen.insert(entry.key).inserted else {
                        throw ConvergeError(.invalidArgument, "\(entry.keyLocation): \(field): duplicate key")
                    }
                    try checkUniqueKeys(entry.value, path: field)
                }
            } else if let elements = node.elements {
                for (index, element) in elements.enumerated() {
                    try checkUniqueKeys(element, path: "\(path)[\(index)]")
                }
            }
        }
    }
}
