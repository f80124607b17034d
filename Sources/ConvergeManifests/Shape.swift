import ConvergeCore

/// The Swift description of a manifest's structure: the validator checks documents against it and
/// `converge schema` turns it into a JSON Schema, so the two can never disagree.
public indirect enum Shape: Sendable {
    /// What a string must look like.
    public enum StringRule: Sendable, Equatable {
        case any
        /// A full identifier (`aws-rds-postgres`).
        case identifier
        /// One identifier segment (`production`).
        case segment
        case oneOf([String])
        /// A regular expression the whole string must match, with a human description.
        case pattern(Pattern, description: String)
        /// A duration such as `30s` (`ManifestDuration`), from `minimumSeconds` to `maximumSeconds`.
        case duration(minimumSeconds: Int = 0, maximumSeconds: Int)
    }

    case string(StringRule)
    /// A whole number within the bounds that are given.
    case integer(minimum: Int?, maximum: Int? = nil)
    case boolean
    /// A closed object: only these fields, unknown ones are errors.
    case object([Field])
    /// An object whose keys follow `keys` and whose values all have one shape.
    case map(keys: StringRule, values: Shape)
    case array(Shape)
    /// Any object, its members unchecked (params, data).
    case anyObject
}

/// One field of a closed object.
public struct Field: Sendable {
    public var name: String
    public var shape: Shape
    public var required: Bool
    public var summary: String

    public init(_ name: String, _ shape: Shape, required: Bool = false, _ summary: String) {
        self.name = name
        self.shape = shape
        self.required = required
        self.summary = summary
    }
}

extension Shape.StringRule {
    static let identifierPattern = "^[a-z0-9]{1,20}(-[a-z0-9]{1,20})*$"
    static let segmentPattern = "^[a-z0-9]{1,20}$"

    /// Why `text` breaks the rule, or nil. A long `text` is quoted cut short, once.
    func problem(with text: String) -> String? {
        switch self {
        case .any:
            return nil
        case .identifier:
            guard let problem = Identifier.problem(with: text) else { return nil }
            return text.isTooLongToQuote
                ? "expected an identifier (segments of 1-20 lower-case letters and digits joined by -), got "
                    + text.quotedForError
                : problem
        case .segment:
            guard let problem = Identifier.problem(withSegment: text) else { return nil }
            if text.isTooLongToQuote {
                return "expected one identifier segment (1-20 lower-case letters and digits), got "
                    + text.quotedForError
            }
            return problem.hasPrefix("\"") ? problem : problem + " in \"\(text)\""
        case .oneOf(let allowed):
            guard !allowed.contains(text) else { return nil }
            let list = allowed.map { "\"\($0)\"" }.joined(separator: ", ")
            return "expected one of \(list), got \(text.quotedForError)" + didYouMean(text, among: allowed)
        case .pattern(let pattern, let description):
            return pattern.wholeMatches(text) ? nil : "expected \(description), got \(text.quotedForError)"
        case .duration(let minimum, let maximum):
            guard let seconds = ManifestDuration.seconds(text) else {
                return "expected \(ManifestDuration.example), got \(text.quotedForError)"
            }
            guard seconds >= Double(minimum) else {
                return "must be at least \(ManifestDuration.text(seconds: minimum)), got \(text.quotedForError)"
            }
            guard seconds <= Double(maximum) else {
                return "must be at most \(ManifestDuration.text(seconds: maximum)), got \(text.quotedForError)"
            }
            return nil
        }
    }
}

/// A suggestion for a misspelt or cut-short name: `; did you mean "policy"?` when one candidate is within a few
/// edits, or starts with the (at least four-character) text; else empty.
///
/// Only candidates whose length is within three characters of the text's are scored (no closer one could be
/// suggested), so a megabyte of text costs one pass over it, not a megabyte-by-name table of edits.
public func didYouMean(_ text: String, among candidates: [String]) -> String {
    let longest = candidates.map(\.count).max() ?? 0
    guard text.utf8.count <= 4 * (longest + 3) else { return "" }
    let length = text.count
    let lowered = text.lowercased()
    let scored = candidates.filter { abs($0.count - length) <= 3 }.map { ($0, editDistance(lowered, $0.lowercased())) }
    if let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(1, min(3, best.0.count / 3)) {
        return "; did you mean \"\(best.0)\"?"
    }
    if length >= 4, let longer = candidates.sorted().first(where: { $0.lowercased().hasPrefix(lowered) }) {
        return "; did you mean \"\(longer)\"?"
    }
    return ""
}

/// The Levenshtein distance between two strings.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    var previous = Array(0...b.count)
    for i in 1...max(1, a.count) where !a.isEmpty {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...max(1, b.count) where !b.isEmpty {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return a.isEmpty ? b.count : previous[b.count]
}
