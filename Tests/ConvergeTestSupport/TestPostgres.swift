import ConvergeStore
import Foundation

/// The test run's PostgreSQL, which `make test` starts (Tests/Scripts/postgres): a fresh database per test, and the
/// server itself, for a test of the database going away. Outside `make test`:
/// `eval "$(Tests/Scripts/postgres start /tmp/converge-postgres)"` starts one for this shell.
public enum TestPostgres {
    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// The server's URL (its `postgres` database).
    public static func url() throws -> PostgresURL {
        guard let text = environment["CONVERGE_TEST_POSTGRES_URL"] else {
            throw TestPostgresError(
                "CONVERGE_TEST_POSTGRES_URL is not set: run the tests with `make test`, which starts a PostgreSQL, or "
                    + #"eval "$(Tests/Scripts/postgres start /tmp/converge-postgres)" first"#)
        }
        return try PostgresURL(text)
    }

    /// The URL of database `name` on the server.
    public static func url(of name: String) throws -> PostgresURL {
        var url = try url()
        url.database = name
        return url
    }

    /// Creates an empty database and returns its name.
    public static func createDatabase() throws -> String {
        let name = "converge_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try psql("CREATE DATABASE \(name)")
        return name
    }

    public static func dropDatabase(_ name: String) {
        try? psql("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Runs one SQL command as the server's superuser on `database`; returns what psql printed (unaligned, tuples
    /// only).
    @discardableResult
    public static func psql(_ command: String, database: String = "postgres") throws -> String {
        let url = try url()
        return try run(
            tool("psql"),
            [
                "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", url.host, "-p", String(url.port), "-U",
                url.user, "-d", database, "-c", command,
            ])
    }

    /// Stops the server (fast: sessions are ended), as a database that goes away.
    public static func stopServer() throws {
        try pgctl(["stop", "-m", "fast", "-w", "-t", "60"])
    }

    /// Starts the server again, on its port, and returns once it accepts connections.
    public static func startServer() throws {
        try pgctl(["start", "-w", "-t", "60", "-l", dataDirectory() + "/../server.log"])
    }

    private static func dataDirectory() throws -> String {
        guard let data = environment["CONVERGE_TEST_POSTGRES_DATA"] else {
            throw TestPostgresError("CONVERGE_TEST_POSTGRES_DATA is not set: run the tests with `make test`")
        }
        return data
    }

    private static func pgctl(_ arguments: [String]) throws {
        let command = [tool("pg_ctl"), "-D", try dataDirectory()] + arguments
        // The server runs as `postgres` when the tests run as root (initdb refuses root).
        if getuid() == 0 {
            try run("/usr/sbin/runuser", ["-u", "postgres", "--"] + command)
        } else {
            try run(command[0], Array(command.dropFirst()))
        }
    }

    private static func tool(_ name: String) -> String {
        environment["CONVERGE_TEST_POSTGRES_BIN"].map { $0 + "/" + name } ?? "/usr/bin/" + name
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
                "\(executable) \(arguments.joined(separator: " ")): \(String(decoding: message, as: UTF8.self))")
        }
        return String(decoding: printed, as: UTF8.self)
    }
}

public struct TestPostgresError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
