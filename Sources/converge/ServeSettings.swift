import ConvergeCore
import ConvergeManifests
import Foundation

/// Everything `converge serve` needs, resolved from flags, then `CONVERGE_*` variables, then the config file,
/// then defaults.
struct ServeSettings: Equatable {
    var manifests = "."
    var database = "sqlite:converge.sqlite"
    var listenHost = "127.0.0.1"
    var listenPort = 8787
    var maxConcurrentDeployments = 4
    var workers = 2
    var leaseSeconds = 30
    var pollSeconds = 10
    var resyncSeconds = 300
    var shutdownGraceSeconds = 20
    var callbackURL: String?
    var allowedProvisionerURLs = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
    var gitWebhookSecretEnv: String?
    var avatarURLTemplate: String?
    var logLevel = "info"

    /// The settings' names, as the config file and `CONVERGE_<NAME>` variables (upper snake case) spell them.
    static let names = [
        "manifests", "db", "listen", "maxConcurrentDeployments", "workers", "leaseSeconds", "pollSeconds",
        "resyncSeconds", "shutdownGraceSeconds", "callbackURL", "allowedProvisionerURLs", "gitWebhookSecretEnv",
        "avatarURLTemplate", "logLevel",
    ]

    /// `CONVERGE_MAX_CONCURRENT_DEPLOYMENTS` for `maxConcurrentDeployments`.
    static func variable(for name: String) -> String {
        var result = "CONVERGE_"
        var previous: Character?
        for character in name {
            if character.isUppercase, let previous, !previous.isUppercase { result += "_" }
            result += character.uppercased()
            previous = character
        }
        return result
    }

    /// Applies `values` (name → text) in order, each layer overriding the ones before; every bad value is an error
    /// naming where it came from.
    mutating func apply(_ values: [String: String], from origin: String) throws {
        for (name, text) in values.sorted(by: { $0.key < $1.key }) {
            func number() throws -> Int {
                guard let number = Int(text), number > 0 else {
                    throw ConvergeError(
                        .invalidArgument, "\(origin): \(name) must be a positive integer, got \"\(text)\"")
                }
                return number
            }
            switch name {
            case "manifests": manifests = text
            case "db": database = text
            case "listen":
                guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
                    (0...65535).contains(port)
                else {
                    throw ConvergeError(.invalidArgument, "\(origin): listen must be HOST:PORT, got \"\(text)\"")
                }
                listenHost = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
                listenPort = port
            case "maxConcurrentDeployments": maxConcurrentDeployments = try number()
            case "workers": workers = try number()
            case "leaseSeconds": leaseSeconds = try number()
            case "pollSeconds": pollSeconds = try number()
            case "resyncSeconds": resyncSeconds = try number()
            case "shutdownGraceSeconds": shutdownGraceSeconds = try number()
            case "callbackURL": callbackURL = text
            case "allowedProvisionerURLs":
                allowedProvisionerURLs = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            case "gitWebhookSecretEnv": gitWebhookSecretEnv = text
            case "avatarURLTemplate": avatarURLTemplate = text
            case "logLevel":
                guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(text) else {
                    throw ConvergeError(.invalidArgument, "\(origin): logLevel \"\(text)\" is not a log level")
                }
                logLevel = text
            default:
                throw ConvergeError(
                    .invalidArgument,
                    "\(origin): unknown setting \"\(name)\"" + didYouMean(name, among: Self.names))
            }
        }
    }

    /// The settings a config file sets, read with the manifest parser (so its errors are located too).
    static func values(ofConfigFile path: String) throws -> [String: String] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConvergeError(.invalidArgument, "cannot read the config file \(path): \(error.localizedDescription)")
        }
        let documents: [YAMLNode]
        do {
            documents = try YAMLParser().parse(text, file: path)
        } catch {
            throw ConvergeError(.invalidArgument, error.description)
        }
        guard documents.count <= 1, let entries = documents.isEmpty ? [] : documents[0].entries else {
            throw ConvergeError(.invalidArgument, "\(path): the config file must be one mapping of settings")
        }
        var values: [String: String] = [:]
        for entry in entries {
            switch entry.value.kind {
            case .scalar(let value):
                values[entry.key] = value.stringValue ?? value.canonicalJSON
            case .sequence(let items):
                values[entry.key] = items.compactMap { $0.scalar?.stringValue }.joined(separator: ",")
            case .mapping:
                throw ConvergeError(
                    .invalidArgument, "\(entry.keyLocation): \(entry.key): expected a value, got object")
            }
        }
        return values
    }

    /// The settings `CONVERGE_*` variables set.
    static func values(ofEnvironment environment: [String: String]) -> [String: String] {
        var values: [String: String] = [:]
        for name in names {
            if let value = environment[variable(for: name)], !value.isEmpty { values[name] = value }
        }
        return values
    }

    /// The SQLite path of `database`; other engines are refused with a clear error.
    var sqlitePath: String {
        get throws {
            guard database.hasPrefix("sqlite:") else {
                throw ConvergeError(
                    .invalidArgument,
                    "unsupported store \"\(database)\": this build supports sqlite:PATH (PostgreSQL is coming)")
            }
            let path = String(database.dropFirst("sqlite:".count))
            guard !path.isEmpty else {
                throw ConvergeError(.invalidArgument, "sqlite: needs a path (sqlite:converge.sqlite)")
            }
            return path
        }
    }
}
