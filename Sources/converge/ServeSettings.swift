import ConvergeCore
import ConvergeEngine
import ConvergeManifests
import ConvergeProvisioners
import ConvergeServer
import ConvergeStore
import Foundation

/// Everything `converge serve` needs, resolved from flags, then `CONVERGE_*` variables, then the config file,
/// then defaults.
///
/// Every value is checked as it is applied, whichever layer it came from (`apply(_:from:)`), so a bad value is
/// refused at start with the layer and the spelling the user wrote; what only the final values can tell (the
/// manifests directory exists) is checked by `checkResolved(environment:)`.
struct ServeSettings: Equatable {
    var manifests = "."
    var database = "sqlite:converge.sqlite"
    /// A file holding the PostgreSQL password (else `PGPASSWORD`); never on the command line.
    var dbPasswordFile: String?
    /// The listener's TLS certificate chain and key (PEM); both or neither. Read again on SIGHUP.
    var tlsCertFile: String?
    var tlsKeyFile: String?
    var listenHost = "127.0.0.1"
    var listenPort = 8787
    var maxConcurrentDeployments = 4
    var workers = 2
    var reconcileRate = 1000
    var leaseSeconds = 30
    var pollSeconds = 10
    var resyncSeconds = 300
    var shutdownGraceSeconds = 20
    var callbackURL: String?
    var allowedProvisionerURLs = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
    var gitWebhookSecretEnv: String?
    var avatarURLTemplate: String?
    /// The API's bearer tokens (`converge token create`); a missing file means no token is valid yet.
    var tokensFile = "converge.tokens"
    /// The key instance secrets are sealed under (`converge init-key`); the daemon refuses to start without it.
    var secretsKeyFile = "converge.key"
    var logLevel = "info"
    /// The commands (argv[0]) an exec provisioner applied through the API may run; none by default.
    var allowExecCommand: [String] = []
    /// Seconds a client has to send a whole request (head and body) before its connection is closed.
    var requestTimeoutSeconds = 30
    /// HTTP connections open at once.
    var maxConnections = 512
    /// The layer each setting's value came from; a setting left at its default has none.
    var origins: [String: Origin] = [:]

    /// Where a value came from, and how that layer spells a setting's name.
    enum Origin: Equatable, CustomStringConvertible {
        /// A config file, by its path.
        case file(String)
        /// A `CONVERGE_*` variable.
        case environment
        /// A `--flag`.
        case commandLine
        /// No layer set it.
        case defaults

        var description: String {
            switch self {
            case .file(let path): path
            case .environment: "environment"
            case .commandLine: "command line"
            case .defaults: "default"
            }
        }

        /// `maxConcurrentDeployments` in a file, `CONVERGE_MAX_CONCURRENT_DEPLOYMENTS` in the environment,
        /// `--max-concurrent-deployments` on the command line.
        func spelling(of name: String) -> String {
            switch self {
            case .file: name
            case .environment: ServeSettings.variable(for: name)
            case .commandLine, .defaults: ServeSettings.flag(for: name)
            }
        }
    }

    /// A numeric setting: the field it sets and its documented range.
    struct IntegerSetting: Sendable {
        let field: WritableKeyPath<ServeSettings, Int> & Sendable
        let range: ClosedRange<Int>

        /// "an integer from 1 to 1000", as help texts and errors say it.
        var expectation: String { "an integer from \(range.lowerBound) to \(range.upperBound)" }
    }

    /// Every numeric setting with its range: the one place the ranges are written. Outside them the engine would
    /// overflow a duration or the store would refuse every claim.
    static let integers: [String: IntegerSetting] = [
        "maxConcurrentDeployments": IntegerSetting(field: \.maxConcurrentDeployments, range: 1...1000),
        "workers": IntegerSetting(field: \.workers, range: 1...64),
        "reconcileRate": IntegerSetting(field: \.reconcileRate, range: 1...100_000),
        "leaseSeconds": IntegerSetting(field: \.leaseSeconds, range: 2...3600),
        "pollSeconds": IntegerSetting(field: \.pollSeconds, range: 1...86400),
        "resyncSeconds": IntegerSetting(field: \.resyncSeconds, range: 10...86400),
        "shutdownGraceSeconds": IntegerSetting(field: \.shutdownGraceSeconds, range: 1...3600),
        "requestTimeoutSeconds": IntegerSetting(field: \.requestTimeoutSeconds, range: 1...3600),
        "maxConnections": IntegerSetting(field: \.maxConnections, range: 1...100_000),
    ]

