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

    /// Whether an error message would cut the text short.
    var isTooLongToQuote: Bool {
        utf8.count > Self.quotedPrefixLength && prefix(Self.quotedPrefixLength).endIndex < endIndex
    }
}
