import CYAML
import ConvergeCore

/// Writes a value as YAML text with the system libyaml's emitter: block style, keys sorted, strings quoted only
/// when needed.
///
/// A string is written plain unless `YAMLParser` would read the plain text back as something else (`"true"`,
/// `"null"`, `"1.0"`, `"0x1A"`, `""`), libyaml cannot write it plain (leading or trailing spaces, `": "`, `" #"`,
/// indicators), or it is one of YAML 1.1's boolean words (`yes`, `no`, `on`, `off`, `y`, `n`), which this
/// project's parser reads as strings but YAML 1.1 readers (PyYAML) do not. Strings of several lines are written
/// as literal blocks (`|`) when every line break is `\n`, else double-quoted. Lines are never folded.
public struct YAMLEmitter: Sendable {
    /// An emitter with the project's style: two-space indentation, unlimited width, Unicode written as it is.
    public init() {}

    /// `value` as one YAML document, ending with a newline.
    public func emit(_ value: Value) -> String {
        var output: [UInt8] = []
        var emitter = yaml_emitter_t()
        guard yaml_emitter_initialize(&emitter) == 1 else {
            preconditionFailure("cannot initialise the libyaml emitter")
        }
        defer { yaml_emitter_delete(&emitter) }
        withUnsafeMutablePointer(to: &emitter) { emitter in
            yaml_emitter_set_unicode(emitter, 1)
            yaml_emitter_set_width(emitter, -1)
            yaml_emitter_set_indent(emitter, 2)
            withUnsafeMutablePointer(to: &output) { buffer in
                yaml_emitter_set_output(
                    emitter,
                    { data, bytes, size in
                        guard let data, let bytes else { return 1 }
                        data.assumingMemoryBound(to: [UInt8].self).pointee.append(
                            contentsOf: UnsafeBufferPointer(start: bytes, count: size))
                        return 1
                    }, buffer)
                EventWriter(emitter: emitter).stream(value)
            }
        }
        return String(decoding: output, as: UTF8.self)
    }
}

/// Sends the events of one document to a libyaml emitter.
private struct EventWriter {
    let emitter: UnsafeMutablePointer<yaml_emitter_t>

    /// Emits one event; the emitter owns and frees it whether or not it succeeds.
    func send(_ initialize: (UnsafeMutablePointer<yaml_event_t>) -> Int32) {
        var event = yaml_event_t()
        guard initialize(&event) == 1 else { preconditionFailure("cannot create a libyaml event") }
        guard yaml_emitter_emit(emitter, &event) == 1 else {
            // Every value has a YAML form, so a failure here is a bug in the events sent, or memory exhausted.
            let problem = emitter.pointee.problem.map { String(cString: $0) } ?? "unknown error"
            preconditionFailure("libyaml emitter failed: \(problem)")
        }
    }

    func stream(_ value: Value) {
        send { yaml_stream_start_event_initialize($0, YAML_UTF8_ENCODING) }
        send { yaml_document_start_event_initialize($0, nil, nil, nil, 1) }
        node(value)
        send { yaml_document_end_event_initialize($0, 1) }
        send { yaml_stream_end_event_initialize($0) }
        guard yaml_emitter_flush(emitter) == 1 else { preconditionFailure("cannot flush the libyaml emitter") }
    }

    func node(_ value: Value) {
        switch value {
        case .null: scalar("null", quoted: false)
        case .bool(let bool): scalar(bool ? "true" : "false", quoted: false)
        case .int(let int): scalar(String(int), quoted: false)
        case .double(let double): scalar(YAMLEmitter.text(of: double), quoted: false)
        case .string(let string): scalar(string, quoted: !YAMLEmitter.isPlainSafe(string))
        case .array(let elements):
            send { yaml_sequence_start_event_initialize($0, nil, nil, 1, YAML_BLOCK_SEQUENCE_STYLE) }
            for element in elements { node(element) }
            send { yaml_sequence_end_event_initialize($0) }
        case .object(let members):
            send { yaml_mapping_start_event_initialize($0, nil, nil, 1, YAML_BLOCK_MAPPING_STYLE) }
            // Keys in the order of their UTF-8 bytes, as in the canonical JSON encoding.
            for (key, member) in members.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
                scalar(key, quoted: !YAMLEmitter.isPlainSafe(key))
                node(member)
            }
            send { yaml_mapping_end_event_initialize($0) }
        }
    }

    /// A scalar without a tag. `quoted` forbids the plain style (libyaml then picks single or double quotes);
    /// libyaml also quotes on its own whatever cannot be written plain.
    func scalar(_ text: String, quoted: Bool) {
        let style = YAMLEmitter.style(for: text)
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBufferPointer { buffer in
            send {
                yaml_scalar_event_initialize(
                    $0, nil, nil, buffer.baseAddress, Int32(buffer.count), quoted ? 0 : 1, 1, style)
            }
        }
    }
}

extension YAMLEmitter {
    /// YAML 1.1 booleans that the 1.2 core schema reads as strings: quoted so that 1.1 readers agree.
    static let yaml11Booleans: Set<String> = [
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF",
    ]

    /// Whether `text`, written as a plain scalar, reads back as the same string.
    ///
    /// Only texts starting with a character that can start a null, a boolean or a number (the same test the
    /// parser's resolver makes first) are read back with `YAMLParser` itself, so the answer is exact for it and
    /// costs nothing for most words. Syntax (indicators, spaces, breaks) is libyaml's own check.
    static func isPlainSafe(_ text: String) -> Bool {
        guard let first = text.utf8.first else { return false }
        if yaml11Booleans.contains(text) { return false }
        switch first {
        case UInt8(ascii: "~"), UInt8(ascii: "n"), UInt8(ascii: "N"), UInt8(ascii: "t"), UInt8(ascii: "T"),
            UInt8(ascii: "f"), UInt8(ascii: "F"), UInt8(ascii: "."), UInt8(ascii: "+"), UInt8(ascii: "-"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            guard let documents = try? YAMLParser().parse(text, file: "") else { return false }
            return documents.count == 1 && documents[0].scalar == .string(text)
        default:
            return true
        }
    }

    /// Literal blocks for text of several lines whose breaks are all `\n` (other breaks would be read back as
    /// `\n`); plain (or the quotes libyaml falls back to) for the rest.
    static func style(for text: String) -> yaml_scalar_style_t {
        var hasNewline = false
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": hasNewline = true
            case "\r", "\u{85}", "\u{2028}", "\u{2029}": return YAML_DOUBLE_QUOTED_SCALAR_STYLE
            default: break
            }
        }
        return hasNewline ? YAML_LITERAL_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE
    }

    /// The shortest text that reads back as the same double, with a fraction so that YAML 1.1 readers see a float
    /// too (`1.0e+300`, not `1e+300`).
    static func text(of double: Double) -> String {
        let text = "\(double)"
        if text.contains(".") { return text }
        guard let exponent = text.firstIndex(where: { $0 == "e" || $0 == "E" }) else { return text + ".0" }
        return text[..<exponent] + ".0" + text[exponent...]
    }
}
