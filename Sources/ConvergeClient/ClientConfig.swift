import ConvergeCore
import Foundation

/// The CLI's config file, as kubeconfig has it: named contexts (a daemon's URL and a token each) and the current
/// one — `{"current-context": "prod", "contexts": {"prod": {"server": "https://…", "token": "…"}}}` in
/// `$XDG_CONFIG_HOME/converge/config.json`, else `~/.config/converge/config.json`. `converge login` writes it.
public struct ClientConfig: Codable, Equatable, Sendable {
    /// One daemon and who calls it.
    public struct Context: Codable, Equatable, Sendable {
        public var server: String
        public var token: String?
        /// The PEM file of the certificate authorities the daemon's certificate must chain to (kubeconfig's
        /// `certificate-authority`); nil trusts the system's store.
        public var certificateAuthority: String?

        enum CodingKeys: String, CodingKey {
            case server, token
            case certificateAuthority = "certificate-authority"
        }

        public init(server: String, token: String?, certificateAuthority: String? = nil) {
            self.server = server
            self.token = token
            self.certificateAuthority = certificateAuthority
        }
    }

    /// The context commands use when no `--context` is given.
    public var currentContext: String?
    public var contexts: [String: Context]

    enum CodingKeys: String, CodingKey {
        case currentContext = "current-context"
        case contexts
    }

    public init(currentContext: String? = nil, contexts: [String: Context] = [:]) {
        self.currentContext = currentContext
        self.contexts = contexts
    }

    /// The file's path for `environment`.
    public static func path(environment: [String: String]) -> String {
        let base =
            environment["XDG_CONFIG_HOME"].map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: environment["HOME"] ?? NSHomeDirectory()).appendingPathComponent(".config")
        return base.appendingPathComponent("converge/config.json").path
    }

    /// The config at `path`; empty when there is no file.
    public static func load(path: String) throws -> ClientConfig {
        guard let data = FileManager.default.contents(atPath: path) else { return ClientConfig() }
        do {
            return try JSONDecoder().decode(ClientConfig.self, from: data)
        } catch {
            throw ConvergeError(
                .invalidArgument,
                "\(path): expected {\"current-context\": NAME, \"contexts\": {NAME: {\"server\": URL, \"token\": "
                    + "TOKEN}}}, as converge login writes it")
        }
    }

    /// The context named `name`; an unknown name is refused, naming the closest.
    public func context(named name: String, path: String) throws -> Context {
        guard let context = contexts[name] else {
            let names = contexts.keys.sorted()
            throw ConvergeError(
                .notFound,
                "no context \"\(name)\" in \(path)" + didYouMean(name, among: names)
                    + (names.isEmpty ? "; converge login makes one" : " (contexts: \(names.joined(separator: ", ")))"))
        }
        return context
    }

    /// Writes the config to `path`, readable and writable by the owner only, atomically: a new file of mode 0600
    /// beside it, renamed over the old one, so no reader sees half a file and the token is never readable by others,
    /// not even for a moment. Makes the directory (mode 0700) when missing.
    public func save(path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(self) + Data("\n".utf8)
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let temporary = "\(path).\(UUID().uuidString).tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard descriptor >= 0 else { throw Self.failure("cannot create \(temporary)") }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        do {
            try handle.write(contentsOf: data)
            try handle.synchronize()
            try handle.close()
            guard rename(temporary, path) == 0 else { throw Self.failure("cannot rename \(temporary) to \(path)") }
        } catch {
            unlink(temporary)
            throw error
        }
    }

    private static func failure(_ message: String) -> ConvergeError {
        ConvergeError(.internal, "\(message): \(String(cString: strerror(errno)))")
    }

    /// A warning when the file at `path` holds a token and its group or others may read or write it; nil otherwise.
    public func permissionWarning(path: String) -> String? {
        guard contexts.values.contains(where: { $0.token?.isEmpty == false }),
            let mode = (try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int,
            mode & 0o077 != 0
        else { return nil }
        return "warning: \(path) holds a token and is open to group or others (mode \(String(mode, radix: 8))); "
            + "run chmod 600 \(path)"
    }
}
