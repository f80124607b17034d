import ConvergeCore
import Crypto
import Foundation

/// The per-deployment token an asynchronous provisioner presents on its callbacks: HMAC-SHA256 of
/// `<deployment>/<attempt>` under the daemon's persistent callback key, so it survives restarts and is useless for
/// any other deployment or attempt.
public struct CallbackToken: Sendable {
    let secret: [UInt8]

    public init(key: [UInt8]) {
        self.secret = key
    }

    var key: SymmetricKey { SymmetricKey(data: secret) }

    public func token(deploymentID: String, attempt: Int) -> String {
        HMAC<SHA256>.authenticationCode(for: Data("\(deploymentID)/\(attempt)".utf8), using: key).hexString
    }

    /// Whether `token` is this deployment attempt's token, compared in constant time.
    public func isValid(_ token: String, deploymentID: String, attempt: Int) -> Bool {
        guard token.utf8.count == 64, let bytes = [UInt8](hex: token) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(
            bytes, authenticating: Data("\(deploymentID)/\(attempt)".utf8), using: key)
    }
}
