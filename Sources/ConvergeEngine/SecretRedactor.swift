import ConvergeCore

/// Replaces every occurrence of an instance's secret values with `[redacted]`, in what the daemon records and logs of
/// a deployment (provisioner log lines, phases, errors, outputs, plan results): as is, and in every encoding
/// `EncodedSecret` knows (JSON-escaped, URL-encoded, base64).
///
/// Matching is on UTF-8 bytes, longest value first, so a value that contains another is replaced whole and no
/// Unicode normalisation lets a value through.
public struct SecretRedactor: Sendable {
    /// What a secret value is replaced with.
    public static let placeholder = "[redacted]"

    /// The values, non-empty, distinct, longest first.
    private let values: [EncodedSecret]
    /// Whether every non-empty text is replaced whole: what is recorded when the values cannot be read.
    private let redactsEverything: Bool

    /// A redactor of `values`; empty ones are ignored.
    public init(_ values: some Sequence<String>) {
        self.values = Set(values.filter { !$0.isEmpty }).sorted { $0.utf8.count > $1.utf8.count }.map(
            EncodedSecret.init)
        redactsEverything = false
    }

    private init(everything: Bool) {
        values = []
        redactsEverything = everything
    }

    /// A redactor that replaces every non-empty text whole, for when an instance's values cannot be read.
    public static let everything = SecretRedactor(everything: true)

    /// Whether it replaces nothing.
    public var isEmpty: Bool { values.isEmpty && !redactsEverything }

    /// `text` with every value replaced.
    public func redact(_ text: String) -> String {
        if redactsEverything { return text.isEmpty ? text : Self.placeholder }
        guard !values.isEmpty else { return text }
        var bytes = Array(text.utf8)
        var changed = false
        for value in values {
            if let replaced = value.replacingMatches(in: bytes, with: Array(Self.placeholder.utf8)) {
                bytes = replaced
                changed = true
            }
        }
        return changed ? String(decoding: bytes, as: UTF8.self) : text
    }

    /// `value` with every string in it (keys too) redacted, but for its sensitive values: a value the provisioner
    /// marked sensitive is sealed whole (it may carry a secret downstream on purpose), and a sealed one holds none.
    public func redact(_ value: Value) -> Value {
        guard !isEmpty else { return value }
        switch value {
        case .string(let text):
            return .string(redact(text))
        case .array(let items):
            return .array(items.map(redact))
        case .object(let members):
            if SensitiveValue.isSensitive(value) { return value }
            return .object(
                Dictionary(members.map { (redact($0.key), redact($0.value)) }, uniquingKeysWith: { first, _ in first }))
        case .null, .bool, .int, .double:
            return value
        }
    }

    /// `event` with its message and data redacted.
    public func redact(_ event: DeploymentEventDraft) -> DeploymentEventDraft {
        guard !isEmpty else { return event }
        return DeploymentEventDraft(kind: event.kind, message: redact(event.message), data: event.data.map(redact))
    }

    /// `outcome` with its outputs, plan result and error redacted.
    public func redact(_ outcome: ProvisionOutcome) -> ProvisionOutcome {
        guard !isEmpty else { return outcome }
        switch outcome {
        case .completed(let outputs, let planResult):
            return .completed(outputs: redact(outputs), planResult: planResult.map(redact))
        case .failed(let error):
            return .failed(redact(error))
        case .accepted:
            return outcome
        }
    }
}
