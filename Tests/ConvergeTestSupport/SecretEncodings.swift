import Foundation

/// A secret value as the encoders a provisioner is likely to use write it, for tests that the daemon never records
/// or shows one of them.
public enum SecretEncodings {
    /// Quotes, a backslash, non-ASCII in and beyond the BMP, a space, `+`, `/` and `%`: every escaping choice shows.
    public static let secret = #"p"w\d€-… a+b/😀%"#

    /// `value` as each encoder writes it, by the encoder's name.
    public static func encodings(of value: String) -> [(encoder: String, encoded: String)] {
        let base64 = Data(value.utf8).base64EncodedString()
        let percent = value.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        return [
            ("as is", value),
            ("JSON, non-ASCII as is", json(value, escapingSlashes: false)),
            ("JSON, slashes escaped (Foundation)", json(value, escapingSlashes: true)),
            ("JSON, \\uXXXX lower case (Python)", uEscaped(value, uppercase: false)),
            ("JSON, \\uXXXX upper case", uEscaped(value, uppercase: true)),
            ("JSON in a JSON string", json(json(value, escapingSlashes: false), escapingSlashes: false)),
            ("JSON \\uXXXX in a JSON string", json(uEscaped(value, uppercase: false), escapingSlashes: false)),
            ("percent-encoded, all but alphanumerics", percent),
            ("percent-encoded, lower-case hex", lowercasedEscapes(percent)),
            ("percent-encoded query", value.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed)!),
            ("form-encoded, + for space", formEncoded(value)),
            ("base64", base64),
            ("base64 unpadded", unpadded(base64)),
            ("base64 URL-safe", urlSafe(base64)),
            ("base64 URL-safe unpadded", unpadded(urlSafe(base64))),
            ("base64 of user:value (basic auth)", Data("user:\(value)".utf8).base64EncodedString()),
            ("base64 of a:value", Data("a:\(value)".utf8).base64EncodedString()),
            ("base64 of ab:value and more, URL-safe", urlSafe(Data("ab:\(value) and more".utf8).base64EncodedString())),
        ]
    }

    /// `text` as the inside of a JSON string.
    public static func json(_ text: String, escapingSlashes: Bool) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = escapingSlashes ? [] : [.withoutEscapingSlashes]
        let quoted = String(decoding: try! encoder.encode(text), as: UTF8.self)
        return String(quoted.dropFirst().dropLast())
    }

    /// `text` as the inside of a JSON string with everything but ASCII letters, digits and spaces as `\uXXXX`
    /// (surrogate pairs beyond the BMP).
    static func uEscaped(_ text: String, uppercase: Bool) -> String {
        text.utf16.map { unit in
            let character = Unicode.Scalar(unit).map(Character.init)
            if let character, character.isASCII, character.isLetter || character.isNumber || character == " " {
                return String(character)
            }
            let hex = String(unit, radix: 16, uppercase: uppercase)
            return "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        }.joined()
    }

    static func lowercasedEscapes(_ text: String) -> String {
        text.split(separator: "%", omittingEmptySubsequences: false).enumerated().map { index, part in
            index == 0 ? String(part) : part.prefix(2).lowercased() + part.dropFirst(2)
        }.joined(separator: "%")
    }

    static func formEncoded(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(" ")
        return text.addingPercentEncoding(withAllowedCharacters: allowed)!.replacingOccurrences(of: " ", with: "+")
    }

    static func unpadded(_ text: String) -> String { text.replacingOccurrences(of: "=", with: "") }

    static func urlSafe(_ text: String) -> String {
        text.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }
}
