import ConvergeTestSupport
import Foundation

/// A PostgreSQL server of one test's own, for a test that stops and starts its database: stopping the test run's
/// server would take it from the tests running beside. In a temporary directory, on a free loopback port, with the
/// settings in its configuration file so that a start after a stop serves the same port; as the `postgres` user when
/// the tests run as root (initdb refuses root). The server binaries are those `make test` found
/// (CONVERGE_TEST_POSTGRES_BIN), or the newest of the Debian package.
final class OwnPostgres {
    let directory: URL
    let port: Int
    let user: String
    private let bin: String

    var data: String { directory.appendingPathComponent("data").path }
    /// The URL of its `postgres` database, for `--db`.
    var url: String { "postgres://\(user)@127.0.0.1:\(port)/postgres?sslmode=disable" }

    init() throws {
        bin = try Self.binDirectory()
        directory = URL(fileURLWithPath: "/tmp/converge-own-postgres-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        user = getuid() == 0 ? "postgres" : NSUserName()
        port = try freeLoopbackPort()
        if getuid() == 0 { try Self.run("/usr/bin/chown", ["postgres", directory.path]) }
        try asServerUser(
            "\(bin)/initdb", ["-D", data, "-A", "trust", "-U", user, "-E", "UTF8", "--locale=C", "--no-sync"])
        let settings = """

            port = \(port)
            listen_addresses = '127.0.0.1'
            unix_socket_directories = '\(directory.path)'
            fsync = off
            synchronous_commit = off
            full_page_writes = off
            max_connections = 100

            """
        let configuration = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(data)/postgresql.conf"))
        configuration.seekToEndOfFile()
        configuration.write(Data(settings.utf8))
        try configuration.close()
        try start()
    }

    deinit {
        try? asServerUser("\(bin)/pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(at: directory)
    }

    /// Starts the server and returns once it accepts connections.
    func start() throws {
        try asServerUser(
            "\(bin)/pg_ctl", ["-D", data, "-l", "\(directory.path)/server.log", "-w", "-t", "60", "start"])
    }

    /// Stops the server as a database that goes away: sessions are ended at once.
    func stop() throws {
        try asServerUser("\(bin)/pg_ctl", ["-D", data, "-m", "fast", "-w", "-t", "60", "stop"])
    }

    /// Runs one SQL command on the `postgres` database; what psql printed (unaligned, tuples only).
    @discardableResult
    func psql(_ command: String) throws -> String {
        try Self.run(
            "\(bin)/psql",
            [
                "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", "\(port)", "-U", user, "-d",
                "postgres", "-c", command,
            ])
    }

    /// Runs a server tool as the server's user, its output appended to a file: the server that `pg_ctl start` leaves
    /// running would hold a pipe open, and a read of it would never end. Spawned and reaped here (posix_spawn and
    /// waitpid) rather than through Foundation's `Process`, whose wait could miss the exit of a child whose own child
    /// (the server) lives on, and hang the test.
    private func asServerUser(_ executable: String, _ arguments: [String]) throws {
        let command =
            (getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", executable] : [executable]) + arguments
        let output = directory.appendingPathComponent("tools.log").path
        var actions: posix_spawn_file_actions_t = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var argv = command.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, command[0], &actions, nil, &argv, environ)
        guard spawned == 0 else { throw TestPostgresError("cannot run \(command[0]): error \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        guard status == 0 else {
            let log = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            throw TestPostgresError("\(executable) \(arguments.joined(separator: " ")) failed (\(status)):\n\(log)")
        }
    }

    private static func binDirectory() throws -> String {
        if let bin = ProcessInfo.processInfo.environment["CONVERGE_TEST_POSTGRES_BIN"] { return bin }
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        guard let newest = versions.compactMap(Int.init).max() else {
            throw TestPostgresError("no PostgreSQL server: install the Debian package postgresql")
        }
        return "/usr/lib/postgresql/\(newest)/bin"
    }

    @discardableResult
    private static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let printed = output.fileHandleForReading.readDataToEndOfFile()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestPostgresError(
                "\(executable) \(arguments.joined(separator: " ")): "
                    + String(decoding: message + printed, as: UTF8.self))
        }
        return String(decoding: printed, as: UTF8.self)
    }
}
