import ConvergeCore
import OpenAPIRuntime

extension Value {
    /// The value as the generated API types carry any JSON (`JSONValue` in the document).
    public var container: OpenAPIValueContainer {
        // Every case maps to a type the container accepts, so this cannot fail.
        try! OpenAPIValueContainer(unvalidatedValue: Self.unwrapped(self))
    }

    /// A value from the generated API types; nil stays absent.
    public init(_ container: OpenAPIValueContainer) {
        self = Self.wrapped(container.value)
    }

    private static func unwrapped(_ value: Value) -> (any Sendable)? {
        switch value {
        case .null: nil
        case .bool(let bool): bool
        case .int(let int): int
        case .double(let double): double
        case .string(let string): string
        case .array(let items): items.map(unwrapped)
        case .object(let members): members.mapValues(unwrapped)
        }
    }

    private static func wrapped(_ value: (any Sendable)?) -> Value {
        switch value {
        case nil: .null
        case let bool as Bool: .bool(bool)
        case let int as Int: .int(int)
        case let double as Double: .double(double)
        case let string as String: .string(string)
        case let items as [(any Sendable)?]: .array(items.map(wrapped))
        case let members as [String: (any Sendable)?]: .object(members.mapValues(wrapped))
        default: .string("\(value!)")
        }
    }
}