    static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    /// The settings' names, as the config file and `CONVERGE_<NAME>` variables (upper snake case) spell them.
    static let names = [
        "manifests", "db", "dbPasswordFile", "listen", "maxConcurrentDeployments", "workers", "reconcileRate",
        "leaseSeconds",
        "pollSeconds", "resyncSeconds", "shutdownGraceSeconds", "callbackURL", "allowedProvisionerURLs",
        "gitWebhookSecretEnv", "avatarURLTemplate", "tokensFile", "secretsKeyFile", "logLevel", "allowExecCommand",
        "requestTimeoutSeconds", "maxConnections", "tlsCertFile", "tlsKeyFile",
    ]

    /// The words of `name`: `allowedProvisionerURLs` is allowed, provisioner, urls; `avatarURLTemplate` is avatar,
    /// url, template. An acronym ends before a capital that starts a word, except a plural's `s`.
    private static func words(of name: String) -> [String] {
        let characters = Array(name)
        var words: [String] = []
        for (index, character) in characters.enumerated() {
            let previous = index > 0 ? characters[index - 1] : nil
            let next = index + 1 < characters.count ? characters[index + 1] : nil
            let afterNext = index + 2 < characters.count ? characters[index + 2] : nil
            let plural = next == "s" && (afterNext == nil || afterNext?.isUppercase == true)
            let startsWord =
                words.isEmpty
                || character.isUppercase
                    && (previous?.isUppercase == false || next?.isLowercase == true && !plural)
            if startsWord { words.append("") }
            words[words.count - 1] += character.lowercased()
        }
        return words
    }

    /// `CONVERGE_MAX_CONCURRENT_DEPLOYMENTS` for `maxConcurrentDeployments`.
    static func variable(for name: String) -> String {
        "CONVERGE_" + words(of: name).joined(separator: "_").uppercased()
    }

    /// `--max-concurrent-deployments` for `maxConcurrentDeployments`; `Serve`'s options are declared with these names.
    static func flag(for name: String) -> String {
        "--" + words(of: name).joined(separator: "-")
    }

    /// Applies `values` (name → text) in order, each layer overriding the ones before; every bad value is an error
    /// naming where it came from.
    mutating func apply(_ values: [String: String], from origin: Origin) throws {
        for (name, text) in values.sorted(by: { $0.key < $1.key }) {
            try set(name, to: text, from: origin)
            origins[name] = origin
        }
    }

