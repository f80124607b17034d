import ConvergeCore

/// One problem found in the manifests, at a place and a field: `file:line:col: field.path: message`.
public struct ManifestDiagnostic: Error, Hashable, Sendable, Comparable, CustomStringConvertible {
    public var location: SourceLocation
    /// The field path (`spec.params.storage_gb`), empty for problems of the file itself (syntax, size).
    public var path: String
    public var message: String

    /// A diagnostic whose path and message have their control characters escaped (`\n`, `\u{1B}`): a value quoted
    /// from a manifest or a variable can never start a line of its own in a terminal or a CI log.
    public init(_ location: SourceLocation, _ path: String, _ message: String) {
        self.location = location
        self.path = path.escapingControlCharacters
        self.message = message.escapingControlCharacters
    }

    public var description: String {
        path.isEmpty ? "\(location): \(message)" : "\(location): \(path): \(message)"
    }

    public static func < (lhs: ManifestDiagnostic, rhs: ManifestDiagnostic) -> Bool {
        (lhs.location, lhs.path, lhs.message) < (rhs.location, rhs.path, rhs.message)
    }

    /// The diagnostic as a value, for `--output json` and CI annotations.
    public var jsonValue: Value {
        [
            "file": .string(location.file), "line": .int(location.line), "column": .int(location.column),
            "field": .string(path), "message": .string(message),
        ]
    }
}

/// Every problem of one load, sorted by place; a load that has any yields nothing.
public struct ManifestErrors: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [ManifestDiagnostic]

    public init(_ diagnostics: [ManifestDiagnostic]) {
        self.diagnostics = diagnostics.sorted()
    }

    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
