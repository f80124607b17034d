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
        discussion: """
            -o json|yaml: {"items": [...]}, one per changed leaf: resource (instance/ID), path, before and after \
            (absent where the leaf is), action (create, add, remove or change); -o name: the changed resources.
            Exit status: 0 no difference, 1 differences, 2 or more an error (as kubectl diff).
            """)

    @OptionGroup var manifests: ManifestFileOptions
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let documents = try manifests.documents(exitingWith: ExitCode(2))
        var changed: [String] = []
        var items: [Value] = []
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
                let name = "\(document.key.kind.rawValue.lowercased())/\(document.key.id)"
                changed.append(name)
                items += changes.map { Self.item(resource: name, created: before == nil, change: $0) }
                if options.output.isTable {
                    print(before == nil ? "\(name) (new)" : name)
                    for change in changes { print("  \(change)") }
                }
            }
        } catch {
            FileHandle.standardError.write(line: "converge: \(describe(error))")
            throw ExitCode(2)
        }
        switch options.output {
        case .table, .wide: break
        case .name: for name in changed { print(name) }
        case .json, .yaml: try options.print(Value.object(["items": .array(items)]), table: nil)
        }
        if !changed.isEmpty { throw ExitCode.failure }
    }

    /// One change as `-o json|yaml` lists it: the resource (`instance/ecomm-staging-db`), the leaf's path, its value
    /// before and after (left out where absent), and the action: `create` (a new resource), `add`, `remove` or
    /// `change` (a leaf of an existing one).
    static func item(resource: String, created: Bool, change: ValueChange) -> Value {
        var item: [String: Value] = ["resource": .string(resource), "path": .string(change.path)]
        item["before"] = change.before
        item["after"] = change.after
        item["action"] =
            switch (created, change.before, change.after) {
            case (true, _, _): "create"
            case (false, nil, _): "add"
            case (false, _, nil): "remove"
            default: "change"
            }
        return .object(item)
    }
}
