import ArgumentParser
import ConvergeAPI
import ConvergeClient
import ConvergeCore
import Foundation
import OpenAPIRuntime

extension OutputFormat: ExpressibleByArgument {}

/// What every command that talks to the daemon takes: where it is, who calls, and how to print the answer.
struct ClientOptions: ParsableArguments {
    @Option(help: "The daemon's URL (default: $CONVERGE_SERVER, the config file, or http://127.0.0.1:8787).")
    var server: String?

    @Option(help: "The bearer token (default: $CONVERGE_TOKEN or the config file; prefer those to this flag).")
    var token: String?

    @Option(
        help: ArgumentHelp(
            "A PEM file of the certificate authorities an https daemon's certificate must chain to (default: "
                + "$CONVERGE_CERTIFICATE_AUTHORITY, the config file, or the system's store).", valueName: "file"),
        completion: .file())
    var certificateAuthority: String?

    @Option(help: "The context of the config file to use (default: its current context; see converge login).")
    var context: String?

    @Option(
        name: [.short, .long], help: "Output: table, wide (more columns), name (kind/id lines), json or yaml.",
        completion: .list(OutputFormat.allValueStrings), transform: choice)
    var output: OutputFormat = .table

    func client() throws -> ConvergeClient {
        ConvergeClient(settings: try settings())
    }

    /// Where the daemon is and who calls it; warns on standard error when the config file holding a token is open
    /// to others.
    func settings() throws -> ClientSettings {
        let (config, path) = try ClientConfig.current()
        return try ClientSettings.resolve(
            server: server, token: token, certificateAuthority: certificateAuthority, context: context,
            config: config, path: path)
    }

    /// Prints `value` (an API object or page) in the chosen format.
    func print(_ value: some Encodable, table: Table?) throws {
        FileHandle.standardOutput.write(Data(render(try ConvergeClient.value(value), as: output, table: table).utf8))
    }
}

/// An object's id as typed: the id, or `kind/id` as `-o name` prints it (`deployment/d01…`).
func objectID(_ text: String) -> String {
    guard let slash = text.lastIndex(of: "/"), ObjectKind(argument: String(text[..<slash])) != nil else { return text }
    return String(text[text.index(after: slash)...])
}

/// What `--wait` takes.
struct WaitOptions: ParsableArguments {
    @Flag(help: "Wait until the deployment is terminal, showing its progress; the exit status says how it ended.")
    var wait = false

    @Option(help: "How long --wait waits, in seconds.")
    var timeout = 3600

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }
}

/// Runs a command's body against the daemon: an error answer, a refused connection or a bad setting prints one
/// line (`converge: <message> (<code>)`) and exits 1.
func withDaemon(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch {
        FileHandle.standardError.write(line: "converge: \(describe(error))")
        throw ExitCode.failure
    }
}

/// An error as one line for people, without the runtime's wrapping.
func describe(_ error: any Error) -> String {
    switch error {
    case let error as ClientError: describe(error.underlyingError)
    case let error as APIFailure: error.description
    case let error as ConvergeError: error.message
    default: "\(error)"
    }
}

/// A deployment, printed; with `--wait`, its progress on standard error until it ends, then it as it ended, and the
/// exit status of the ending. Returns the deployment as printed.
@discardableResult
func show(
    _ deployment: Components.Schemas.Deployment, options: ClientOptions, wait: WaitOptions, client: ConvergeClient
) async throws -> Components.Schemas.Deployment {
    guard wait.wait else {
        try options.print(deployment, table: Tables.deployments)
        return deployment
    }
    let progress = DeploymentProgress(
        client: client, write: { FileHandle.standardError.write(line: $0) }, isTerminal: isatty(STDERR_FILENO) == 1)
    let (ended, outcome) = try await progress.wait(for: deployment.id, timeout: .seconds(wait.timeout))
    try options.print(ended, table: Tables.deployments)
    if outcome == .timedOut {
        FileHandle.standardError.write(
            line: "converge: deployment \(ended.id) is still \(ended.status.rawValue) after \(wait.timeout)s")
    }
    if outcome != .completed { throw ExitCode(outcome.rawValue) }
    return ended
}

/// The table views of the API's objects.
enum Tables {
    static let deployments = Table(
        columns: [
            .init("id", path: "id"), .init("instance", path: "instance"), .init("action", path: "action"),
            .init("status", path: "status"), .init("awaiting", path: "awaiting"),
            .init("created by", path: "createdBy"), .age(of: "createdAt"), .init("error", path: "error"),
        ],
        wideColumns: [
            .init("mode") { $0["proposedBy"] == nil ? "direct" : "proposal" },
            .init("approved by", path: "approvedBy"), .init("version", path: "version"),
            .init("attempt", path: "attempt"), .init("commit", path: "metadata.commit"),
            .init("created", path: "createdAt"), .init("finished", path: "finishedAt"),
        ], emptyMessage: "no deployments", kind: "deployment")
    static let instances = Table(
        columns: [
            .init("id", path: "id"), .init("environment", path: "environment"), .init("bundle", path: "bundle"),
            .init("version", path: "version"), .init("status", path: "status"),
            .init("ready") { row in
                row["conditions"]?.arrayValue?.first { $0["type"] == "Ready" }.map {
                    $0["status"] == true ? "True" : "False"
                }
            },
            .age(of: "createdAt"),
        ],
        wideColumns: [
            .init("provisioner", path: "provisioner"), .init("labels") { labels($0["labels"]) },
            .init("last deployment", path: "lastDeployment"),
        ], emptyMessage: "no instances", kind: "instance")
    static let resources = Table(
        columns: [
            .init("kind", path: "kind"), .init("id", path: "id"), .init("owner", path: "owner"),
            .init("generation", path: "generation"), .init("source", path: "source"), .age(of: "createdAt"),
        ], wideColumns: [.init("labels") { labels($0["spec"]?["labels"]) }], emptyMessage: "no resources")

    /// Labels as kubectl's `--show-labels` prints them: `key=value` pairs by key, separated by commas.
    static func labels(_ value: Value?) -> String? {
        value?.objectValue?.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.stringValue ?? "")" }
            .joined(separator: ",")
    }
    static let events = Table(
        columns: [.init("at", path: "at"), .init("kind", path: "kind"), .init("message", path: "message")],
        emptyMessage: "no events")
    static let audit = Table(
        columns: [
            .init("at", path: "at"), .init("actor", path: "actor"), .init("action", path: "action"),
            .init(
                "target",
                cell: { row in "\(row["targetKind"]?.stringValue ?? "")/\(row["targetId"]?.stringValue ?? "")" }),
        ], emptyMessage: "no audit entries")
    static let changes = Table(
        columns: [
            .init("path", path: "path"),
            .init("before", cell: { $0["before"].map { $0.canonicalJSON } ?? "<absent>" }),
            .init("after", cell: { $0["after"].map { $0.canonicalJSON } ?? "<absent>" }),
        ], emptyMessage: "no differences")
}

extension ClientConfig {
    /// The config file of this process's environment and its path, warning on standard error when it holds a token
    /// and is open to group or others.
    static func current() throws -> (ClientConfig, path: String) {
        let path = path(environment: ProcessInfo.processInfo.environment)
        let config = try load(path: path)
        if let warning = config.permissionWarning(path: path) {
            FileHandle.standardError.write(line: "converge: \(warning)")
        }
        return (config, path)
    }
}
