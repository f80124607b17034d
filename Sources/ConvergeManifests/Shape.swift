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
