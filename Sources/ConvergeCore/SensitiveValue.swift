/// An output value a provisioner marks sensitive (DESIGN §5), in the forms it takes on its way downstream.
///
/// A provisioner writes `{"value": <any JSON>, "sensitive": true}` where an output value goes, at any depth of its
/// outputs. The daemon stores it sealed, `{"$sealed": "<base64>"}`, and opens it only to send it to the provisioner of
/// an instance connected to it. Every answer, event and CLI output shows either form as `[sensitive]`: the key that
/// holds it, its name, is all that is shown.
public enum SensitiveValue {
    /// What a sensitive value is shown as.
    public static let shown: Value = "[sensitive]"
    /// The one member of a sealed value's object.
    static let sealedKey = "$sealed"

    /// The value `value` marks sensitive, if it is such a marker: an object of exactly `value` and `sensitive: true`.
    public static func marked(in value: Value) -> Value? {
        guard let members = value.objectValue, members.count == 2, members["sensitive"] == .bool(true) else {
            return nil
        }
        return members["value"]
    }

    /// The sealed text of `value`, if it is a sealed value: an object of exactly `$sealed` and a string.
    public static func sealedText(of value: Value) -> String? {
        guard let members = value.objectValue, members.count == 1 else { return nil }
        return members[sealedKey]?.stringValue
    }

    /// The sealed value of `text`.
    public static func sealed(_ text: String) -> Value {
        .object([sealedKey: .string(text)])
    }

    /// Whether `value` is sensitive, marked or sealed: what secret redaction leaves alone and what is shown by name.
    public static func isSensitive(_ value: Value) -> Bool {
        marked(in: value) != nil || sealedText(of: value) != nil
    }

    /// A log line with the sensitive values of the JSON object it holds shown as `[sensitive]`: how an exec command's
    /// last line, which carries its outputs, is logged. Any other line is returned as is.
    public static func showingByName(inLine line: String) -> String {
        guard line.contains("\"sensitive\""), let value = try? Value(json: line), value.objectValue != nil else {
            return line
        }
        let shown = value.showingSensitiveByName
        return shown == value ? line : shown.canonicalJSON
    }
}

extension Value {
    /// This value with every object (itself included) that `transform` gives a replacement for replaced, outermost
    /// first: a replacement is not looked into.
    public func replacingObjects(_ transform: (Value) throws -> Value?) rethrows -> Value {
        switch self {
        case .object(let members):
            if let replacement = try transform(self) { return replacement }
            return .object(try members.mapValues { try $0.replacingObjects(transform) })
        case .array(let items):
            return .array(try items.map { try $0.replacingObjects(transform) })
        case .null, .bool, .int, .double, .string:
            return self
        }
    }

    /// This value as it is shown: each sensitive value, marked or sealed, replaced by `[sensitive]`.
    public var showingSensitiveByName: Value {
        replacingObjects { value -> Value? in
            // Not a ternary: its `nil` would be `Value.null`, as `Value` is `ExpressibleByNilLiteral`.
            guard SensitiveValue.isSensitive(value) else { return nil }
            return SensitiveValue.shown
        }
    }
}
