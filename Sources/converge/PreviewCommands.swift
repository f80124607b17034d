import ArgumentParser
import ConvergeAPI
import ConvergeClient
import ConvergeCore
import ConvergeManifests
import Foundation
import OpenAPIRuntime

/// `converge preview …`: pull-request previews (DESIGN §6) from one preview file.
struct PreviewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preview",
        abstract: "Stand up, show or destroy a preview environment from a preview file.",
        discussion: """
            converge preview ecomm-pr42 -f preview.yaml --follow    fork the base, pin defaults, apply overrides, deploy
            converge preview show ecomm-pr42                        the preview's instances and outputs
            converge preview destroy ecomm-pr42 --follow            decommission it and delete its environment

            A preview is named by its environment's id, <project>-<name>, as `get previews` lists it; the name
            alone (pr42) is accepted too.
            """,
        subcommands: [Up.self, Show.self, Destroy.self], defaultSubcommand: Up.self)

    /// `converge preview ID -f FILE [--follow]`.
    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "up",
            abstract: "Stand up or converge preview <project>-<ID> from a preview file; run again, it converges.",
            discussion: """
                ${VAR}, $VAR and ${VAR:-default} in the file's values come from the environment. Exits 2 when the file \
                is wrong (every error as file:line:col: field: message); with --follow, 0 once every instance is \
                deployed, 3 when the rollout failed, 4 when it was replaced, 6 at the timeout.
                """)

        @Argument(help: "The preview: its environment id (ecomm-pr42), or its name in the file's project (pr42).")
        var previewID: String
        @Option(name: [.short, .customLong("file")], help: "The preview file (YAML).") var file: String
        @OptionGroup var follow: FollowOptions
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let preview: Preview
            do {
                preview = try PreviewFile.load(
                    try String(contentsOfFile: file, encoding: .utf8), file: file,
                    environment: ProcessInfo.processInfo.environment)
            } catch let errors as ManifestErrors {
                for diagnostic in errors.diagnostics { FileHandle.standardError.write(line: diagnostic.description) }
                throw ExitCode(2)
            } catch {
                FileHandle.standardError.write(line: "converge: cannot read \(file): \(error.localizedDescription)")
                throw ExitCode(2)
            }
            let prefix = preview.project + "-"
            let name = previewID.hasPrefix(prefix) ? String(previewID.dropFirst(prefix.count)) : previewID
            if let problem = Identifier.problem(withSegment: name) {
                FileHandle.standardError.write(
                    line: "converge: preview \"\(previewID)\": expected \(prefix)NAME or NAME (the file's project is "
                        + "\(preview.project)): \(problem)")
                throw ExitCode(2)
            }
            try await withDaemon {
                let client = try options.client()
                let id = Identifier.join(preview.project, name)
                let output = try await client.api.applyPreview(
                    path: .init(id: id), body: .json(Self.fields(of: preview).container))
                let applied: Components.Schemas.Preview
                if case .created(let created) = output {
                    applied = try created.body.json
                } else {
                    applied = try output.ok.body.json
                }
                if options.output.isTable {
                    let outcome = applied.created == true ? "created" : "converged"
                    FileHandle.standardOutput.write(line: "preview/\(id) \(outcome) from \(preview.baseEnvironment)")
                }
                var outcome = WaitOutcome.completed
                if follow.follow, let rollout = applied.rollout {
                    let progress = RolloutProgress(client: client, write: { FileHandle.standardError.write(line: $0) })
                    let (ended, ending) = try await progress.wait(for: rollout.id, timeout: .seconds(follow.timeout))
                    outcome = ending
                    if let error = ended.error {
                        FileHandle.standardError.write(line: "converge: rollout \(ended.id) failed: \(error)")
                    }
                }
                let current = try await client.api.getPreview(path: .init(id: id)).ok.body.json
                try printPreview(current, options: options)
                if outcome != .completed { throw ExitCode(outcome.rawValue) }
            }
        }

        /// The preview's fields as the API takes them.
        static func fields(of preview: Preview) -> Value {
            var fields: [String: Value] = [
                "project": .string(preview.project), "baseEnvironment": .string(preview.baseEnvironment),
                "copyEnvironmentDefaults": .bool(preview.copyEnvironmentDefaults),
                "copySecrets": .bool(preview.copySecrets), "attributes": preview.attributes,
                "environmentDefaults": .array(
                    preview.environmentDefaults.map {
                        ["resourceType": .string($0.resourceType), "resourceId": .string($0.resourceId)]
                    }),
                "instances": .object(
                    preview.instances.mapValues { override in
                        var members: [String: Value] = [:]
                        members["version"] = override.version.map { .string($0) }
                        members["params"] = override.params
                        if !override.secrets.isEmpty {
                            members["secrets"] = .object(override.secrets.mapValues { .string($0) })
                        }
                        return .object(members)
                    }),
            ]
            fields["ttl"] = preview.ttlSeconds.map { .string("\($0)s") }
            return .object(fields)
        }
    }

    /// `converge preview show ID`.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a preview: its instances, their status and outputs, its rollout and expiry.")

        @Argument(help: "The preview: its environment id (ecomm-pr42) or its name (pr42).", transform: objectID)
        var preview: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await withDaemon {
                let client = try options.client()
                let id = try await resolve(preview, client: client)
                try printPreview(try await client.api.getPreview(path: .init(id: id)).ok.body.json, options: options)
            }
        }
    }

    /// `converge preview destroy ID [--follow]`.
    struct Destroy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Destroy a preview: decommission its instances, downstream first, then delete its environment.")

        @Argument(help: "The preview: its environment id (ecomm-pr42) or its name (pr42).", transform: objectID)
        var preview: String
        @Flag(
            help: """
                Exit 0, saying so on standard error, when there is no such preview (CI destroying the preview of a \
                pull request that never had one).
                """)
        var ignoreNotFound = false
        @OptionGroup var follow: FollowOptions
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await withDaemon {
                let client = try options.client()
                let rollout: Components.Schemas.Rollout
                do {
                    let id = try await resolve(preview, client: client)
                    rollout = try await client.api.destroyPreview(path: .init(id: id)).accepted.body.json
                } catch let error where ignoreNotFound && isNotFound(error) {
                    FileHandle.standardError.write(line: "preview \(preview) not found: nothing to destroy")
                    return
                }
                try await show(rollout, options: options, follow: follow, client: client)
            }
        }
    }
}

