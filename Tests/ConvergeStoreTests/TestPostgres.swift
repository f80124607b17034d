import ConvergeStore
import Foundation

/// The test run's PostgreSQL, which `make test` starts (CONVERGE_TEST_POSTGRES_URL): a fresh database per test.
enum TestPostgres {
    static func url() throws -> PostgresURL {
        guard let text = ProcessInfo.processInfo.environment["CONVERGE_TEST_POSTGRES_URL"] else {
            throw TestPostgresError(
                "CONVERGE_TEST_POSTGRES_URL is not set: run the tests with `make test`, which starts a PostgreSQL")
        }
        return try PostgresURL(text)
    }

    /// Creates an empty database and returns its name.
    static func createDatabase() throws -> String {
        let name = "converge_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try psql("CREATE DATABASE \(name)")
        return name
    }

    static func dropDatabase(_ name: String) {
        try? psql("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    private static func psql(_ command: String) throws {
        let url = try url()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", url.host, "-p", String(url.port), "-U", url.user,
            "-d", "postgres", "-c", command,
        ]
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw TestPostgresError("psql \(command): \(message)")
        }
    }
}

struct TestPostgresError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
