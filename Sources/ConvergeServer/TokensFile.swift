import ConvergeCore
import ConvergeEngine
import Crypto
import Foundation
import Synchronization

/// What a caller may do, in increasing order: each role may do everything the roles below it may.
public enum Role: String, Sendable, CaseIterable, Comparable, Codable {
    case viewer
    case deployer
    case approver
    case admin

    public static func < (lhs: Role, rhs: Role) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// Who is calling: the name a token was created for, and its role. The name is the actor of what it does.
public struct Principal: Sendable, Equatable {
    public var name: String
    public var role: Role

    public init(name: String, role: Role) {
        self.name = name
        self.role = role
    }
}

/// The API's bearer tokens: a JSON file of principals, roles and the SHA-256 of each token, never the token itself.
///
/// `converge token create` adds one and prints the token once. The daemon reads the file again when it changes, so a
/// token works (or stops working) without a restart. The file is created 0600.
public final class TokensFile: Sendable {
    /// One line of the file.
    public struct Entry: Codable, Sendable, Equatable {
        public var name: String
        public var role: Role
        /// The lower-case hex SHA-256 of the token.
        public var sha256: String
        public var createdAt: Date
    }

    private struct Contents: Codable {
        var tokens: [Entry]
    }

    /// The prefix of every token, so that a leaked one is recognisable (secret scanners, logs).
    public static let tokenPrefix = "cvg_"

    public let path: String
    /// What tells one version of the file from another without reading it.
    private struct Stamp: Equatable, Sendable {
        var modified: Date?
        var size: Int?
        var inode: Int?
    }
    private struct Cache: Sendable {
        var stamp: Stamp
        var principals: [String: Principal]
    }
    private let cache = Mutex<Cache?>(nil)

    public init(path: String) {
        self.path = path
    }

    /// The principal of `token`, or nil when no entry has its hash (also when the file does not exist).
    public func principal(for token: String) throws -> Principal? {
        try principals()[Self.hash(token)]
    }

    /// Adds an entry for a new random token and returns the token; names are unique, so an existing name is
    /// `already_exists`. Reserved names (the reconciler's own actor) are refused.
    public func create(name: String, role: Role, now: Date = Date()) throws -> String {
        guard name.range(of: #"^[a-z0-9][a-z0-9._@-]{0,63}$"#, options: .regularExpression) != nil else {
            throw ConvergeError(
                .invalidArgument,
                "token name \"\(name)\": expected 1-64 lower-case letters, digits, '.', '_', '@' or '-'")
        }
        guard name != Engine.actor else {
            throw ConvergeError(.invalidArgument, "token name \"\(name)\" is reserved for the daemon's own actions")
        }
        var contents = try read()
        guard !contents.tokens.contains(where: { $0.name == name }) else {
            throw ConvergeError(.alreadyExists, "a token named \(name) exists in \(path)")
        }
        var bytes = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for index in bytes.indices { bytes[index] = generator.next() }
        let token =
            Self.tokenPrefix
            + Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        contents.tokens.append(Entry(name: name, role: role, sha256: Self.hash(token), createdAt: now))
        try write(contents)
        return token
    }

    /// The entries, without their hashes' tokens (which the file never has).
    public func entries() throws -> [Entry] {
        try read().tokens
    }

    static func hash(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    private func principals() throws -> [String: Principal] {
        let attributes = (try? FileManager.default.attributesOfItem(atPath: path)) ?? [:]
        let stamp = Stamp(
            modified: attributes[.modificationDate] as? Date, size: attributes[.size] as? Int,
            inode: attributes[.systemFileNumber] as? Int)
        if let cached = cache.withLock({ $0 }), cached.stamp == stamp { return cached.principals }
        let entries = try read().tokens
        let principals = Dictionary(
            entries.map { ($0.sha256, Principal(name: $0.name, role: $0.role)) },
            uniquingKeysWith: { first, _ in first })
        cache.withLock { $0 = Cache(stamp: stamp, principals: principals) }
        return principals
    }

    private func read() throws -> Contents {
        guard let data = FileManager.default.contents(atPath: path) else { return Contents(tokens: []) }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(Contents.self, from: data)
        } catch {
            throw ConvergeError(.internal, "the tokens file \(path) is not a converge tokens file: \(error)")
        }
    }

    private func write(_ contents: Contents) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(contents)
        let temporary = path + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600])
        else {
            throw ConvergeError(.internal, "cannot write \(temporary)")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw ConvergeError(.internal, "cannot replace \(path): \(reason)")
        }
    }
}
