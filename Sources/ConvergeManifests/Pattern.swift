/// A regular expression compiled once, with the text it was written as.
///
/// Compiling a `Regex` costs far more than matching a short string with it, so every pattern of the kinds' shapes
/// and of the bundles' params schemas is compiled when its shape or schema is built, and then reused for every
/// string checked against it.
public struct Pattern: Sendable, Equatable {
    /// The pattern as written (without anchors for the kinds' shapes; as the schema says for params).
    public let source: String
    private let compiled: CompiledRegex

    /// Compiles a pattern written in this module; a pattern that does not compile is a programming error.
    init(_ source: String) {
        self.init(validating: source)!
    }

    /// Compiles a pattern read from a manifest, or nil when it is not a valid regular expression.
    init?(validating source: String) {
        guard let regex = try? Regex(source) else { return nil }
        self.source = source
        self.compiled = CompiledRegex(regex: regex)
    }

    /// Whether the whole of `text` matches.
    func wholeMatches(_ text: String) -> Bool {
        (try? compiled.regex.wholeMatch(in: text)) != nil
    }

    /// Whether some part of `text` matches (JSON Schema's `pattern` is not anchored).
    func matchesPart(of text: String) -> Bool {
        text.contains(compiled.regex)
    }

    public static func == (lhs: Pattern, rhs: Pattern) -> Bool { lhs.source == rhs.source }
}

/// A compiled `Regex`, shared between tasks.
///
/// `Regex` is not declared `Sendable`, but it is an immutable value: its program is built from a tree that never
/// changes and is lowered at most once through an atomic lazy reference (`Regex.Program`, itself
/// `@unchecked Sendable` in the standard library), so matching with one regex from several tasks is safe.
private struct CompiledRegex: @unchecked Sendable {
    let regex: Regex<AnyRegexOutput>
}
