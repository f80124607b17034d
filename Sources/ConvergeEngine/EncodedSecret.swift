import Foundation

/// One secret value and the encodings a provisioner is likely to print it in, found anywhere in a text's UTF-8
/// bytes: as is; JSON-escaped, up to three times over (any mix of literal characters, short escapes such as `\"` and
/// `\/`, and `\uXXXX` escapes in either case, with surrogate pairs beyond the BMP); URL-encoded (any mix of literal bytes and `%XX` in
/// either case, `+` for a space); base64 (standard and URL-safe, padded or not, alone or inside a longer encoding
/// at any of its three alignments).
///
/// JSON and URL forms are decoded while compared, so every escaping choice of every encoder matches without
/// listing them; base64 forms are listed, as they do not decode piecewise.
struct EncodedSecret: Sendable {
    /// The value's scalars, each as UTF-8.
    private let scalars: [(scalar: Unicode.Scalar, utf8: [UInt8])]
    private let utf8: [UInt8]
    /// Forms matched byte for byte: the value as is and its base64 encodings.
    private let literals: [[UInt8]]
    /// Whether a byte can start a match: a quick refusal for the rest.
    private let starts: [Bool]

    /// The shortest base64 form (inside a longer encoding) that is matched: shorter ones would hit unrelated text.
    static let minimumBase64Length = 4

    init(_ value: String) {
        scalars = value.unicodeScalars.map { ($0, Array(String($0).utf8)) }
        utf8 = Array(value.utf8)
        literals = [utf8] + Self.base64Forms(of: utf8)
        var starts = [Bool](repeating: false, count: 256)
        for literal in literals { starts[Int(literal[0])] = true }
        for byte: UInt8 in [Ascii.backslash, Ascii.percent, Ascii.plus] { starts[Int(byte)] = true }
        self.starts = starts
    }

    /// `bytes` with every match replaced by `placeholder`, the longest at each position; nil when there is none.
    func replacingMatches(in bytes: [UInt8], with placeholder: [UInt8]) -> [UInt8]? {
        var result: [UInt8] = []
        var index = 0
        var found = false
        while index < bytes.count {
            if starts[Int(bytes[index])], let end = matchEnd(in: bytes, at: index) {
                if !found { result.append(contentsOf: bytes[..<index]) }
                result.append(contentsOf: placeholder)
                index = end
                found = true
            } else {
                if found { result.append(bytes[index]) }
                index += 1
            }
        }
        return found ? result : nil
    }

    /// The end of the longest form of the value that starts at `start`, if one does.
    private func matchEnd(in bytes: [UInt8], at start: Int) -> Int? {
        var end = literals.filter { Self.has($0, in: bytes, at: start) }.map { start + $0.count }.max()
        for decodedEnd in [jsonEscapedEnd(in: bytes, at: start), urlEncodedEnd(in: bytes, at: start)] {
            if let decodedEnd, decodedEnd > end ?? start { end = decodedEnd }
        }
        return end
    }

    private static func has(_ literal: [UInt8], in bytes: [UInt8], at start: Int) -> Bool {
        start + literal.count <= bytes.count && bytes[start..<start + literal.count].elementsEqual(literal)
    }

    /// The end of the value JSON-escaped once, twice or three times (JSON in a JSON string, a JSON line logged) at
    /// `start`.
    private func jsonEscapedEnd(in bytes: [UInt8], at start: Int) -> Int? {
        (1...Self.maximumJSONDepth).lazy.compactMap { depth -> Int? in
            var index = start
            for (scalar, _) in scalars {
                guard let (read, next) = Self.jsonScalar(in: bytes, at: index, depth: depth), read == scalar else {
                    return nil
                }
                index = next
            }
            return index
        }.first
    }

    /// How many times over a JSON escaping is undone.
    static let maximumJSONDepth = 3

    /// What the letter after a backslash stands for in a JSON string, but for `u`.
    private static let shortEscapes: [Unicode.Scalar: Unicode.Scalar] = [
        "\"": "\"", "\\": "\\", "/": "/", "b": "\u{8}", "f": "\u{C}", "n": "\n", "r": "\r", "t": "\t",
    ]

