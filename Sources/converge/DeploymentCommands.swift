import ArgumentParser
import ConvergeAPI
import ConvergeClient
import ConvergeCore
import Foundation

/// `converge deploy INSTANCE`: deploy what the manifests declare for an instance now, in the queue at once
/// (environments with the auto policy; elsewhere it is refused: use propose).
struct Deploy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Deploy an instance now (auto environments), or decommission one removed from the manifests.")

    @Argument(help: "The instance, such as ecomm-staging-db.") var instance: String
    @Flag(help: "Decommission the instance (only once it is removed from the manifests).") var decommission = false
    @OptionGroup var wait: WaitOptions
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await withDaemon {
            let client = try options.client()
            let output = try await client.api.createDeployment(
                path: .init(id: instance),
                body: .json(.init(action: decommission ? .decommission : .provision, mode: .direct)))
            try await show(try output.deployment, options: options, wait: wait, client: client)
        }
    }
}

/// `converge propose INSTANCE`: propose what the manifests declare for an instance, for an approver.
struct Propose: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Propose a deployment of an instance for approval.")

    @Argument(help: "The instance.") var instance: String
    @Flag(help: "Propose the decommission of an instance removed from the manifests.") var decommission = false
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await withDaemon {
            let output = try await options.client().api.createDeployment(
                path: .init(id: instance),
                body: .json(.init(action: decommission ? .decommission : .provision, mode: .proposal)))
            try options.print(try output.deployment, table: Tables.deployments)
        }
    }
}

/// `converge plan INSTANCE` or `converge plan --proposal ID`: what a deployment would change, without changing it.
struct Plan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plan an instance's desired state, or a proposal's snapshot, without applying it.")

    @Argument(help: "The instance (or give --proposal).") var instance: String?
    @Option(help: "A PROPOSED deployment to plan.", transform: objectID) var proposal: String?
    @OptionGroup var wait: WaitOptions
    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard (instance == nil) != (proposal == nil) else {
            throw ValidationError("give an instance or --proposal, not both")
        }
    }

    func run() async throws {
        try await withDaemon {
            let client = try options.client()
            let deployment: Components.Schemas.Deployment
            if let proposal {
                deployment = try await client.api.planDeployment(path: .init(id: proposal)).deployment
            } else {
                deployment = try await client.api.createDeployment(
                    path: .init(id: instance!), body: .json(.init(action: .plan))
                ).deployment
            }
            let ended = try await show(deployment, options: options, wait: wait, client: client)
            if wait.wait && options.output.isTable {
                let instance = try await client.api.getInstance(path: .init(id: ended.instance)).ok.body.json
                print(Self.changes(from: instance, to: ended), terminator: "")
            }
        }
    }

    /// What a completed plan would change, after its row: each leaf of the instance's recorded configuration
    /// (params, connection params, version: what was last applied) that the planned snapshot changes, as
    /// `path: before -> after`, and what the provisioner's result reports changing.
    static func changes(from instance: Components.Schemas.Instance, to plan: Components.Schemas.Deployment) -> String {
        func configuration(params: Value?, connectionParams: Value?, version: String?) -> Value {
            var fields: [String: Value] = ["params": params ?? [:], "connectionParams": connectionParams ?? [:]]
            fields["version"] = version.map(Value.string)
            return .object(fields)
        }
        let changes = configuration(
            params: instance.params.map(Value.init), connectionParams: instance.connectionParams.map(Value.init),
            version: instance.version
        ).changes(
            to: configuration(
                params: Value(plan.params), connectionParams: Value(plan.connectionParams), version: plan.version))
        var text = "\n" + (changes.isEmpty ? "no changes to the recorded configuration\n" : "changes:\n")
        for change in changes { text += "  \(change)\n" }
        if let reported = plan.planResult.map(Value.init)?["changes"], reported != [], reported != [:] {
            text += "the provisioner reports: \(reported.canonicalJSON)\n"
        }
        return text
    }
}

/// `converge approve ID`.
struct Approve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Approve a proposal; it enters the queue. The proposer cannot approve their own.")

    @Argument(help: "The PROPOSED deployment.", transform: objectID) var deployment: String
    @Option(
        help: "Approve only this step (review, plan or apply); refused when the proposal awaits another.",
        completion: .list(Components.Schemas.Decision.StepPayload.allValueStrings), transform: choice)
    var step: Components.Schemas.Decision.StepPayload?
    @OptionGroup var wait: WaitOptions
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await withDaemon {
            let client = try options.client()
            let approved = try await client.api.approveDeployment(
                path: .init(id: deployment), body: step.map { .json(.init(step: $0)) }
            ).ok.body.json
            try await show(approved, options: options, wait: wait, client: client)
        }
    }
}

/// `converge reject ID [--reason TEXT]`.
struct Reject: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Reject a proposal.")

    @Argument(help: "The PROPOSED deployment.", transform: objectID) var deployment: String
    @Option(help: "Why, for the audit log.") var reason: String?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await withDaemon {
            let rejected = try await options.client().api.rejectDeployment(
                path: .init(id: deployment), body: .json(.init(reason: reason))
            ).ok.body.json
            try options.print(rejected, table: Tables.deployments)
        }
    }
}