    /// Sets one setting from its text, checked against what the setting accepts.
    private mutating func set(_ name: String, to text: String, from origin: Origin) throws {
        func invalid(_ expectation: String) -> ConvergeError {
            let shown = name == "db" ? Self.redacted(text) : text
            return ConvergeError(
                .invalidArgument, "\(origin): \(origin.spelling(of: name)) must be \(expectation), got \"\(shown)\"",
                details: ["setting": .string(name)])
        }
        if let setting = Self.integers[name] {
            // `Int(_:)` takes only an optional sign and decimal digits: 1e16, 3.5 and 10abc are refused here.
            guard let number = Int(text), setting.range.contains(number) else { throw invalid(setting.expectation) }
            self[keyPath: setting.field] = number
            return
        }
        switch name {
        case "manifests":
            guard !text.isEmpty else { throw invalid("a directory") }
            manifests = text
        case "db":
            if Self.isPostgresURL(text) {
                do {
                    _ = try PostgresURL(text)
                } catch let error as ConvergeError {
                    throw ConvergeError(
                        .invalidArgument,
                        "\(origin): \(origin.spelling(of: name)) \"\(Self.redacted(text))\": \(error.message)",
                        details: ["setting": .string(name)])
                }
            } else if !text.hasPrefix("sqlite:") || text.count == "sqlite:".count {
                throw invalid("sqlite:PATH or postgres://USER@HOST[:PORT]/DATABASE")
            }
            database = text
        case "dbPasswordFile":
            guard !text.isEmpty else { throw invalid("a file") }
            dbPasswordFile = text
        case "tlsCertFile":
            guard !text.isEmpty else { throw invalid("a PEM file") }
            tlsCertFile = text
        case "tlsKeyFile":
            guard !text.isEmpty else { throw invalid("a PEM file") }
            tlsKeyFile = text
        case "listen":
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
                (1...65535).contains(port)
            else {
                throw invalid("HOST:PORT with a port from 1 to 65535")
            }
            let host = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            guard !host.isEmpty else { throw invalid("HOST:PORT with a host") }
            listenHost = host
            listenPort = port
        case "callbackURL":
            guard let components = Self.httpURL(text), components.query == nil, components.fragment == nil else {
                throw invalid("an http or https URL without query or fragment")
            }
            callbackURL = text.hasSuffix("/") ? String(text.dropLast()) : text
        case "allowedProvisionerURLs":
            let prefixes = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard !prefixes.isEmpty, prefixes.allSatisfy({ Self.httpURL($0) != nil }) else {
                throw invalid("a comma-separated list of http or https URL prefixes")
            }
            allowedProvisionerURLs = prefixes
        case "allowExecCommand":
            let commands = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard commands.allSatisfy({ !$0.isEmpty && $0.trimmingCharacters(in: .whitespaces) == $0 }) else {
                throw invalid("a command as the provisioner's command names it (its first word), without spaces around")
            }
            allowExecCommand = commands
        case "gitWebhookSecretEnv":
            guard Self.isVariableName(text) else { throw invalid("the name of an environment variable") }
            gitWebhookSecretEnv = text
        case "avatarURLTemplate":
            guard Self.httpURL(text.replacingOccurrences(of: "{email}", with: "email")) != nil else {
                throw invalid("an http or https URL, with {email} where the author's email goes")
            }
            avatarURLTemplate = text
        case "tokensFile":
            guard !text.isEmpty else { throw invalid("the path of a tokens file") }
            tokensFile = text
        case "secretsKeyFile":
            guard !text.isEmpty else { throw invalid("the path of a key file made by converge init-key") }
            secretsKeyFile = text
        case "logLevel":
            guard Self.logLevels.contains(text) else {
                throw invalid("one of \(Self.logLevels.joined(separator: ", "))")
            }
            logLevel = text
        default:
            throw ConvergeError(
                .invalidArgument,
                "\(origin): unknown setting \"\(name)\"" + didYouMean(name, among: Self.names))
        }
    }

