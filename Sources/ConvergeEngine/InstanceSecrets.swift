import ConvergeCore
import ConvergeStore
import Foundation

/// Instances' secrets as the API and the dispatcher use them (DESIGN §3): checked, sealed before they reach the
/// store, and opened only to be sent to a provisioner at dispatch or to redact what is recorded of a deployment.
///
/// Values never leave through any other way: not in an answer, an error, an event, the audit log or the log.
public struct InstanceSecrets: Sendable {
    /// The largest value, in UTF-8 bytes.
    public static let maxValueBytes = 64 * 1024

    let store: any SecretStore
    /// Nil when the daemon has no secrets key: secrets can then be neither set nor sent.
    let box: SecretBox?

    /// Secrets of `store` sealed in `box`.
    public init(store: any SecretStore, box: SecretBox?) {
        self.store = store
        self.box = box
    }

    /// Checks a secret's name: a letter or `_`, then letters, digits and `_`, at most 64 in all (it may become an
    /// environment variable's name).
    public static func checkName(_ name: String) throws {
        let scalars = Array(name.unicodeScalars)
        func isLetter(_ scalar: Unicode.Scalar) -> Bool {
            ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || scalar == "_"
        }
        guard (1...64).contains(scalars.count), isLetter(scalars[0]),
            scalars.allSatisfy({ isLetter($0) || ("0"..."9").contains($0) })
        else {
            throw ConvergeError(
                .invalidArgument,
                "name: expected a letter or _ then letters, digits or _ (at most 64), got \"\(name)\"",
                details: ["field": "name"])
        }
    }

    /// Sets (creates or replaces) secret `name` of an instance; the store keeps it sealed and audits the name only.
    public func set(_ name: String, of instanceID: String, to value: String, actor: String) async throws {
        try Self.checkName(name)
        guard !value.isEmpty else {
            throw ConvergeError(.invalidArgument, "value: must not be empty", details: ["field": "value"])
        }
        guard value.utf8.count <= Self.maxValueBytes else {
            throw ConvergeError(
                .invalidArgument, "value: must be at most \(Self.maxValueBytes) bytes, got \(value.utf8.count)",
                details: ["field": "value"])
        }
        let box = try requireBox()
        try await store.setSecret(
            instanceID: instanceID, name: name, sealed: try box.seal(value, instanceID: instanceID, name: name),
            actor: actor)
    }

    /// The names of an instance's secrets, sorted; `not_found` for an unknown instance.
    public func names(of instanceID: String) async throws -> [String] {
        try await store.secretNames(of: instanceID)
    }

    /// The sorted secret names of each of `instanceIDs` that has any.
    public func names(ofInstances instanceIDs: [String]) async throws -> [String: [String]] {
        try await store.secretNames(ofInstances: instanceIDs)
    }

    /// Deletes secret `name` of an instance; audited with the name only.
    public func delete(_ name: String, of instanceID: String, actor: String) async throws {
        try Self.checkName(name)
        try await store.deleteSecret(instanceID: instanceID, name: name, actor: actor)
    }

    /// An instance's secret values by name, read and opened now: what a provisioner is sent at dispatch.
    func values(of instanceID: String) async throws -> [String: String] {
        let sealed = try await store.sealedSecrets(of: instanceID)
        guard !sealed.isEmpty else { return [:] }
        let box = try requireBox()
        var values: [String: String] = [:]
        for (name, bytes) in sealed { values[name] = try box.open(bytes, instanceID: instanceID, name: name) }
        return values
    }

    /// A redactor of an instance's current secret values and of `alsoRedacting`. A secret that does not open under
    /// this daemon's key is left out: this daemon never sent it (a dispatch with such a secret fails before the
    /// provisioner is called).
    func redactor(for instanceID: String, alsoRedacting: [String] = []) async throws -> SecretRedactor {
        guard let box else { return SecretRedactor(alsoRedacting) }
        let sealed = try await store.sealedSecrets(of: instanceID)
        return SecretRedactor(
            sealed.compactMap { try? box.open($0.value, instanceID: instanceID, name: $0.key) } + alsoRedacting)
    }

    /// `outputs` with every value the provisioner marked sensitive sealed: the one form they are stored in.
    func sealingSensitive(_ outputs: Value) throws -> Value {
        try outputs.replacingObjects { value in
            guard let marked = SensitiveValue.marked(in: value) else { return nil }
            return SensitiveValue.sealed(try requireBox().sealOutput(marked))
        }
    }

    /// `value` (a deployment's connection params) with every sealed value opened, and the texts opened: what its
    /// provisioner is sent, and what is redacted from whatever it echoes back, as its own secrets are.
    func openingSealed(_ value: Value) throws -> (value: Value, opened: [String]) {
        var opened: [String] = []
        let open = try value.replacingObjects { value in
            guard let text = SensitiveValue.sealedText(of: value) else { return nil }
            let plain = try requireBox().openOutput(text)
            opened += plain.strings
            return plain
        }
        return (open, opened)
    }

    private func requireBox() throws -> SecretBox {
        guard let box else {
            throw ConvergeError(
                .failedPrecondition, "the daemon has no secrets key (converge serve --secrets-key-file)")
        }
        return box
    }
}

extension Value {
    /// The strings in this value (not its keys), where an opened sensitive value could be echoed back.
    fileprivate var strings: [String] {
        switch self {
        case .string(let text): [text]
        case .array(let items): items.flatMap(\.strings)
        case .object(let members): members.values.flatMap(\.strings)
        case .null, .bool, .int, .double: []
        }
    }
}
