/// The slug rules of DESIGN §1: segments of 1–20 lower-case letters and digits, joined by `-`.
public enum Identifier {
    /// The longest a segment may be.
    public static let maxSegmentLength = 20

    /// Why `text` is not a valid identifier, or nil when it is.
    public static func problem(with text: String) -> String? {
        guard !text.isEmpty else { return "identifier must not be empty" }
        for segment in text.split(separator: "-", omittingEmptySubsequences: false) {
            if let problem = problem(withSegment: segment) { return problem + " in \"\(text)\"" }
        }
        return nil
    }

    /// Why `text` is not a single segment (no dashes), or nil when it is.
    public static func problem(withSegment text: some StringProtocol) -> String? {
        if text.isEmpty { return "empty segment" }
        if text.count > maxSegmentLength {
            return "segment \"\(text)\" is longer than \(maxSegmentLength) characters"
        }
        if let bad = text.first(where: { !(("a"..."z").contains($0) || ("0"..."9").contains($0)) }) {
            return bad == "-"
                ? "\"\(text)\" must be a single segment without dashes"
                : "invalid character \"\(bad)\": only lower-case letters, digits and dashes between segments"
        }
        return nil
    }

    /// Joins segments into an identifier (`ecomm`, `production`, `db` → `ecomm-production-db`).
    public static func join(_ segments: String...) -> String {
        segments.joined(separator: "-")
    }
}
