import ConvergeCore
import Crypto
import Foundation

/// Seals and opens instance secrets with AES-GCM under the daemon's 32-byte key.
///
/// The instance id and the secret's name are authenticated data: a sealed value copied to another instance or name,
/// or opened under another key, does not open. The sealed form is AES-GCM's combined one (nonce, ciphertext, tag),
/// a fresh random nonce each time. Reading the key file is the executable's business; this type never does I/O.
public struct SecretBox: Sendable {
    /// The size of a key, in bytes.
    public static let keyByteCount = 32

    /// The key's bytes; `SymmetricKey` is made per use, as it is not `Sendable`.
    private let keyBytes: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }

    /// A box under `key`, which must be 32 bytes.
    public init(key: [UInt8]) throws {
        guard key.count == Self.keyByteCount else {
            throw ConvergeError(
                .invalidArgument, "a secrets key must be \(Self.keyByteCount) bytes, got \(key.count)")
        }
        keyBytes = key
    }

    /// A new random key.
    public static func newKey() -> [UInt8] {
        SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
    }

    /// `value` sealed for secret `name` of instance `instanceID`.
    public func seal(_ value: String, instanceID: String, name: String) throws -> [UInt8] {
        let box = try AES.GCM.seal(
            Array(value.utf8), using: key, authenticating: Self.context(instanceID: instanceID, name: name))
        guard let combined = box.combined else {
            throw ConvergeError(.internal, "cannot seal secret \(name) of instance \(instanceID)")
        }
        return Array(combined)
    }

    /// The value of secret `name` of instance `instanceID`; `failed_precondition` when `sealed` was not sealed for
    /// them under this key.
    public func open(_ sealed: [UInt8], instanceID: String, name: String) throws -> String {
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            let plain = try AES.GCM.open(
                box, using: key, authenticating: Self.context(instanceID: instanceID, name: name))
            return String(decoding: plain, as: UTF8.self)
        } catch {
            throw ConvergeError(
                .failedPrecondition,
                "secret \(name) of instance \(instanceID) does not open under the daemon's secrets key "
                    + "(another key, or sealed for another instance or name)")
        }
    }

    /// `value`, an output a provisioner marked sensitive, sealed as base64 text.
    ///
    /// The nonce is derived from the value (an HMAC under a key derived from the daemon's), so the same value seals to
    /// the same text: an upstream that answers the same sensitive output again does not change the desired state of
    /// the instances connected to it. Only equal values are told equal; a nonce is never reused for another value.
    public func sealOutput(_ value: Value) throws -> String {
        let plain = Array(value.canonicalJSON.utf8)
        let nonceKey = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: key, info: Array("converge/v1 sensitive output nonce".utf8), outputByteCount: 32)
        let digest = HMAC<SHA256>.authenticationCode(for: plain, using: nonceKey)
        let box = try AES.GCM.seal(
            plain, using: key, nonce: try AES.GCM.Nonce(data: Array(digest).prefix(12)),
            authenticating: Self.outputContext)
        guard let combined = box.combined else { throw ConvergeError(.internal, "cannot seal a sensitive output") }
        return combined.base64EncodedString()
    }

    /// The value of a sensitive output sealed by `sealOutput`; `failed_precondition` when it was not sealed under
    /// this key.
    public func openOutput(_ sealed: String) throws -> Value {
        do {
            guard let combined = Data(base64Encoded: sealed) else { throw ConvergeError(.internal, "not base64") }
            let plain = try AES.GCM.open(
                try AES.GCM.SealedBox(combined: combined), using: key, authenticating: Self.outputContext)
            return try Value(json: String(decoding: plain, as: UTF8.self))
        } catch {
            throw ConvergeError(
                .failedPrecondition,
                "a sensitive output does not open under the daemon's secrets key (sealed under another key)")
        }
    }

    /// The authenticated data of a sensitive output: a secret's sealed bytes never open as one, nor the reverse.
    static let outputContext = Array("converge/v1 sensitive output".utf8)

    /// The authenticated data of a secret: what binds a sealed value to its instance and name.
    static func context(instanceID: String, name: String) -> [UInt8] {
        Array("converge/v1 instance secret\u{0}\(instanceID)\u{0}\(name)".utf8)
    }
}
