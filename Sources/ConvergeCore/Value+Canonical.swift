import Crypto
import Foundation

extension Value {
    /// The canonical JSON encoding: object keys sorted by their UTF-8 bytes, no whitespace, one number form.
    ///
    /// Two values are equal exactly when their canonical encodings are; hashes of desired state are taken
    /// over these bytes, so this encoding must never change.
    public var canonicalJSON: String {
        var output = ""
        append(to: &output, indent: nil, level: 0)
        return output
    }

    /// The same encoding indented by two spaces, for people and committed files.
    public var prettyJSON: String {
        var output = ""
        append(to: &output, indent: "  ", level: 0)
        return output
    }

    /// The lower-case hex SHA-256 of the canonical encoding.
    public var canonicalHash: String {
        SHA256.hash(data: Data(canonicalJSON.utf8)).hexString
    }

    private func append(to output: inout String, indent: String?, level: Int) {
        func newline(_ level: Int) {
            if let indent { output += "\n" + String(repeating: indent, count: level) }
        }
        switch self {
        case .null: output += "null"
        case .bool(let bool): output += bool ? "true" : "false"
        case .int(let int): output += String(int)
        case .double(let double): output += Value.canonicalDouble(double)
        case .string(let string): Value.appendQuoted(string, to: &output)
        case .array(let elements):
            output += "["
            for (index, element) in elements.enumerated() {
                if index > 0 { output += "," }
                newline(level + 1)
                element.append(to: &output, indent: indent, level: level + 1)
            }
            if !elements.isEmpty { newline(level) }
            output += "]"
        case .object(let members):
            output += "{"
            let keys = members.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            for (index, key) in keys.enumerated() {
                if index > 0 { output += "," }
                newline(level + 1)
                Value.appendQuoted(key, to: &output)
                output += indent == nil ? ":" : ": "
                members[key]!.append(to: &output, indent: indent, level: level + 1)
            }
            if !members.isEmpty { newline(level) }
            output += "}"
        }
    }

    /// Shortest round-trip form, always with a fraction or exponent so it never reads back as an integer.
    private static func canonicalDouble(_ double: Double) -> String {
        let text = "\(double)"
        return text.contains(where: { $0 == "." || $0 == "e" }) ? text : text + ".0"
    }

    private static func appendQuoted(_ string: String, to output: inout String) {
        output += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case "\u{08}": output += "\\b"
            case "\u{0C}": output += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: output.unicodeScalars.append(scalar)
            }
        }
        output += "\""
    }
}

extension Value: Codable {
    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let bool = try? container.decode(Bool.self) {
            self = .bool(bool)
        } else if let int = try? container.decode(Int.self) {
            self = .int(int)
        } else if let double = try? container.decode(Double.self) {
            guard let number = Value.number(double) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "non-finite number")
            }
            self = number
        } else if let string = try? container.decode(String.self) {
            self = .string(string)
        } else if let array = try? container.decode([Value].self) {
            self = .array(array)
        } else {
            self = .object(try container.decode([String: Value].self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let bool): try container.encode(bool)
        case .int(let int): try container.encode(int)
        case .double(let double): try container.encode(double)
        case .string(let string): try container.encode(string)
        case .array(let array): try container.encode(array)
        case .object(let object): try container.encode(object)
        }
    }
}

extension Sequence<UInt8> {
    /// The bytes as lower-case hex, two digits each.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        for byte in self {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: hex, as: UTF8.self)
    }
}

extension Array where Element == UInt8 {
    /// Bytes from lower- or upper-case hex, two digits each; nil when `hex` is not that.
    public init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count.isMultiple(of: 2) else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else {
                return nil
            }
            bytes.append(byte)
        }
        self = bytes
    }
}
