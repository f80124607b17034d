import ConvergeCore
import ConvergeStore
import ConvergeTestSupport
import Foundation
import Logging

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A `converge serve` process on a temporary SQLite file (or a PostgreSQL database) and manifests directory, as a user
/// would run it.
final class DaemonProcess {
    let directory: URL
    /// The PostgreSQL database the daemon runs on (`postgres://…`); nil: its own SQLite file, `database`.
    let databaseURL: String?
    /// The port the daemon listens on; a start that finds it taken by another process moves to a free one.
    private(set) var port: Int
    var process: Process?
    var arguments: [String]
    /// Variables added to the daemon's environment.
    var environment: [String: String] = [:]
    /// The deployer token `sync()` uses, made on first use.
    private var operatorToken: String?

    var manifests: URL { directory.appendingPathComponent("manifests") }
    var database: String { directory.appendingPathComponent("converge.sqlite").path }
    /// What `--db` says.
    var databaseArgument: String { databaseURL ?? "sqlite:\(database)" }
    var log: URL { directory.appendingPathComponent("daemon.log") }
    var tokensFile: String { directory.appendingPathComponent("tokens.json").path }
    /// The daemon's secrets key, made by `converge init-key` for every test daemon.
    var secretsKeyFile: String { directory.appendingPathComponent("converge.key").path }

    /// A daemon whose manifests are `files` (path → YAML); `arguments` are added to `serve`'s.
    init(files: [String: String], arguments: [String] = [], databaseURL: String? = nil) throws {
        self.databaseURL = databaseURL
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "converge-daemon-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        port = try Self.freePort()
        self.arguments = arguments
        try write(files)
        // The daemon's secrets key, as converge init-key makes one: 32 random bytes, readable by the owner only.
        let key = Data((0..<32).map { _ in UInt8.random(in: 0...255) })
        guard
            FileManager.default.createFile(
                atPath: secretsKeyFile, contents: key, attributes: [.posixPermissions: 0o600])
        else { throw TimedOut(description: "cannot write \(secretsKeyFile)") }
    }

