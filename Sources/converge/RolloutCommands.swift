import ArgumentParser
import ConvergeAPI
import ConvergeClient
import Foundation

/// What `--follow` takes.
struct FollowOptions: ParsableArguments {
    @Flag(help: "Follow the rollout until it ends, a line per instance; the exit status says how it ended.")
    var follow = false

    @Option(help: "How long --follow follows, in seconds.")
    var timeout = 3600

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }
}

/// A rollout, printed; with `--follow`, its progress on standard error until it ends, then it as it ended, and the
/// exit status of the ending (0 COMPLETED, 3 FAILED, 4 REPLACED, 6 timeout).
func show(
    _ rollout: Components.Schemas.Rollout, options: ClientOptions, follow: FollowOptions, client: ConvergeClient
) async throws {
    guard follow.follow else {
        try printRollout(rollout, options: options)
        return
    }
    let progress = RolloutProgress(client: client, write: { FileHandle.standardError.write(line: $0) })
    let (ended, outcome) = try await progress.wait(for: rollout.id, timeout: .seconds(follow.timeout))
    try printRollout(ended, options: options)
    if let error = ended.error {
        FileHandle.standardError.write(line: "converge: rollout \(ended.id) failed: \(error)")
    }
    if outcome == .timedOut {
        FileHandle.standardError.write(line: "converge: rollout \(ended.id) is still RUNNING after \(follow.timeout)s")
    }
    if outcome != .completed { throw ExitCode(outcome.rawValue) }
}

/// A rollout: in a table, a summary line and a line per instance.
func printRollout(_ rollout: Components.Schemas.Rollout, options: ClientOptions) throws {
    if options.output.isTable {
        print(
            "rollout/\(rollout.id): \(rollout.action.rawValue) \(rollout.environment) \(rollout.status.rawValue), wave "
                + "\(min(rollout.wave + 1, rollout.waves))/\(rollout.waves)")
    }
    try options.print(rollout, table: Tables.rollout)
}

extension Env {
    /// `converge env deploy ENV [--follow]`.
    struct Deploy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deploy every instance of an environment in dependency order (replaces a running rollout).")

        @Argument(help: "The environment, such as ecomm-staging.") var environment: String
        @OptionGroup var follow: FollowOptions
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await withDaemon {
                let client = try options.client()
                let rollout = try await client.api.deployEnvironment(path: .init(id: environment)).created.body.json
                try await show(rollout, options: options, follow: follow, client: client)
            }
        }
    }

    /// `converge env decommission ENV [--follow]`.
    struct Decommission: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decommission every instance of an environment, downstream first; it stays down until env deploy."
        )

        @Argument(help: "The environment, such as ecomm-pr42.") var environment: String
        @OptionGroup var follow: FollowOptions
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await withDaemon {
                let client = try options.client()
                let rollout = try await client.api.decommissionEnvironment(path: .init(id: environment)).created.body
                    .json
                try await show(rollout, options: options, follow: follow, client: client)
            }
        }
    }

    /// `converge env rollouts [ENV]` and `converge env rollouts --id ID [--follow]`.
    struct Rollouts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List an environment's rollouts (newest first), or show one with --id.")

        @Argument(help: "The environment (default: every environment).") var environment: String?
        @Option(help: "One rollout's id.") var id: String?
        @Option(help: "How many to list (1-1000).") var limit = 20
        @OptionGroup var follow: FollowOptions
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await withDaemon {
                let client = try options.client()
                if let id {
                    let rollout = try await client.api.getRollout(path: .init(id: id)).ok.body.json
                    try await show(rollout, options: options, follow: follow, client: client)
                    return
                }
                let page = try await client.api.listRollouts(query: .init(environment: environment, limit: limit)).ok
                    .body.json
                try options.print(page, table: Tables.rollouts)
            }
        }
    }
}

extension Tables {
    static let rollouts = Table(
        columns: [
            .init("id", path: "id"), .init("environment", path: "environment"), .init("action", path: "action"),
            .init("status", path: "status"),
            .init("wave") { row in
                guard case .int(let wave)? = row["wave"], case .int(let waves)? = row["waves"] else { return "" }
                return "\(min(wave + 1, waves))/\(waves)"
            },
            .init("created by", path: "createdBy"), .age(of: "createdAt"), .init("error", path: "error"),
        ], wideColumns: [.init("created", path: "createdAt"), .init("finished", path: "finishedAt")],
        emptyMessage: "no rollouts")
    /// A rollout's instances (the table view shows a rollout's `items`).
    static let rollout = Table(
        columns: [
            .init("instance", path: "instance"),
            .init("wave") { row in
                guard case .int(let wave)? = row["wave"] else { return "" }
                return "\(wave + 1)"
            },
            .init("outcome", path: "outcome"), .init("deployment", path: "deployment"),
            .init("message", path: "message"),
        ], emptyMessage: "no instances")
}
