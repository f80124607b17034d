import Foundation
import GRDB

/// A `converge serve` child process, and what /proc says about it.
final class Daemon: @unchecked Sendable {
    let process: Process
    let url: String
    /// A deployer's API token, for `POST /v1/sync`.
    let token: String

    private init(process: Process, url: String, token: String) {
        self.process = process
        self.url = url
        self.token = token
    }

    /// Starts `converge serve` on `manifests` and the store `database` (its `--db`), listening on
    /// 127.0.0.1:`port`; its log goes to `log`. Its secrets key and tokens are the files `files`.key and
    /// `files`.tokens (beside a SQLite database).
    static func start(
        binary: URL, manifests: URL, database: String, files: String, port: Int, log: URL,
        extraArguments: [String] = []
    ) throws -> Daemon {
        // The daemon refuses to start without a secrets key: one per database, made once.
        let key = files + ".key"
        if !FileManager.default.fileExists(atPath: key) {
            let initKey = Process()
            initKey.executableURL = binary
            initKey.arguments = ["init-key", "--secrets-key-file", key]
            initKey.standardOutput = FileHandle.nullDevice
            try initKey.run()
            initKey.waitUntilExit()
        }
        // A token of its own for every start: a token is printed only when it is made.
        let tokens = files + ".tokens"
        let create = Process()
        create.executableURL = binary
        create.arguments = [
            "token", "create", "--name", "bench-\(UInt32.random(in: 0...UInt32.max))", "--role", "deployer",
            "--tokens-file", tokens,
        ]
        let printed = Pipe()
        create.standardOutput = printed
        try create.run()
        let token = String(decoding: printed.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        create.waitUntilExit()
        let process = Process()
        process.executableURL = binary
        process.arguments =
            [
                "serve", "--manifests", manifests.path, "--db", database, "--listen", "127.0.0.1:\(port)",
                "--secrets-key-file", key, "--tokens-file", tokens,
            ] + extraArguments
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardError = handle
        process.standardOutput = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return Daemon(process: process, url: "http://127.0.0.1:\(port)", token: token)
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// Stops it with SIGTERM (graceful shutdown), then SIGKILL after `timeout`.
    func stop(timeout: Duration = .seconds(30)) async {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        if process.isRunning {
            progress("daemon \(pid) ignored SIGTERM for \(timeout); killing it")
            kill(pid, SIGKILL)
            while process.isRunning { try? await Task.sleep(for: .milliseconds(50)) }
        }
    }

    /// Peak resident set size in megabytes (`VmHWM` of /proc/PID/status).
    var peakRSSMegabytes: Double? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kilobytes = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first
                .flatMap({ Double($0) })
        else { return nil }
        return kilobytes / 1024
    }

    /// CPU seconds used so far, user and system (`utime + stime` of /proc/PID/stat).
    var cpuSeconds: Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after the command: state is field 3, utime field 14, stime field 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// A daemon's SQLite database, opened read-only.
struct SQLiteProbe: DatabaseProbe {
    let queue: DatabaseQueue

    /// Opens `path` read-only once it exists and its schema is migrated.
    static func open(_ path: String, deadline: ContinuousClock.Instant) async throws -> SQLiteProbe {
        while true {
            if FileManager.default.fileExists(atPath: path) {
                var configuration = Configuration()
                configuration.readonly = true
                configuration.busyMode = .timeout(5)
                if let queue = try? DatabaseQueue(path: path, configuration: configuration),
                    (try? await queue.read({ try $0.tableExists("deployments") && $0.tableExists("instances") }))
                        == true
                {
                    return SQLiteProbe(queue: queue)
                }
            }
            guard ContinuousClock.now < deadline else { throw BenchError("\(path) was never created") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func count(_ sql: String, _ arguments: [String]) async throws -> Int {
        try await queue.read { db in try Int.fetchOne(db, sql: sql, arguments: StatementArguments(arguments)) ?? 0 }
    }

    func close() async {
        try? queue.close()
    }
}