    /// The scalar at `index` of text JSON-escaped `depth` times (0: as is), and the index after it.
    ///
    /// An escape at one depth is a backslash and its letters, each written at the depth below: `\\\"` is `"` escaped
    /// twice.
    private static func jsonScalar(in bytes: [UInt8], at index: Int, depth: Int) -> (Unicode.Scalar, Int)? {
        guard depth > 0 else { return utf8Scalar(in: bytes, at: index) }
        guard let (first, afterFirst) = jsonScalar(in: bytes, at: index, depth: depth - 1) else { return nil }
        guard first == "\\" else { return (first, afterFirst) }
        guard let (kind, afterKind) = jsonScalar(in: bytes, at: afterFirst, depth: depth - 1) else { return nil }
        if let scalar = shortEscapes[kind] { return (scalar, afterKind) }
        guard kind == "u", let (unit, afterUnit) = hexUnit(in: bytes, at: afterKind, depth: depth - 1) else {
            return nil
        }
        guard (0xD800..<0xDC00).contains(unit) else { return Unicode.Scalar(unit).map { ($0, afterUnit) } }
        guard let (backslash, afterBackslash) = jsonScalar(in: bytes, at: afterUnit, depth: depth - 1),
            backslash == "\\", let (u, afterU) = jsonScalar(in: bytes, at: afterBackslash, depth: depth - 1), u == "u",
            let (low, end) = hexUnit(in: bytes, at: afterU, depth: depth - 1), (0xDC00..<0xE000).contains(low)
        else { return nil }
        return Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)).map { ($0, end) }
    }

    /// The UTF-16 code unit of a `\u` escape's four hexadecimal digits (either case) at `index`, each written at
    /// `depth`, and the index after them.
    private static func hexUnit(in bytes: [UInt8], at index: Int, depth: Int) -> (UInt32, Int)? {
        var unit: UInt32 = 0
        var index = index
        for _ in 0..<4 {
            guard let (digit, next) = jsonScalar(in: bytes, at: index, depth: depth),
                digit.isASCII, let value = UInt32(String(digit), radix: 16)
            else { return nil }
            unit = unit << 4 | value
            index = next
        }
        return (unit, index)
    }

    /// The scalar whose UTF-8 starts at `index`, and the index after it.
    private static func utf8Scalar(in bytes: [UInt8], at index: Int) -> (Unicode.Scalar, Int)? {
        guard index < bytes.count else { return nil }
        let lead = bytes[index]
        let length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
        guard lead & 0xC0 != 0x80, index + length <= bytes.count else { return nil }
        var value = UInt32(length == 1 ? lead : lead & (0xFF >> (length + 1)))
        for byte in bytes[index + 1..<index + length] { value = value << 6 | UInt32(byte & 0x3F) }
        return Unicode.Scalar(value).map { ($0, index + length) }
    }

    /// The end of the value URL-encoded at `start`.
    private func urlEncodedEnd(in bytes: [UInt8], at start: Int) -> Int? {
        var index = start
        for byte in utf8 {
            guard index < bytes.count else { return nil }
            switch bytes[index] {
            case Ascii.percent:
                guard hex(bytes, at: index + 1, digits: 2) == UInt32(byte) else { return nil }
                index += 3
            case Ascii.plus:
                guard byte == UInt8(ascii: " ") || byte == Ascii.plus else { return nil }
                index += 1
            default:
                guard bytes[index] == byte else { return nil }
                index += 1
            }
        }
        return index
    }

    /// The value's base64 forms, standard and URL-safe: the whole encoding padded and unpadded, and, for the value
    /// inside a longer encoding, the characters that depend on its bytes alone at each of the three alignments.
    static func base64Forms(of bytes: [UInt8]) -> [[UInt8]] {
        var standard: Set<[UInt8]> = []
        for alignment in 0..<3 {
            let encoded = Array((Data(count: alignment) + Data(bytes)).base64EncodedString().utf8)
            if alignment == 0 {
                standard.insert(encoded)
                standard.insert(Array(encoded.prefix { $0 != UInt8(ascii: "=") }))
            }
            // Character i holds bits 6i..<6i+6 of the encoded bytes; the value's are 8·alignment..<8·(alignment+n).
            let first = (alignment * 8 + 5) / 6
            let end = (alignment + bytes.count) * 8 / 6
            if end > first { standard.insert(Array(encoded[first..<end])) }
        }
        let urlSafe = standard.map { form in
            form.map { $0 == Ascii.plus ? UInt8(ascii: "-") : $0 == UInt8(ascii: "/") ? UInt8(ascii: "_") : $0 }
        }
        return Set(standard).union(urlSafe).filter { $0.count >= minimumBase64Length }.sorted { $0.count > $1.count }
    }
}

/// The number written in `digits` hexadecimal digits (either case) at `index`, if they are there.
private func hex(_ bytes: [UInt8], at index: Int, digits: Int) -> UInt32? {
    guard index + digits <= bytes.count else { return nil }
    var value: UInt32 = 0
    for byte in bytes[index..<index + digits] {
        let digit: UInt8
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
        default: return nil
        }
        value = value << 4 | UInt32(digit)
    }
    return value
}

private enum Ascii {
    static let backslash = UInt8(ascii: "\\")
    static let percent = UInt8(ascii: "%")
    static let plus = UInt8(ascii: "+")
}
