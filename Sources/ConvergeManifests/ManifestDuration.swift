/// Durations written in manifests as digits and a unit: `500ms`, `30s`, `5m`, `1h`.
///
/// One parser for every such field (`spec.retry.backoff`, `spec.driftCheck.every`), so they all accept the same
/// spellings.
enum ManifestDuration {
    /// The pattern a duration matches, for JSON Schema.
    static let pattern = "[0-9]+(ms|s|m|h)"
    /// What a duration looks like, for error messages.
    static let example = "a duration like 30s, 5m or 1h"

    /// The seconds that `text` stands for, or nil when it is not digits followed by `ms`, `s`, `m` or `h`, or too
    /// large to count.
    static func seconds(_ text: String) -> Double? {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        let unit = text[digits.endIndex...]
        let scale: Int
        switch unit {
        case "ms": scale = 1
        case "s": scale = 1000
        case "m": scale = 60_000
        case "h": scale = 3_600_000
        default: return nil
        }
        guard !digits.isEmpty, digits.count <= 15, let count = Int(digits) else { return nil }
        let (milliseconds, overflow) = count.multipliedReportingOverflow(by: scale)
        guard !overflow else { return nil }
        return Double(milliseconds) / 1000
    }

    /// The shortest spelling of a whole number of seconds, for messages: `86400` → `24h`.
    static func text(seconds: Int) -> String {
        if seconds % 3600 == 0 { return "\(seconds / 3600)h" }
        if seconds % 60 == 0 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }
}
