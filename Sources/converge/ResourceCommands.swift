import ArgumentParser
import ConvergeAPI
import ConvergeClient
import ConvergeCore
import ConvergeManifests
import Foundation

/// The manifests `apply` and `diff` read: a file or a directory, checked for their own shape here.
struct ManifestFileOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "A YAML file, or a directory of them.", completion: .file())
    var file: String

    /// The documents, or every error as `file:line:col: field: message` on stderr and an exit with `code`.
    func documents(exitingWith code: ExitCode) throws -> [ManifestDocument] {
        do {
            return try ManifestDocument.read(URL(fileURLWithPath: file))
        } catch {
            for diagnostic in error.diagnostics { FileHandle.standardError.write(line: diagnostic.description) }
            throw code
        }
    }
}

/// `converge apply -f PATH`: apply the manifests of a file or a directory through the API, as kubectl apply does.
struct Apply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply manifests through the API: each resource is created or replaced, then owned by the API.",
        discussion: """
            Resources the manifests directory of the daemon declares cannot be applied (change them there). A
            document's metadata.resourceVersion, when given, must be the current one. Prints one line per
            resource: created, configured or unchanged.
            """)

    @OptionGroup var manifests: ManifestFileOptions
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let documents = try manifests.documents(exitingWith: .failure)
        try await withDaemon {
            let api = try options.client().api
            var results: [Components.Schemas.Resource] = []
            for document in documents {
                let path = Operations.ApplyResource.Input.Path(kind: document.key.plural, id: document.key.id)
                let before = try? await api.getResource(path: .init(kind: path.kind, id: path.id)).ok.body.json
                let output = try await api.applyResource(path: path, body: .json(document.value.container))
                let resource: Components.Schemas.Resource
                let outcome: String
                switch output {
                case .created(let created):
                    resource = try created.body.json
                    outcome = "created"
                default:
                    resource = try output.ok.body.json
                    outcome = resource.resourceVersion == before?.resourceVersion ? "unchanged" : "configured"
                }
                if options.output.isTable {
                    print("\(document.key.kind.rawValue.lowercased())/\(document.key.id) \(outcome)")
                } else {
                    results.append(resource)
                }
            }
            if !options.output.isTable { try options.print(["items": results], table: nil) }
        }
    }
}

/// `converge delete <kind> ID`: delete a resource applied through the API.
struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete a resource applied through the API, once nothing refers to it.")

    @Argument(
        help: "The kind: projects, environments, resources, bundles, provisioners, instances, previews.",
        completion: .list(ObjectKind.allValueStrings), transform: choice)
    var kind: ObjectKind
    @Argument(help: "The resource's id.") var id: String
    @Option(help: "Delete only while the resource has this resource version.") var resourceVersion: String?
    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard kind != .deployments else { throw ValidationError("deployments are never deleted; abort one instead") }
    }

    func run() async throws {
        try await withDaemon {
            _ = try await options.client().api.deleteResource(
                path: .init(kind: Components.Schemas.ResourceKind(rawValue: kind.rawValue)!, id: id),
                query: .init(resourceVersion: resourceVersion)
            ).noContent
            print("\(kind.rawValue.dropLast())/\(id) deleted")
        }
    }
}

extension ResourceKey {
    /// The kind as the API's paths spell it: `instances`.
    var plural: Components.Schemas.ResourceKind {
        Components.Schemas.ResourceKind(rawValue: kind.rawValue.lowercased() + "s")!
    }
}

/// `converge diff -f PATH`: what applying the manifests would change on the server, leaf by leaf, as kubectl diff.
struct Diff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what applying manifests would change (a server-side dry run), leaf by leaf.",
        discussion: "Exit status: 0 no difference, 1 differences, 2 or more an error (as kubectl diff).")

    @OptionGroup var manifests: ManifestFileOptions
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let documents = try manifests.documents(exitingWith: ExitCode(2))
        var differs = false
        do {
            let api = try options.client().api
            for document in documents {
                let path = Operations.ApplyResource.Input.Path(kind: document.key.plural, id: document.key.id)
                let current = try? await api.getResource(path: .init(kind: path.kind, id: path.id)).ok.body.json
                let output = try await api.applyResource(
                    path: path, query: .init(dryRun: true), body: .json(document.value.container))
                let would: Components.Schemas.Resource
                if case .created(let created) = output {
                    would = try created.body.json
                } else {
                    would = try output.ok.body.json
                }
                let before = current.map { Value($0.spec) }
                let changes = (before ?? [:]).changes(to: Value(would.spec))
                guard before == nil || !changes.isEmpty else { continue }
                differs = true
                let name = "\(document.key.kind.rawValue.lowercased())/\(document.key.id)"
                print(before == nil ? "\(name) (new)" : name)
                for change in changes {
                    let from = change.before?.canonicalJSON ?? "<absent>"
                    let to = change.after?.canonicalJSON ?? "<absent>"
                    print("  \(change.path): \(from) -> \(to)")
                }
            }
        } catch {
            FileHandle.standardError.write(line: "converge: \(describe(error))")
            throw ExitCode(2)
        }
        if differs { throw ExitCode.failure }
    }
}
