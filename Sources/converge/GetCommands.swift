import ArgumentParser
import ConvergeAPI
import ConvergeClient
import ConvergeCore
import Foundation

/// What `get` and `describe` read: deployments, instances and the desired resources of each kind.
enum ObjectKind: String, CaseIterable, ExpressibleByArgument {
    case deployments, instances, projects, environments, resources, bundles, provisioners, previews

    init?(argument: String) {
        let word = argument.lowercased()
        guard let kind = Self.allCases.first(where: { $0.rawValue == word || $0.rawValue.dropLast() == word }) else {
            return nil
        }
        self = kind
    }
}

/// `converge get <kind> [ID]`: a table of the objects of a kind (filtered, one page), or one object.
struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List deployments, instances or desired resources, or get one.",
        discussion: "Kinds: \(ObjectKind.allCases.map(\.rawValue).joined(separator: ", ")) (singular works too).")

    @Argument(help: "The kind.", completion: .list(ObjectKind.allValueStrings), transform: choice) var kind: ObjectKind
    @Argument(help: "One object's id.", transform: objectID) var id: String?
    @Option(help: "Deployments of this instance.") var instance: String?
    @Option(help: "Deployments or instances of this environment.") var environment: String?
    @Option(
        help: "Deployments in this status, or several separated by commas.",
        completion: .list(Deployment.Status.allValueStrings), transform: Self.statuses)
    var status: String?
    @Option(
        help: "Deployments with this action: provision, plan or decommission.",
        completion: .list(Components.Schemas.DeploymentAction.allValueStrings), transform: choice)
    var action: Components.Schemas.DeploymentAction?
    @Option(help: "Deployments created by this principal.") var actor: String?
    @Flag(help: "Only instances whose drift check reported changes (condition Drifted).") var drifted = false
    @Option(
        name: [.customShort("l"), .customLong("selector")],
        help: "Only those whose labels meet every requirement: -l tier=data,env!=prod,critical,!legacy.")
    var selector: String?
    @Option(help: "How many to list (1-500).") var limit = 50
    @Option(help: "The next page: a previous page's nextCursor (printed with -o json).") var cursor: String?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await withDaemon {
            let api = try options.client().api
            switch (kind, id) {
            case (.deployments, let id?):
                try options.print(
                    try await api.getDeployment(path: .init(id: id)).ok.body.json, table: Tables.deployments)
            case (.deployments, nil):
                let page = try await api.listDeployments(
                    query: .init(
                        instance: instance, environment: environment, status: status,
                        action: action, actor: actor, cursor: cursor, limit: limit)
                ).ok.body.json
                try options.print(page, table: Tables.deployments)
            case (.instances, let id?):
                try options.print(try await api.getInstance(path: .init(id: id)).ok.body.json, table: Tables.instances)
            case (.instances, nil):
                let page = try await api.listInstances(
                    query: .init(
                        environment: environment, drifted: drifted ? true : nil, labelSelector: selector,
                        cursor: cursor, limit: limit)
                ).ok.body.json
                try options.print(page, table: Tables.instances)
            case (_, let id?):
                let resource = try await api.getResource(path: .init(kind: resourceKind, id: id)).ok.body.json
                try options.print(resource, table: Tables.resources)
            case (_, nil):
                let page = try await api.listResources(
                    path: .init(kind: resourceKind), query: .init(labelSelector: selector, cursor: cursor, limit: limit)
                ).ok.body.json
                try options.print(page, table: Tables.resources)
            }
        }
    }

    func validate() throws {
        if drifted && (kind != .instances || id != nil) {
            throw ValidationError("--drifted lists instances: use it with `get instances` and no id")
        }
        if selector != nil && (kind == .deployments || id != nil) {
            throw ValidationError("-l selects instances and desired resources by their labels: use it without an id")
        }
    }

    var resourceKind: Components.Schemas.ResourceKind {
        Components.Schemas.ResourceKind(rawValue: kind.rawValue)!
    }

    /// `--status`: statuses separated by commas, each one of a deployment's.
    static func statuses(_ text: String) throws -> String {
        for word in text.split(separator: ",", omittingEmptySubsequences: false) {
            let _: Deployment.Status = try choice(String(word))
        }
        return text
    }
}

/// `converge describe <kind> ID`: one object, every field, for people.
struct Describe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show every field of one object.")

    @Argument(help: "The kind.", completion: .list(ObjectKind.allValueStrings), transform: choice) var kind: ObjectKind
    @Argument(help: "The object's id.", transform: objectID) var id: String
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await withDaemon {
            let api = try options.client().api
            switch kind {
            case .deployments:
                try options.print(try await api.getDeployment(path: .init(id: id)).ok.body.json, table: nil)
            case .instances:
                try options.print(try await api.getInstance(path: .init(id: id)).ok.body.json, table: nil)
            default:
                let kind = Components.Schemas.ResourceKind(rawValue: kind.rawValue)!
                try options.print(try await api.getResource(path: .init(kind: kind, id: id)).ok.body.json, table: nil)
            }
        }
    }
}

/// `converge audit`: who changed what, when, filtered.
struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The audit log of every mutation, newest first.")

    @Option(help: "Entries by this principal.") var actor: String?
    @Option(help: "Entries of this action, such as deployment.approved.") var action: String?
    @Option(help: "Entries about this kind of target, such as Deployment.") var targetKind: String?
    @Option(help: "Entries about this target id.") var target: String?
    @Option(help: "How many to list (1-500).") var limit = 50
    @Option(help: "The next page: a previous page's nextCursor.") var cursor: String?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await withDaemon {
            let page = try await options.client().api.listAudit(
                query: .init(
                    actor: actor, action: action, targetKind: targetKind, targetId: target, cursor: cursor, limit: limit
                )
            ).ok.body.json
            try options.print(page, table: Tables.audit)
        }
    }
}

/// `converge whoami`.
struct Whoami: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The principal and role of your token.")

    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await withDaemon {
            try options.print(try await options.client().api.getPrincipal().ok.body.json, table: nil)
        }
    }
}

/// `converge sync`: ask the daemon to re-read its manifests now.
struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ask the daemon to re-read its manifests now.")

    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await withDaemon {
            try options.print(try await options.client().api.requestSync().accepted.body.json, table: nil)
        }
    }
}

/// `converge status`: whether the daemon is alive and ready, and why not.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Whether the daemon answers and is ready (store reachable, manifests loaded, none refused), and its checks; "
            + "exit 1 while not ready.")

    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await withDaemon {
            let api = try options.client().api
            _ = try await api.getHealth().ok
            // Not ready is an answer of its own (503), not an error.
            let readiness: Components.Schemas.Readiness
            switch try await api.getReadiness() {
            case .ok(let ready): readiness = try ready.body.json
            case .serviceUnavailable(let notReady): readiness = try notReady.body.json
            case .undocumented(let status, _):
                throw APIFailure(
                    code: "internal", message: "readiness answered \(status)", details: nil, status: status)
            }
            try print(readiness)
            if !readiness.ready { throw ExitCode.failure }
        }
    }
}

extension Deployment.Status: ExpressibleByArgument {}
extension Components.Schemas.DeploymentAction: ExpressibleByArgument {}
