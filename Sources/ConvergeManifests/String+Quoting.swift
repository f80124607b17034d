extension String {
    /// How many characters of a key or value an error message quotes before cutting it short.
    static let quotedPrefixLength = 60

    /// The text as an error message shows it: whole when short, else its first 60 characters, an ellipsis and its
    /// length in bytes (`abc…(1048576 bytes)`), so a megabyte key is never copied into a message.
    var excerptForError: String {
        guard utf8.count > Self.quotedPrefixLength else { return self }
        let head = prefix(Self.quotedPrefixLength)
        guard head.endIndex < endIndex else { return self }
        return "\(head)…(\(utf8.count) bytes)"
    }

    /// The excerpt in double quotes: `"storage_gb"`.
    var quotedForError: String { "\"\(excerptForError)\"" }

    /// The text with control characters written as escapes: `\n`, `\r`, `\t`, others as `\u{1B}`.
    var escapingControlCharacters: String {
        guard unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return self }
        var escaped = ""
        for scalar in unicodeScalars {
            switch scalar {
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case _ where scalar.properties.generalCategory == .control:
                escaped += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    /// Whether an error message would cut the text short.
    var isTooLongToQuote: Bool {
        utf8.count > Self.quotedPrefixLength && prefix(Self.quotedPrefixLength).endIndex < endIndex
    }
}
