import ConvergeCore
import Foundation
import NIOSSL
import PostgresNIO

/// Where a PostgreSQL store is: `postgres://USER@HOST[:PORT]/DATABASE[?sslmode=…&pool_max=N]`, as libpq spells it.
/// A password in the URL is refused (it would show in `ps` and in logs): it comes from a file or `PGPASSWORD`.
public struct PostgresURL: Equatable, Sendable, CustomStringConvertible {
    /// libpq's modes that converge supports: `disable` (no TLS), `require` (TLS, any certificate), `verify-full`
    /// (TLS, a certificate of the system's trust store that names the host).
    public enum SSLMode: String, Sendable, CaseIterable {
        case disable
        case require
        case verifyFull = "verify-full"
    }

    public var user: String
    public var host: String
    public var port: Int
    public var database: String
    public var sslMode: SSLMode
    /// The most connections the daemon's pool opens.
    public var maximumConnections: Int

    /// Parses `text`; errors say what was expected.
    public init(_ text: String) throws {
        guard let components = URLComponents(string: text),
            components.scheme == "postgres" || components.scheme == "postgresql"
        else {
            throw ConvergeError(.invalidArgument, "expected postgres://USER@HOST[:PORT]/DATABASE[?sslmode=MODE]")
        }
        guard components.password == nil else {
            throw ConvergeError(
                .invalidArgument,
                "the database URL must not hold a password; give it with --db-password-file or PGPASSWORD")
        }
        guard let host = components.host, !host.isEmpty else {
            throw ConvergeError(.invalidArgument, "the database URL has no host: postgres://USER@HOST/DATABASE")
        }
        guard let user = components.user, !user.isEmpty else {
            throw ConvergeError(.invalidArgument, "the database URL has no user: postgres://USER@HOST/DATABASE")
        }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else {
            throw ConvergeError(.invalidArgument, "the database URL has no database: postgres://USER@HOST/DATABASE")
        }
        self.user = user.removingPercentEncoding ?? user
        self.host = host
        self.port = components.port ?? 5432
        self.database = database.removingPercentEncoding ?? database
        sslMode = .verifyFull
        maximumConnections = 20
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let mode = item.value.flatMap(SSLMode.init(rawValue:)) else {
                    throw ConvergeError(
                        .invalidArgument,
                        "sslmode must be one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", ")), "
                            + "got \"\(item.value ?? "")\"")
                }
                sslMode = mode
            case "pool_max":
                guard let value = item.value.flatMap(Int.init), (1...1000).contains(value) else {
                    throw ConvergeError(
                        .invalidArgument, "pool_max must be a number from 1 to 1000, got \"\(item.value ?? "")\"")
                }
                maximumConnections = value
            default:
                throw ConvergeError(
                    .invalidArgument, "unknown database URL parameter \"\(item.name)\"; known: sslmode, pool_max")
            }
        }
    }

    public var description: String {
        "postgres://\(user)@\(host):\(port)/\(database)?sslmode=\(sslMode.rawValue)"
    }

    /// The pool's TLS for the mode.
    func tls() throws -> PostgresClient.Configuration.TLS {
        switch sslMode {
        case .disable:
            return .disable
        case .require:
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            return .require(configuration)
        case .verifyFull:
            return .require(TLSConfiguration.makeClientConfiguration())
        }
    }
}
