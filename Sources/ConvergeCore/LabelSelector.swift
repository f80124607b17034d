/// A Kubernetes-style label selector: the requirements labels must all meet to be selected (none selects
/// everything). An environment's `reviewSelector` is one of equalities (`matchLabels`); `converge get -l` and the
/// list routes' `labelSelector` parameter write one as kubectl does: `tier=data,env!=prod,critical,!legacy`.
public struct LabelSelector: Equatable, Sendable {
    /// One requirement on the labels.
    public enum Requirement: Equatable, Sendable, CustomStringConvertible {
        /// `key=value` (or `key==value`): the label is there and has this value.
        case equals(String, String)
        /// `key!=value`: the label is absent or has another value.
        case notEquals(String, String)
        /// `key`: the label is there, whatever its value.
        case exists(String)
        /// `!key`: the label is absent.
        case notExists(String)

        /// The label key it is about.
        public var key: String {
            switch self {
            case .equals(let key, _), .notEquals(let key, _), .exists(let key), .notExists(let key): key
            }
        }

        /// Whether `labels` meet it.
        public func matches(_ labels: [String: String]) -> Bool {
            switch self {
            case .equals(let key, let value): labels[key] == value
            case .notEquals(let key, let value): labels[key] != value
            case .exists(let key): labels[key] != nil
            case .notExists(let key): labels[key] == nil
            }
        }

        public var description: String {
            switch self {
            case .equals(let key, let value): "\(key)=\(value)"
            case .notEquals(let key, let value): "\(key)!=\(value)"
            case .exists(let key): key
            case .notExists(let key): "!\(key)"
            }
        }
    }

    public var requirements: [Requirement]

    public init(_ requirements: [Requirement] = []) {
        self.requirements = requirements
    }

    /// The selector of labels that hold every pair of `matchLabels`, in key order.
    public init(matchLabels: [String: String]) {
        self.init(matchLabels.sorted { $0.key < $1.key }.map { .equals($0.key, $0.value) })
    }

    /// Whether `labels` meet every requirement.
    public func matches(_ labels: [String: String]) -> Bool {
        requirements.allSatisfy { $0.matches(labels) }
    }
}

extension LabelSelector: CustomStringConvertible {
    /// The selector as kubectl writes it, requirements separated by commas: `tier=data,!legacy`.
    public var description: String { requirements.map(\.description).joined(separator: ",") }
}

extension LabelSelector {
    /// Parses kubectl's selector syntax: requirements separated by commas, each `key=value`, `key==value`,
    /// `key!=value`, `key` or `!key`, spaces around them ignored; an empty text selects everything.
    ///
    /// A key is letters, digits, `.`, `_`, `-` and `/` (`app.kubernetes.io/name`); a value the same without `/`,
    /// possibly empty. Set-based requirements (`in (…)`) are not supported. A malformed text is `invalid_argument`
    /// saying what was expected at which character (1-based), with `position` in the details.
    public init(parsing text: String) throws(ConvergeError) {
        var scanner = Scanner(characters: Array(text))
        var requirements: [Requirement] = []
        scanner.skipSpaces()
        if scanner.atEnd {
            self.init()
            return
        }
        while true {
            scanner.skipSpaces()
            let negated = scanner.take("!")
            if negated { scanner.skipSpaces() }
            let key = try scanner.word(allowing: Scanner.keyCharacters, expected: "a label key")
            scanner.skipSpaces()
            let bare = !negated && scanner.peek != "!" && scanner.peek != "="
            if negated {
                requirements.append(.notExists(key))
            } else if scanner.take("!") {
                guard scanner.take("=") else { throw scanner.error(expected: "\"=\" after \"!\"") }
                requirements.append(.notEquals(key, try scanner.value()))
            } else if scanner.take("=") {
                _ = scanner.take("=")
                requirements.append(.equals(key, try scanner.value()))
            } else {
                requirements.append(.exists(key))
            }
            scanner.skipSpaces()
            if scanner.atEnd { break }
            guard scanner.take(",") else {
                throw scanner.error(expected: bare ? "\"=\", \"==\", \"!=\", \",\" or the end" : "\",\" or the end")
            }
        }
        self.init(requirements)
    }

