import ConvergeStore
import Foundation
import Logging
import PostgresNIO

/// Which store a measurement runs on. SQLite files are made under the bench's folder; PostgreSQL databases on the
/// bench's server (`make bench` starts a throwaway one), a fresh one per run.
enum BenchStore: Sendable {
    case sqlite
    case postgres(BenchPostgres)

    var name: String {
        switch self {
        case .sqlite: "SQLite"
        case .postgres: "PostgreSQL"
        }
    }
}

/// The PostgreSQL server of the PostgreSQL rows, reached over one connection at a time (postgres-nio, trust
/// authentication on loopback): fresh databases, the server's settings for the notes, and the raw commit ceiling.
struct BenchPostgres: Sendable {
    /// The server, on its maintenance database.
    let url: PostgresURL

    static let logger = Logger(label: "converge-bench-postgres", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Runs `body` on one new connection to database `name` (the maintenance database by default), then closes it.
    func withConnection<T: Sendable>(
        to name: String? = nil, _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        let configuration = PostgresConnection.Configuration(
            host: url.host, port: url.port, username: url.user, password: nil, database: name ?? url.database,
            tls: .disable)
        let connection = try await PostgresConnection.connect(
            configuration: configuration, id: 1, logger: Self.logger)
        do {
            let result = try await body(connection)
            try? await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// An empty database `name`, dropped first if a previous run left it behind (with its sessions), and its URL.
    func freshDatabase(_ name: String) async throws -> PostgresURL {
        try await withConnection { connection in
            try await connection.query(
                PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"), logger: Self.logger)
            try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: Self.logger)
        }
        var database = url
        database.database = name
        return database
    }

    /// The server's version and durability settings, as the notes name them.
    func settings() async throws -> String {
        try await withConnection { connection in
            var text = ""
            let rows = try await connection.query(
                """
                SELECT current_setting('server_version'), current_setting('fsync'),
                       current_setting('synchronous_commit'), current_setting('full_page_writes')
                """, logger: Self.logger)
            for try await (version, fsync, synchronous, fullPages) in rows.decode((String, String, String, String).self)
            {
                text =
                    "PostgreSQL \(version.split(separator: " ").first ?? ""), fsync=\(fsync), "
                    + "synchronous_commit=\(synchronous), full_page_writes=\(fullPages)"
            }
            return text
        }
    }

    /// Raw commits per second: single-row INSERT transactions (BEGIN, INSERT, COMMIT, each a round trip, as pgbench
    /// sends them) in a loop on one connection, with a row of the size a deployment's is, on a fresh database.
    func rawCommits(count: Int) async throws -> Double {
        let database = try await freshDatabase("converge_bench_raw")
        return try await withConnection(to: database.database) { connection in
            try await connection.query(
                "CREATE TABLE rows (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL, at BIGINT NOT NULL)",
                logger: Self.logger)
            let body = String(repeating: "x", count: 700)
            let start = ContinuousClock.now
            for index in 0..<count {
                try await connection.query("BEGIN", logger: Self.logger)
                try await connection.query(
                    "INSERT INTO rows (body, at) VALUES (\(body), \(Int64(index)))", logger: Self.logger)
                try await connection.query("COMMIT", logger: Self.logger)
            }
            return Double(count) / seconds(since: start)
        }
    }
}

/// A read-only view of a daemon's database from the bench process, for polling what a user would see.
protocol DatabaseProbe: Sendable {
    /// The first column of the first row of `sql`, an integer; `?` placeholders take `arguments` in order.
    func count(_ sql: String, _ arguments: [String]) async throws -> Int
    func close() async
}

extension DatabaseProbe {
    func count(_ sql: String) async throws -> Int { try await count(sql, []) }
}

/// A daemon's PostgreSQL database, over one connection of its own.
struct PostgresProbe: DatabaseProbe {
    let connection: PostgresConnection

    /// Connects to `url` once the daemon has migrated it.
    static func open(_ url: PostgresURL, deadline: ContinuousClock.Instant) async throws -> PostgresProbe {
        let configuration = PostgresConnection.Configuration(
            host: url.host, port: url.port, username: url.user, password: nil, database: url.database, tls: .disable)
        let connection = try await PostgresConnection.connect(
            configuration: configuration, id: 2, logger: BenchPostgres.logger)
        let probe = PostgresProbe(connection: connection)
        while try await probe.count(
            "SELECT COUNT(*) FROM pg_tables WHERE tablename IN ('deployments', 'instances')") < 2
        {
            guard ContinuousClock.now < deadline else {
                await probe.close()
                throw BenchError("\(url) was never migrated")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return probe
    }

    func count(_ sql: String, _ arguments: [String]) async throws -> Int {
        var numbered = ""
        var bindings = PostgresBindings()
        for character in sql {
            guard character == "?" else {
                numbered.append(character)
                continue
            }
            bindings.append(arguments[bindings.count])
            numbered += "$\(bindings.count)"
        }
        let rows = try await connection.query(
            PostgresQuery(unsafeSQL: numbered, binds: bindings), logger: BenchPostgres.logger)
        for try await value in rows.decode(Int64.self) { return Int(value) }
        return 0
    }

    func close() async {
        try? await connection.close()
    }
}
