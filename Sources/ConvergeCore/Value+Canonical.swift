import Crypto
import Foundation

extension Value {
    /// The canonical JSON encoding: object keys sorted by their UTF-8 bytes, no whitespace, one number form.
    ///
    /// Two values are equal exactly when their canonical encodings are; hashes of desired state are taken
    /// over these bytes, so this encoding must never change.
    public var canonicalJSON: String {
        String(decoding: encoded(indent: nil), as: UTF8.self)
    }

    /// The same encoding indented by two spaces, for people and committed files.
    public var prettyJSON: String {
        String(decoding: encoded(indent: Array("  ".utf8)), as: UTF8.self)
    }

    /// The lower-case hex SHA-256 of the canonical encoding.
    public var canonicalHash: String {
        SHA256.hash(data: encoded(indent: nil)).hexString
    }

    /// The encoding as UTF-8 bytes, built in one buffer.
    private func encoded(indent: [UInt8]?) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(256)
        append(to: &output, indent: indent, level: 0)
        return output
    }

    private func append(to output: inout [UInt8], indent: [UInt8]?, level: Int) {
        func newline(_ level: Int) {
            guard let indent else { return }
            output.append(UInt8(ascii: "\n"))
            for _ in 0..<level { output.append(contentsOf: indent) }
        }
        switch self {
        case .null: output.append(contentsOf: "null".utf8)
        case .bool(let bool): output.append(contentsOf: (bool ? "true" : "false").utf8)
        case .int(let int): output.append(contentsOf: String(int).utf8)
        case .double(let double): output.append(contentsOf: Value.canonicalDouble(double).utf8)
        case .string(let string): Value.appendQuoted(string, to: &output)
        case .array(let elements):
            output.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                newline(level + 1)
                element.append(to: &output, indent: indent, level: level + 1)
            }
            if !elements.isEmpty { newline(level) }
            output.append(UInt8(ascii: "]"))
        case .object(let members):
            output.append(UInt8(ascii: "{"))
            // Keys in the order of their UTF-8 bytes, compared in place.
            let sorted = members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            for (index, member) in sorted.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                newline(level + 1)
                Value.appendQuoted(member.key, to: &output)
                output.append(UInt8(ascii: ":"))
                if indent != nil { output.append(UInt8(ascii: " ")) }
                member.value.append(to: &output, indent: indent, level: level + 1)
            }
            if !members.isEmpty { newline(level) }
            output.append(UInt8(ascii: "}"))
        }
    }

    /// Shortest round-trip form, always with a fraction or exponent so it never reads back as an integer.
    private static func canonicalDouble(_ double: Double) -> String {
        let text = "\(double)"
        return text.contains(where: { $0 == "." || $0 == "e" }) ? text : text + ".0"
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// A JSON string: `"` and `\` escaped, control characters as their short escape or `\u00XX`, every other byte
    /// of the UTF-8 encoding as it is.
    private static func appendQuoted(_ string: String, to output: inout [UInt8]) {
        let hex = hexDigits
        output.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x08: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0..<0x20:
                output.append(contentsOf: "\\u00".utf8)
                output.append(hex[Int(byte >> 4)])
                output.append(hex[Int(byte & 0x0F)])
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
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