    /// Checks what only the final values can tell: the manifests directory exists, and the variable holding the
    /// git webhook's secret is set.
    func checkResolved(environment: [String: String]) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: manifests, isDirectory: &isDirectory), isDirectory.boolValue
        else {
            throw invalid("manifests", "an existing directory", got: manifests)
        }
        if (tlsCertFile == nil) != (tlsKeyFile == nil) {
            let (given, missing) = tlsCertFile == nil ? ("tlsKeyFile", "tlsCertFile") : ("tlsCertFile", "tlsKeyFile")
            let origin = origins[given] ?? .defaults
            throw ConvergeError(
                .invalidArgument,
                "\(origin): \(origin.spelling(of: given)) needs \(origin.spelling(of: missing)) too: TLS takes a "
                    + "certificate and its key", details: ["setting": .string(missing)])
        }
        if let gitWebhookSecretEnv, environment[gitWebhookSecretEnv, default: ""].isEmpty {
            throw invalid("gitWebhookSecretEnv", "the name of a set, non-empty variable", got: gitWebhookSecretEnv)
        }
    }

    /// The error for the final value of `name`, named as the layer that set it spells it.
    private func invalid(_ name: String, _ expectation: String, got text: String) -> ConvergeError {
        let origin = origins[name] ?? .defaults
        return ConvergeError(
            .invalidArgument, "\(origin): \(origin.spelling(of: name)) must be \(expectation), got \"\(text)\"",
            details: ["setting": .string(name)])
    }

    /// The components of `text` when it is an absolute http or https URL with a host.
    static func httpURL(_ text: String) -> URLComponents? {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty
        else {
            return nil
        }
        return components
    }

    /// Whether `text` is a `postgres://` URL with a host.
    static func isPostgresURL(_ text: String) -> Bool {
        guard let components = URLComponents(string: text), let host = components.host, !host.isEmpty else {
            return false
        }
        return components.scheme == "postgres" || components.scheme == "postgresql"
    }

    /// Whether `text` can be the name of an environment variable: ASCII letters, digits and `_`, not starting with a
    /// digit.
    static func isVariableName(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return text.unicodeScalars.allSatisfy { $0.isASCII && ($0 == "_" || CharacterSet.alphanumerics.contains($0)) }
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
            case .sequence(let items) where entry.key == "allowedProvisionerURLs" || entry.key == "allowExecCommand":
                values[entry.key] = try items.map { item in
                    guard let value = item.scalar else {
                        throw ConvergeError(
                            .invalidArgument, "\(entry.keyLocation): \(entry.key): expected a list of single values")
                    }
                    return value.stringValue ?? value.canonicalJSON
                }.joined(separator: ",")
            case .sequence, .mapping:
                throw ConvergeError(
                    .invalidArgument, "\(entry.keyLocation): \(entry.key): expected a single value")
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

    /// The engine's configuration: every limit as these settings have it.
    func engineConfiguration(manifests: URL) -> EngineConfiguration {
        var configuration = EngineConfiguration(manifests: manifests)
        configuration.workers = workers
        configuration.reconcileRate = Double(reconcileRate)
        configuration.maxConcurrentDeployments = maxConcurrentDeployments
        configuration.leaseDuration = TimeInterval(leaseSeconds)
        configuration.pollInterval = TimeInterval(pollSeconds)
        configuration.resyncInterval = TimeInterval(resyncSeconds)
        configuration.shutdownGracePeriod = .seconds(shutdownGraceSeconds)
        configuration.avatarTemplate = avatarURLTemplate
        let host = listenHost.contains(":") ? "[\(listenHost)]" : listenHost
        configuration.callbackBaseURL =
            callbackURL ?? "\(tlsCertFile == nil ? "http" : "https")://\(host):\(listenPort)"
        return configuration
    }

    /// What webhook provisioners may call.
    var webhookSettings: WebhookProvisioner.Settings {
        var settings = WebhookProvisioner.Settings()
        settings.allowedURLPrefixes = allowedProvisionerURLs
        return settings
    }

    /// What cloud provisioners may call: their own endpoints under the same allow-list as webhooks.
    var cloudSettings: AWSClient.Settings {
        var settings = AWSClient.Settings()
        settings.allowedURLPrefixes = allowedProvisionerURLs
        return settings
    }

    /// The HTTP server's allowances and limits.
    var serverSettings: ConvergeServer.Settings {
        ConvergeServer.Settings(
            allowedExecCommands: Set(allowExecCommand), requestTimeout: .seconds(requestTimeoutSeconds),
            maxConnections: maxConnections)
    }

    /// Where the store is: a SQLite file, or a PostgreSQL database.
    enum StoreLocation {
        case sqlite(path: String)
        case postgres(PostgresURL)
    }

    /// `database`, as `apply` checked it.
    var storeLocation: StoreLocation {
        if let url = try? PostgresURL(database) { return .postgres(url) }
        return .sqlite(path: String(database.dropFirst("sqlite:".count)))
    }

    /// The PostgreSQL password: the first line of `dbPasswordFile`, else `PGPASSWORD`, else none.
    func databasePassword(environment: [String: String]) throws -> String? {
        guard let dbPasswordFile else { return environment["PGPASSWORD"] }
        do {
            let text = try String(contentsOfFile: dbPasswordFile, encoding: .utf8)
            return String(text.prefix { $0 != "\n" && $0 != "\r" })
        } catch {
            throw invalid("dbPasswordFile", "a readable file", got: dbPasswordFile)
        }
    }

    /// `database` with its credentials (what precedes the last `@`, after `//`) replaced, fit for a message,
    /// parseable or not.
    static func redacted(_ database: String) -> String {
        guard let at = database.lastIndex(of: "@") else { return database }
        let start = database.range(of: "//").map(\.upperBound) ?? database.startIndex
        guard start <= at else { return database }
        return database[..<start] + "redacted" + database[at...]
    }
}