/// A preview's environment id from its id or its name: the one preview whose id is `text` or ends with `-text`.
private func resolve(_ text: String, client: ConvergeClient) async throws -> String {
    let ids = try await client.api.listResources(path: .init(kind: .previews), query: .init(limit: 500)).ok.body.json
        .items.map(\.id)
    if ids.contains(text) { return text }
    let matches = ids.filter { $0.hasSuffix("-" + text) }
    guard matches.count == 1 else {
        throw ConvergeError(
            matches.isEmpty ? .notFound : .invalidArgument,
            matches.isEmpty
                ? "preview \(text) not found"
                : "preview \(text) is ambiguous: \(matches.joined(separator: ", ")); give its environment id")
    }
    return matches[0]
}

/// Whether `error` says that what a command named does not exist.
private func isNotFound(_ error: any Error) -> Bool {
    switch error {
    case let error as ClientError: isNotFound(error.underlyingError)
    case let error as APIFailure: error.code == ConvergeError.Code.notFound.rawValue
    case let error as ConvergeError: error.code == .notFound
    default: false
    }
}

/// A preview: in a table, a line per instance with its outputs' endpoints; as JSON or YAML, the whole object (what
/// CI reads for a pull-request comment).
private func printPreview(_ preview: Components.Schemas.Preview, options: ClientOptions) throws {
    if options.output.isTable, let expiry = preview.expiresAt {
        FileHandle.standardOutput.write(line: "preview/\(preview.environment) expires at \(expiry.formatted(.iso8601))")
    }
    try options.print(preview, table: Tables.previewInstances)
}

extension Tables {
    /// A preview's instances (the table view shows a preview's `instances`).
    static let previewInstances = Table(
        columns: [
            .init("instance", path: "id"), .init("status", path: "status"),
            .init("endpoints") { row in
                let endpoints = (row["outputs"]?.objectValue ?? [:]).sorted { $0.key < $1.key }.compactMap {
                    artifact, value in
                    value["endpoint"]?.stringValue ?? value["url"]?.stringValue.map { "\(artifact)=\($0)" }
                }
                return endpoints.joined(separator: " ")
            },
        ], emptyMessage: "no instances")
}
