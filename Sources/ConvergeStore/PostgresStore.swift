import ConvergeCore
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// The store for several daemons on one database: PostgreSQL through postgres-nio's connection pool.
///
/// Write transactions are SERIALIZABLE and retried when PostgreSQL reports a serialization failure or a deadlock, so
/// every decision the store makes (approve, enqueue, take over) sees the database as if writers ran one after
/// another, as on SQLite; claims alone run READ COMMITTED with `FOR UPDATE SKIP LOCKED`, so one daemon's claim never
/// waits for another's. The invariants are the database's own (partial unique indexes and triggers), as on SQLite.
/// Times are Unix milliseconds from the injected clock.
public final class PostgresStore: Store, Service {
    let client: PostgresClient
    let clock: @Sendable () -> Date
    let logger: Logger
    /// Where the database is, without its password, for messages.
    let location: String
    /// The pool's connection management, running from `init` until `close()` (the pool serves no query before it
    /// runs, and the engine reads the store before the daemon's service group starts).
    private let pool: Task<Void, Never>
    /// Signalled on every `NOTIFY` of the database's deployment changes, whichever daemon made them.
    public let changes = ChangeSignal()
    /// The outcome of the latest write, for readiness.
    let writeHealth = WriteHealth()

    /// A store on the database `url` names; call `migrate()` before the first call that needs the schema.
    public init(url: PostgresURL, password: String?, clock: @escaping @Sendable () -> Date = { Date() }, logger: Logger)
        throws
    {
        var configuration = PostgresClient.Configuration(
            host: url.host, port: url.port, username: url.user, password: password, database: url.database,
            tls: try url.tls())
        configuration.options.maximumConnections = url.maximumConnections
        configuration.options.connectTimeout = .seconds(5)
        // A daemon paused in the middle of a transaction (SIGSTOP, a stalled host) would hold its locks, the status
        // changes' among them, and so stop every other daemon until it wakes: the database ends such a session.
        configuration.options.additionalStartupParameters = [
            ("idle_in_transaction_session_timeout", String(Int(Self.idleInTransactionTimeout * 1000)))
        ]
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        pool = Task { await client.run() }
        self.clock = clock
        self.logger = logger
        location = url.description
    }

