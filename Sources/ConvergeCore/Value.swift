/// The JSON-like value of params, connection params, outputs and metadata.
///
/// Numbers have one form: `int` for every integral number that fits, `double` only for the rest, so that
/// `20` and `20.0` are the same value and hash the same. Doubles are always finite.
public enum Value: Hashable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([Value])
    case object([String: Value])

    /// A number in its canonical form: integral doubles that fit an `Int` become `.int`; non-finite is refused.
    public static func number(_ double: Double) -> Value? {
        guard double.isFinite else { return nil }
        if double.rounded() == double, let exact = Int(exactly: double) {
            return .int(exact)
        }
        return .double(double)
    }

    /// The members of an object, or nil for any other value.
    public var objectValue: [String: Value]? {
        if case .object(let members) = self { return members }
        return nil
    }

    /// The elements of an array, or nil for any other value.
    public var arrayValue: [Value]? {
        if case .array(let items) = self { return items }
        return nil
    }

    /// The string, or nil for any other value.
    public var stringValue: String? {
        if case .string(let string) = self { return string }
        return nil
    }

    /// An object's string members (a labels object's labels); empty for anything else.
    public var stringMembers: [String: String] {
        objectValue?.compactMapValues(\.stringValue) ?? [:]
    }

    /// The element or member at `key` of an object, or nil.
    public subscript(key: String) -> Value? {
        objectValue?[key]
    }

    /// The JSON type name of this value, as JSON Schema spells it (`integer` for whole numbers).
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .int: "integer"
        case .double: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}

extension Value: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = Value.number(value) ?? .null }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: Value...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, Value)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}