    deinit {
        if let process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Replaces the manifests with `files`.
    func write(_ files: [String: String]) throws {
        try? FileManager.default.removeItem(at: manifests)
        try FileManager.default.createDirectory(at: manifests, withIntermediateDirectories: true)
        for (path, text) in files {
            try text.write(to: manifests.appendingPathComponent(path), atomically: true, encoding: .utf8)
        }
    }

    /// Starts the daemon and returns once it listens, or once it exited (a test of a refused start looks at it).
    ///
    /// The port was free when chosen, but a test running beside this one can bind it before the daemon does (two
    /// daemons of parallel tests, or a restart after a fault). A start that loses that race moves to another port,
    /// instead of leaving the test to talk to a stranger's daemon.
    func start() async throws {
        for _ in 1...5 {
            let offset = (try? FileManager.default.attributesOfItem(atPath: log.path)[.size] as? Int) ?? 0
            try launch()
            try await eventually("the daemon listens or exits", timeout: .seconds(30)) { [self] in
                logText(from: offset).contains("] listening") || process?.isRunning != true
            }
            guard process?.isRunning != true, logText(from: offset).contains("Address already in use") else { return }
            port = try Self.freePort()
        }
        throw TimedOut(description: "no port the daemon could bind after 5 tries:\n\(logTail())")
    }

    private func launch() throws {
        let process = Process()
        process.executableURL = ConvergeBinary.executable
        let poll = arguments.contains("--poll-seconds") ? [] : ["--poll-seconds", "1"]
        process.arguments =
            [
                "serve", "--manifests", manifests.path, "--db", databaseArgument, "--listen", "127.0.0.1:\(port)",
                "--tokens-file", tokensFile, "--secrets-key-file", secretsKeyFile,
            ] + poll + arguments
        if !FileManager.default.fileExists(atPath: log.path) {
            FileManager.default.createFile(atPath: log.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        try process.run()
        self.process = process
    }

    /// The log written from byte `offset` on.
    private func logText(from offset: Int) -> String {
        guard let data = FileManager.default.contents(atPath: log.path), data.count > offset else { return "" }
        return String(decoding: data[offset...], as: UTF8.self)
    }

    /// Stops the daemon with `signal` and waits for it to exit; returns its exit status.
    @discardableResult
    func stop(signal: Int32 = SIGTERM) async throws -> Int32 {
        guard let process else { return 0 }
        kill(process.processIdentifier, signal)
        try await eventually("the daemon exits", timeout: .seconds(30)) { !process.isRunning }
        self.process = nil
        return process.terminationStatus
    }

    /// GETs a path of the daemon's HTTP API as text.
    func getText(_ path: String) async throws -> String {
        let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        return String(decoding: data, as: UTF8.self)
    }

    /// GETs a path of the daemon's HTTP API, waiting at most `timeout` seconds for the answer.
    func get(_ path: String, timeout: TimeInterval = 60) async throws -> (status: Int, body: [String: Any]) {
        try await request("GET", path, timeout: timeout)
    }

    func post(_ path: String, body: Data = Data(), headers: [String: String] = [:]) async throws -> (
        status: Int, body: [String: Any]
    ) {
        try await request("POST", path, body: body, headers: headers)
    }

    private func request(
        _ method: String, _ path: String, body: Data = Data(), headers: [String: String] = [:],
        timeout: TimeInterval = 60
    ) async throws -> (status: Int, body: [String: Any]) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!, timeoutInterval: timeout)
        request.httpMethod = method
        if method == "POST" {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, json)
    }

    /// Asks the daemon to re-read its manifests now (`POST /v1/sync`, with a deployer's token); returns the status.
    func sync() async throws -> Int {
        if operatorToken == nil { operatorToken = try await token("tests", role: "deployer") }
        return try await post("/v1/sync", headers: ["Authorization": "Bearer \(operatorToken!)"]).status
    }

    /// Whether `/readyz` answers ready.
    func isReady() async -> Bool {
        (try? await get("/readyz").status) == 200
    }

    /// The daemon's database, opened as a second process would.
    func store() throws -> SQLiteStore {
        try SQLiteStore(path: database, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    var logText: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// A free TCP port on 127.0.0.1.
    static func freePort() throws -> Int {
        try freeLoopbackPort()
    }
}

/// A small repository: project p, environment dev (`policy`), bundles applied by the webhook at `url`, and instances
/// with their params; an instance named in `connections` is wired to the `out` artifact of the one it maps to.
func repository(
    url: String, timeoutSeconds: Int = 10, instances: [String: Value], connections: [String: String] = [:],
    policy: String = "auto"
) -> [String: String] {
    var files = [
        "base.yaml": baseManifests(
            environment: "policy: \(policy)", spec: #"{webhook: {url: "\#(url)", timeoutSeconds: \#(timeoutSeconds)}}"#)
                + """
                apiVersion: converge/v1
                kind: Bundle
                metadata: {name: thing}
                spec:
                  provisioner: hook
                  artifacts: {out: {type: thing-out}}
                  paramsSchema: {type: object, properties: {size: {type: integer}}}
                ---
                apiVersion: converge/v1
                kind: Bundle
                metadata: {name: child}
                spec:
                  provisioner: hook
                  connections: {upstream: {type: thing-out}}
                  artifacts: {out: {type: thing-out}}
                """
    ]
    for (name, params) in instances {
        let wiring = connections[name].map { "\n  connections: {upstream: \($0)}" } ?? ""
        files["\(name).yaml"] = """
            apiVersion: converge/v1
            kind: Instance
            metadata: {name: \(name), project: p, environment: dev}
            spec:
              bundle: \(connections[name] == nil ? "thing" : "child")
              version: 1.0.0
              params: \(params.canonicalJSON)
            """ + wiring
    }
    return files
}

/// The answer of a provisioner that applied a deployment.
let completedAnswer = #"{"status": "completed", "outputs": {"out": {"id": "x"}}}"#

/// The API through the CLI, as a user drives it.
extension DaemonProcess {
    /// A new API token for `name` with `role`, made by `converge token create` in the daemon's tokens file.
    func token(_ name: String, role: String) async throws -> String {
        let result = try await ConvergeBinary.run(
            ["token", "create", "--name", name, "--role", role, "--tokens-file", tokensFile])
        guard result.status == 0 else { throw TimedOut(description: "token create failed: \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs `converge ARGUMENTS` against this daemon with `token` (none when nil).
    func cli(_ token: String?, _ arguments: String...) async throws -> ConvergeBinary.Result {
        try await cli(token, environment: [:], arguments)
    }

    /// `cli` with `variables` added to the command's environment.
    func cli(_ token: String?, environment variables: [String: String], _ arguments: [String]) async throws
        -> ConvergeBinary.Result
    {
        var environment = ["CONVERGE_SERVER": "http://127.0.0.1:\(port)", "XDG_CONFIG_HOME": directory.path]
        environment["CONVERGE_TOKEN"] = token ?? ""
        return try await ConvergeBinary.run(arguments, environment: environment.merging(variables) { $1 })
    }
}

/// Faults and what a user sees of them: signals, exits, the log's tail, a second daemon on the same database.
extension DaemonProcess {
    /// The daemon's process id while it runs.
    var pid: Int32? { process?.processIdentifier }

    /// Whether the daemon's process has not exited (a stopped one has not).
    var isRunning: Bool { process?.isRunning == true }

    /// Sends `signal` to the daemon and returns at once.
    func send(_ signal: Int32) {
        if let process { kill(process.processIdentifier, signal) }
    }

    /// Freezes the daemon (SIGSTOP): it keeps its sockets and its leases but does nothing until `resume()`.
    func suspend() {
        send(SIGSTOP)
    }

    /// Lets a suspended daemon go on (SIGCONT).
    func resume() {
        send(SIGCONT)
    }

    /// Sets the running daemon's file size limit (`ulimit -f`, RLIMIT_FSIZE; nil for none): from then on every
    /// write of its past `bytes` into any file fails with EFBIG, as writes fail on a full disk (the daemon ignores
    /// SIGXFSZ). No privilege is needed to lower it, nor to lift it up to the hard limit again.
    func limitFileSize(to bytes: rlim_t?) throws {
        guard let pid else { throw TimedOut(description: "the daemon is not running") }
        // prlimit(2) is a GNU extension the Glibc module does not import; libc has it.
        typealias Prlimit =
            @convention(c) (
                pid_t, Int32, UnsafePointer<rlimit>?, UnsafeMutablePointer<rlimit>?
            ) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "prlimit") else {
            throw TimedOut(description: "no prlimit in libc")
        }
        let prlimit = unsafeBitCast(symbol, to: Prlimit.self)
        let resource = Int32(RLIMIT_FSIZE.rawValue)
        var limit = rlimit()
        guard prlimit(pid, resource, nil, &limit) == 0 else {
            throw TimedOut(description: "prlimit: \(String(cString: strerror(errno)))")
        }
        limit.rlim_cur = bytes ?? limit.rlim_max
        guard prlimit(pid, resource, &limit, nil) == 0 else {
            throw TimedOut(description: "prlimit: \(String(cString: strerror(errno)))")
        }
    }

    /// The last `count` lines of the daemon's log, stdout and stderr of every run together.
    func logTail(_ count: Int = 40) -> String {
        logText.split(separator: "\n", omittingEmptySubsequences: false).suffix(count).joined(separator: "\n")
    }

    /// Runs a second `converge serve` on this daemon's manifests and database (or `database`, another name of it),
    /// listening on another port, for at most `timeout`: its exit status (nil if it was still running and had to be
    /// killed) and its stderr.
    func runSecondDaemon(database: String? = nil, timeout: Duration) async throws -> (status: Int32?, stderr: String) {
        let stderrURL = directory.appendingPathComponent("second-daemon-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        let stderr = try FileHandle(forWritingTo: stderrURL)
        defer { try? stderr.close() }
        let second = Process()
        second.executableURL = ConvergeBinary.executable
        let poll = arguments.contains("--poll-seconds") ? [] : ["--poll-seconds", "1"]
        second.arguments =
            [
                "serve", "--manifests", manifests.path, "--db", database.map { "sqlite:\($0)" } ?? databaseArgument,
                "--listen",
                "127.0.0.1:\(try Self.freePort())", "--secrets-key-file", secretsKeyFile,
            ] + poll + arguments
        second.standardOutput = FileHandle.nullDevice
        second.standardError = stderr
        second.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        try second.run()
        var status: Int32?
        do {
            try await eventually("the second daemon exits", timeout: timeout) { !second.isRunning }
            status = second.terminationStatus
        } catch is TimedOut {
            kill(second.processIdentifier, SIGKILL)
            try await eventually("the second daemon is killed", timeout: .seconds(30)) { !second.isRunning }
        }
        let text = (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? ""
        return (status, text)
    }
}
