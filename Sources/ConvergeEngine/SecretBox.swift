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

    /// The authenticated data of a secret: what binds a sealed value to its instance and name.
    static func context(instanceID: String, name: String) -> [UInt8] {
        Array("converge/v1 instance secret\u{0}\(instanceID)\u{0}\(name)".utf8)
    }
}
