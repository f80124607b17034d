/// The one error type of converge: a stable code from the API's vocabulary, a human message and optional details.
///
/// Messages are lower-case, say what was expected and where, and never contain a secret.
public struct ConvergeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The stable codes of the HTTP API (DESIGN §7); the HTTP layer maps each to its status.
    public enum Code: String, Sendable, CaseIterable, Codable {
        case invalidArgument = "invalid_argument"
        case notFound = "not_found"
        case alreadyExists = "already_exists"
        case failedPrecondition = "failed_precondition"
        case aborted
        case permissionDenied = "permission_denied"
        case unauthenticated
        case resourceExhausted = "resource_exhausted"
        case `internal`
        /// A known path asked with a method it does not serve (405, with `Allow`).
        case methodNotAllowed = "method_not_allowed"
    }

    public var code: Code
    public var message: String
    public var details: Value?

    public init(_ code: Code, _ message: String, details: Value? = nil) {
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