/// `converge abort ID [--reason TEXT]`.
struct Abort: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Abort a proposed, queued or running deployment; work already done is not undone.")

    @Argument(help: "The deployment.", transform: objectID) var deployment: String
    @Option(help: "Why, for the audit log.") var reason: String?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await withDaemon {
            let aborted = try await options.client().api.abortDeployment(
                path: .init(id: deployment), body: .json(.init(reason: reason))
            ).ok.body.json
            try options.print(aborted, table: Tables.deployments)
        }
    }
}

/// `converge rollback INSTANCE --to DEPLOYMENT`.
struct Rollback: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Deploy an earlier COMPLETED provision of an instance again (its params, connections, version).")

    @Argument(help: "The instance.") var instance: String
    @Option(help: "The COMPLETED provision deployment to go back to.", transform: objectID) var to: String
    @OptionGroup var wait: WaitOptions
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await withDaemon {
            let client = try options.client()
            let output = try await client.api.rollbackInstance(path: .init(id: instance), body: .json(.init(to: to)))
            try await show(try output.deployment, options: options, wait: wait, client: client)
        }
    }
}

/// `converge compare A B`.
struct Compare: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Leaf-level differences between two deployments, or (compare env A B) two environments.",
        discussion: """
            converge compare A B: params, connection params and version of two deployments.
            converge compare env A B: every instance of two environments as declared (bundle, version, params,
            connections), by instance name.
            """)

    @Argument(help: "Two deployments, or env and two environments.") var items: [String]
    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard items.count == 2 || (items.count == 3 && items[0] == "env") else {
            throw ValidationError("expected two deployments, or env and two environments")
        }
    }

    func run() async throws {
        try await withDaemon {
            let api = try options.client().api
            let comparison =
                items.count == 3
                ? try await api.compareEnvironments(query: .init(from: items[1], to: items[2])).ok.body.json
                : try await api.compareDeployments(query: .init(from: items[0], to: items[1])).ok.body.json
            if options.output.isTable {
                try options.print(["items": comparison.changes], table: Tables.changes)
            } else {
                try options.print(comparison, table: nil)
            }
        }
    }
}

/// `converge logs [-f] DEPLOYMENT`.
struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A deployment's log and status changes; -f follows them until it is terminal.")

    @Argument(help: "The deployment.", transform: objectID) var deployment: String
    @Flag(name: [.short, .long], help: "Follow until the deployment is terminal.") var follow = false
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await withDaemon {
            let client = try options.client()
            if follow {
                for try await event in try await client.followEvents(of: deployment, after: nil) {
                    try printEvent(event)
                }
                return
            }
            var cursor: String?
            repeat {
                let page = try await client.api.listDeploymentEvents(
                    path: .init(id: deployment), query: .init(cursor: cursor, limit: 500),
                    headers: .init(accept: [.init(contentType: .json)])
                ).ok.body.json
                for event in page.items { try printEvent(event) }
                cursor = page.nextCursor
            } while cursor != nil
        }
    }

    /// One event: a progress line for people, one JSON (or YAML) document per event for scripts.
    func printEvent(_ event: Components.Schemas.DeploymentEvent) throws {
        switch options.output {
        case .table, .wide: print(DeploymentProgress.line(event))
        case .json: print(try ConvergeClient.value(event).canonicalJSON)
        case .yaml, .name: try options.print(event, table: nil)
        }
    }
}

/// `converge watch`: every deployment change as it happens, resumed after a reconnect.
struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print every deployment change as it happens (creation and each status change).")

    @Option(help: "Resume after this change sequence (as a previous watch printed it).") var after: String?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await withDaemon {
            let client = try options.client()
            var last = after
            var failures = 0
            while true {
                do {
                    for try await change in try await client.watch(after: last) {
                        last = String(change.sequence)
                        failures = 0
                        // Written unbuffered, so a pipe sees each change as it happens.
                        switch options.output {
                        case .json:
                            FileHandle.standardOutput.write(line: try ConvergeClient.value(change).canonicalJSON)
                        default:
                            FileHandle.standardOutput.write(
                                line: "\(change.sequence)  \(change.at.formatted(.iso8601))  \(change.deployment)  "
                                    + "\(change.instance)  \(change.status.rawValue)")
                        }
                    }
                } catch let error as APIFailure {
                    throw error
                } catch {
                    failures += 1
                    if failures > 5 { throw error }
                    FileHandle.standardError.write(line: "converge: the stream broke (\(describe(error))); resuming")
                    try await Task.sleep(for: .seconds(1))
                }
            }
        }
    }
}

extension Operations.CreateDeployment.Output {
    /// The deployment, created (201) or the open one of the same desired state (200).
    var deployment: Components.Schemas.Deployment {
        get throws {
            if case .created(let created) = self { return try created.body.json }
            return try ok.body.json
        }
    }
}

extension Operations.RollbackInstance.Output {
    /// The rollback, created (201) or the open one of the same snapshot (200).
    var deployment: Components.Schemas.Deployment {
        get throws {
            if case .created(let created) = self { return try created.body.json }
            return try ok.body.json
        }
    }
}

extension Operations.PlanDeployment.Output {
    /// The plan, created (201) or the open one of the same snapshot (200).
    var deployment: Components.Schemas.Deployment {
        get throws {
            if case .created(let created) = self { return try created.body.json }
            return try ok.body.json
        }
    }
}

extension Components.Schemas.Decision.StepPayload: ExpressibleByArgument {}