    /// A cursor over the selector's characters.
    private struct Scanner {
        static let valueCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        static let keyCharacters = valueCharacters.union(["/"])

        let characters: [Character]
        var index = 0

        var atEnd: Bool { index == characters.count }
        var peek: Character? { atEnd ? nil : characters[index] }

        mutating func skipSpaces() {
            while !atEnd, characters[index] == " " { index += 1 }
        }

        /// Consumes `character` when it comes next.
        mutating func take(_ character: Character) -> Bool {
            guard !atEnd, characters[index] == character else { return false }
            index += 1
            return true
        }

        /// The run of `allowed` characters that comes next; an empty one is an error expecting `expected`.
        mutating func word(allowing allowed: Set<Character>, expected: String) throws(ConvergeError) -> String {
            let start = index
            while !atEnd, allowed.contains(characters[index]) { index += 1 }
            guard index > start else { throw error(expected: expected) }
            return String(characters[start..<index])
        }

        /// A label value after an operator, possibly empty.
        mutating func value() throws(ConvergeError) -> String {
            skipSpaces()
            let start = index
            while !atEnd, Self.valueCharacters.contains(characters[index]) { index += 1 }
            return String(characters[start..<index])
        }

        func error(expected: String) -> ConvergeError {
            let found = atEnd ? "the end" : "\"\(characters[index])\""
            return ConvergeError(
                .invalidArgument, "position \(index + 1): expected \(expected), got \(found)",
                details: ["position": .int(index + 1)])
        }
    }
}

extension LabelSelector: Codable {
    /// The stored form, as in a manifest: equalities as `matchLabels`, other requirements as Kubernetes'
    /// `matchExpressions` (`{key, operator: In|NotIn|Exists|DoesNotExist, values}`), left out when there are none.
    private enum CodingKeys: String, CodingKey {
        case matchLabels, matchExpressions
    }

    private struct Expression: Codable {
        var key: String
        var `operator`: String
        var values: [String]?
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let labels = try container.decodeIfPresent([String: String].self, forKey: .matchLabels) ?? [:]
        let expressions = try container.decodeIfPresent([Expression].self, forKey: .matchExpressions) ?? []
        self.init(matchLabels: labels)
        for expression in expressions {
            switch (expression.operator, expression.values ?? []) {
            case ("In", let values) where values.count == 1: requirements.append(.equals(expression.key, values[0]))
            case ("NotIn", let values) where values.count == 1:
                requirements.append(.notEquals(expression.key, values[0]))
            case ("Exists", []): requirements.append(.exists(expression.key))
            case ("DoesNotExist", []): requirements.append(.notExists(expression.key))
            default:
                throw DecodingError.dataCorruptedError(
                    forKey: .matchExpressions, in: container,
                    debugDescription: "unsupported expression \(expression.operator) of \(expression.key)")
            }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        var labels: [String: String] = [:]
        var expressions: [Expression] = []
        for requirement in requirements {
            switch requirement {
            case .equals(let key, let value) where labels[key] == nil: labels[key] = value
            case .equals(let key, let value): expressions.append(Expression(key: key, operator: "In", values: [value]))
            case .notEquals(let key, let value):
                expressions.append(Expression(key: key, operator: "NotIn", values: [value]))
            case .exists(let key): expressions.append(Expression(key: key, operator: "Exists"))
            case .notExists(let key): expressions.append(Expression(key: key, operator: "DoesNotExist"))
            }
        }
        try container.encode(labels, forKey: .matchLabels)
        if !expressions.isEmpty { try container.encode(expressions, forKey: .matchExpressions) }
    }
}