    /// Holds the connection pool open until graceful shutdown, then closes it; first in the daemon's service group, so
    /// the last to stop.
    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.listen() }
        await close()
    }

    /// Listens for the database's deployment changes on one connection and signals each; after a lost connection it
    /// listens again (signalling once, for what it may have missed) with a capped backoff.
    private func listen() async {
        var delay = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: "converge_deployments") { notifications in
                        self.changes.notify()
                        delay = .milliseconds(100)
                        for try await _ in notifications { self.changes.notify() }
                    }
                }
            } catch {
                guard !Task.isCancelled else { return }
                logger.warning(
                    "not listening for the database's changes; listening again", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }

    /// Closes every connection; the store serves nothing afterwards.
    public func close() async {
        pool.cancel()
        await pool.value
        logger.info("store closed")
    }

    /// The current time in Unix milliseconds.
    var now: Int64 { unixMillis(clock()) }

    /// Seconds a transaction may wait for its daemon between statements before the database ends its session; the
    /// store's transactions wait only for the daemon's own computing between statements, a few milliseconds.
    static let idleInTransactionTimeout: TimeInterval = 5

    /// How often a write transaction is tried when PostgreSQL aborts it for a conflict with another.
    static let attempts = 20

    /// Runs `body` in one SERIALIZABLE transaction, retried on a serialization failure or deadlock, mapping database
    /// errors to `ConvergeError`s. Whether a write committed, or failed for want of storage, is recorded in
    /// `writeHealth`.
    func transaction<T: Sendable>(
        isolation: String = "SERIALIZABLE", _ body: @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            let writes = !isolation.hasSuffix("READ ONLY")
            do {
                let result = try await client.withTransaction(logger: logger) { connection in
                    try await connection.query(
                        PostgresQuery(unsafeSQL: "SET TRANSACTION ISOLATION LEVEL \(isolation)"), logger: logger)
                    return try await body(connection)
                }
                if writes { writeHealth.record(failure: nil, at: clock(), logger: logger) }
                return result
            } catch {
                if writes, let failure = Self.storageFailure(error) {
                    writeHealth.record(failure: failure, at: clock(), logger: logger)
                }
                let mapped = Self.mapped(error)
                if mapped.retryable && attempt < Self.attempts {
                    try await Task.sleep(for: .milliseconds(Int.random(in: 1...(5 * attempt))))
                    continue
                }
                throw mapped.error
            }
        }
    }

    /// Runs a read-only `body` on one connection, in one REPEATABLE READ transaction so that its reads see one
    /// snapshot.
    func read<T: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await transaction(isolation: "REPEATABLE READ, READ ONLY", body)
    }

    /// A database error as a `ConvergeError`, and whether the transaction is worth running again.
    static func mapped(_ error: any Error) -> (error: ConvergeError, retryable: Bool) {
        if let error = error as? PostgresTransactionError {
            return mapped(error.closureError ?? error.beginError ?? error.commitError ?? error.rollbackError ?? error)
        }
        if let error = error as? ConvergeError { return (error, false) }
        guard let error = error as? PSQLError else { return (ConvergeError(.internal, "\(error)"), false) }
        guard error.code == .server, let state = error.serverInfo?[.sqlState] else {
            return (.databaseUnreachable("\(error.code)"), false)
        }
        let message = error.serverInfo?[.message] ?? "\(error)"
        switch state {
        case "40001", "40P01":
            return (ConvergeError(.aborted, "the database is busy; retry"), true)
        case "23505" where error.serverInfo?[.constraintName] == "deployments_one_running":
            return (ConvergeError(.failedPrecondition, "the instance already has a RUNNING deployment"), false)
        case "23505", "23503", "23514", "P0001":
            return (ConvergeError(.failedPrecondition, message.lowercased()), false)
        case "57P01", "57P02", "57P03", "08000", "08003", "08006":
            return (.databaseUnreachable(message), false)
        default:
            return (ConvergeError(.internal, "database error \(state): \(message)"), false)
        }
    }

    /// Records a mutation in the audit log, in the mutation's transaction.
    func audit(
        _ connection: PostgresConnection, actor: String, action: String, kind: String, id: String, before: Value?,
        after: Value?
    ) async throws {
        try await connection.query(
            """
            INSERT INTO audit_log (at, actor, action, target_kind, target_id, before, after)
            VALUES (\(now), \(actor), \(action), \(kind), \(id), \(before?.canonicalJSON), \(after?.canonicalJSON))
            """, logger: logger)
    }

    /// Advances a named counter and returns its new value.
    func increment(_ connection: PostgresConnection, _ counter: String) async throws -> Int64 {
        try await connection.one(
            "UPDATE counters SET value = value + 1 WHERE name = \(counter) RETURNING value", Int64.self,
            logger: logger)!
    }
}

extension PostgresConnection {
    /// The rows of `query`, each made randomly accessible by column name.
    func rows(_ query: PostgresQuery, logger: Logger) async throws -> [PostgresRandomAccessRow] {
        var rows: [PostgresRandomAccessRow] = []
        for try await row in try await self.query(query, logger: logger) { rows.append(row.makeRandomAccess()) }
        return rows
    }

    /// The first row of `query`, if any.
    func row(_ query: PostgresQuery, logger: Logger) async throws -> PostgresRandomAccessRow? {
        try await rows(query, logger: logger).first
    }

    /// The first column of the first row of `query`, if any.
    func one<T: PostgresDecodable>(_ query: PostgresQuery, _ type: T.Type, logger: Logger) async throws -> T? {
        for try await row in try await self.query(query, logger: logger) {
            return try row.decode(T.self)
        }
        return nil
    }

    /// The first column of every row of `query`.
    func column<T: PostgresDecodable>(_ query: PostgresQuery, _ type: T.Type, logger: Logger) async throws -> [T] {
        var values: [T] = []
        for try await row in try await self.query(query, logger: logger) { values.append(try row.decode(T.self)) }
        return values
    }

    /// How many rows `query` returned: a statement's changes, when it ends with `RETURNING 1`.
    func count(_ query: PostgresQuery, logger: Logger) async throws -> Int {
        var count = 0
        for try await _ in try await self.query(query, logger: logger) { count += 1 }
        return count
    }
}

extension PostgresRandomAccessRow {
    /// Column `name`, decoded.
    func value<T: PostgresDecodable>(_ name: String, as type: T.Type = T.self) throws -> T {
        try self[name].decode(T.self)
    }
}
