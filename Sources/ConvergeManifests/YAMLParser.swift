import CYAML
import ConvergeCore

/// Bounds that keep hostile YAML from hurting the daemon; every one has a sane default and can be configured.
public struct YAMLLimits: Sendable, Equatable {
    /// The largest file read, in bytes.
    public var maxFileBytes: Int
    /// The deepest nesting of sequences and mappings.
    public var maxDepth: Int
    /// How many nodes aliases may pull in across one document ("billion laughs" protection).
    public var maxAliasExpansion: Int

    public init(maxFileBytes: Int = 4 << 20, maxDepth: Int = 64, maxAliasExpansion: Int = 10_000) {
        self.maxFileBytes = maxFileBytes
        self.maxDepth = maxDepth
        self.maxAliasExpansion = maxAliasExpansion
    }
}

/// Parses YAML text with the system libyaml's event API into located nodes, one per document.
///
/// Scalars are resolved with the YAML 1.2 core schema (so `yes` stays a string), merge keys (`<<: *base`) are
/// applied, aliases are expanded within `maxAliasExpansion` nodes, and nesting is bounded by `maxDepth`.
/// Problems are thrown as one `ManifestDiagnostic`: a parse stops at the first problem of its file.
public struct YAMLParser {
    public var limits: YAMLLimits

    public init(limits: YAMLLimits = YAMLLimits()) {
        self.limits = limits
    }

    /// The non-empty documents of `text`, which was read from `file`.
    public func parse(_ text: String, file: String) throws(ManifestDiagnostic) -> [YAMLNode] {
        try parse(utf8: Array(text.utf8), file: file)
    }

    /// The non-empty documents of the UTF-8 text `bytes`, which was read from `file`.
    func parse(utf8 bytes: [UInt8], file: String) throws(ManifestDiagnostic) -> [YAMLNode] {
        guard bytes.count <= limits.maxFileBytes else {
            throw ManifestDiagnostic(
                SourceLocation(file: file, line: 1, column: 1), "",
                "file is \(bytes.count) bytes, more than the limit of \(limits.maxFileBytes)")
        }
        var builder = Builder(file: file, limits: limits)
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw ManifestDiagnostic(SourceLocation(file: file, line: 1, column: 1), "", "cannot initialise libyaml")
        }
        defer { yaml_parser_delete(&parser) }
        return try bytes.withUnsafeBufferPointer { buffer throws(ManifestDiagnostic) in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var event = yaml_event_t()
            while true {
                guard yaml_parser_parse(&parser, &event) == 1 else {
                    throw builder.syntaxError(parser)
                }
                defer { yaml_event_delete(&event) }
                if event.type == YAML_STREAM_END_EVENT { return builder.documents }
                try builder.handle(event)
            }
        }
    }
}

/// Turns libyaml events into nodes, keeping a stack of the collections being built.
///
/// Each node is appended to its collection in place (the frame on top of the stack is mutated through the array's
/// subscript, never copied out and back), so building a collection of n items costs O(n), not O(n²).
private struct Builder {
    /// A collection being built.
    struct Frame {
        let isMapping: Bool
        let anchor: String?
        let location: SourceLocation
        var elements: [YAMLNode] = []
        var entries: [YAMLNode.Entry] = []
        /// The key of a mapping whose value comes next.
        var key: YAMLNode?
        /// Nodes in the collection, itself included, for bounding alias expansion.
        var weight = 1
    }

    let file: String
    let limits: YAMLLimits
    var documents: [YAMLNode] = []
    var stack: [Frame] = []
    /// Anchored nodes with their size in nodes, for bounding alias expansion.
    var anchors: [String: (node: YAMLNode, weight: Int)] = [:]
    var expanded = 0

    init(file: String, limits: YAMLLimits) {
        self.file = file
        self.limits = limits
    }

    func location(_ mark: yaml_mark_t) -> SourceLocation {
        SourceLocation(file: file, line: Int(mark.line) + 1, column: Int(mark.column) + 1)
    }

    func syntaxError(_ parser: yaml_parser_t) -> ManifestDiagnostic {
        let problem = parser.problem.map { String(cString: $0) } ?? "invalid yaml"
        var message = problem
        if let context = parser.context.map({ String(cString: $0) }) {
            let started = location(parser.context_mark)
            message = "\(context) (line \(started.line), column \(started.column)), \(problem)"
        }
        return ManifestDiagnostic(location(parser.problem_mark), "", "yaml syntax error: \(message)")
    }

    mutating func handle(_ event: yaml_event_t) throws(ManifestDiagnostic) {
        let at = location(event.start_mark)
        switch event.type {
        case YAML_DOCUMENT_START_EVENT:
            anchors = [:]
            expanded = 0
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            let text = Builder.string(scalar.value, length: scalar.length)
            let tag = scalar.tag.map { String(cString: $0) }
            let value = try resolve(text, tag: tag, plain: scalar.style == YAML_PLAIN_SCALAR_STYLE, at: at)
            try add(YAMLNode(kind: .scalar(value), location: at), weight: 1, anchor: Builder.anchor(scalar.anchor))
        case YAML_ALIAS_EVENT:
            let name = Builder.anchor(event.data.alias.anchor) ?? ""
            guard let (node, weight) = anchors[name] else {
                throw ManifestDiagnostic(
                    at, "", "alias *\(name.excerptForError) refers to no anchor defined before it")
            }
            expanded += weight
            guard expanded <= limits.maxAliasExpansion else {
                throw ManifestDiagnostic(
                    at, "", "aliases expand to more than \(limits.maxAliasExpansion) nodes (limit on alias expansion)")
            }
            try add(node, weight: weight, anchor: nil)
        case YAML_SEQUENCE_START_EVENT:
            let start = event.data.sequence_start
            try Builder.checkCollectionTag(start.tag, allowed: "tag:yaml.org,2002:seq", at: at)
            try push(Frame(isMapping: false, anchor: Builder.anchor(start.anchor), location: at))
        case YAML_MAPPING_START_EVENT:
            let start = event.data.mapping_start
            try Builder.checkCollectionTag(start.tag, allowed: "tag:yaml.org,2002:map", at: at)
            try push(Frame(isMapping: true, anchor: Builder.anchor(start.anchor), location: at))
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            let frame = stack.removeLast()
            let kind: YAMLNode.Kind =
                frame.isMapping ? .mapping(try Builder.applyingMergeKeys(frame.entries)) : .sequence(frame.elements)
            try add(YAMLNode(kind: kind, location: frame.location), weight: frame.weight, anchor: frame.anchor)
        default:
            break
        }
    }

    /// Refuses a tag on a sequence or a mapping other than the one its kind already has (`!!python/object:…`
    /// would otherwise be ignored silently, as it would not be on a scalar).
    static func checkCollectionTag(
        _ pointer: UnsafeMutablePointer<yaml_char_t>?, allowed: String, at: SourceLocation
    ) throws(ManifestDiagnostic) {
        guard let tag = pointer.map({ String(cString: $0) }), tag != "!", tag != allowed else { return }
        throw ManifestDiagnostic(at, "", "unsupported tag \(displayed(tag: tag))")
    }

    /// A tag as it is usually written: `!!str` rather than `tag:yaml.org,2002:str`, cut short when long.
    static func displayed(tag: String) -> String {
        let prefix = "tag:yaml.org,2002:"
        let short = tag.hasPrefix(prefix) ? "!!" + tag.dropFirst(prefix.count) : tag
        return short.excerptForError
    }

    mutating func push(_ frame: Frame) throws(ManifestDiagnostic) {
        guard stack.count < limits.maxDepth else {
            throw ManifestDiagnostic(
                frame.location, "", "nesting is deeper than the limit of \(limits.maxDepth) levels")
        }
        stack.append(frame)
    }

    /// Adds a finished node to the collection being built, or makes it a document.
    mutating func add(_ node: YAMLNode, weight: Int, anchor: String?) throws(ManifestDiagnostic) {
        if let anchor { anchors[anchor] = (node, weight) }
        guard !stack.isEmpty else {
            if node.scalar != .null { documents.append(node) }
            return
        }
        let top = stack.count - 1
        stack[top].weight += weight
        guard stack[top].isMapping else {
            stack[top].elements.append(node)
            return
        }
        guard let key = stack[top].key else {
            stack[top].key = node
            return
        }
        guard let name = key.scalar.map(Builder.keyText) else {
            throw ManifestDiagnostic(key.location, "", "mapping keys must be scalars")
        }
        stack[top].key = nil
        stack[top].entries.append(YAMLNode.Entry(key: name, keyLocation: key.location, value: node))
    }

    /// Applies `<<` merge keys: entries of the merged mappings are added unless the mapping has them already;
    /// earlier merged mappings win over later ones.
    static func applyingMergeKeys(_ entries: [YAMLNode.Entry]) throws(ManifestDiagnostic) -> [YAMLNode.Entry] {
        guard entries.contains(where: { $0.key == "<<" }) else { return entries }
        var result = entries.filter { $0.key != "<<" }
        var present = Set(result.map(\.key))
        for merge in entries where merge.key == "<<" {
            let sources = merge.value.elements ?? [merge.value]
            for source in sources {
                guard let merged = source.entries else {
                    throw ManifestDiagnostic(
                        source.location, "",
                        "merge key << expects a mapping or a list of mappings, got \(source.typeDescription)")
                }
                for entry in merged where !present.contains(entry.key) {
                    present.insert(entry.key)
                    result.append(entry)
                }
            }
        }
        return result
    }

    /// Resolves a scalar with the YAML 1.2 core schema; quoted scalars are always strings.
    func resolve(_ text: String, tag: String?, plain: Bool, at: SourceLocation) throws(ManifestDiagnostic) -> Value {
        switch tag {
        case nil, "!":
            break
        case "tag:yaml.org,2002:str":
            return .string(text)
        case "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null":
            let value = try Builder.plainValue(text, at: at)
            let expected = String(tag!.dropFirst("tag:yaml.org,2002:".count))
            let matches =
                switch (expected, value) {
                case ("int", .int), ("float", .int), ("float", .double), ("bool", .bool), ("null", .null): true
                default: false
                }
            guard matches else {
                throw ManifestDiagnostic(at, "", "\(text.quotedForError) is not a valid !!\(expected)")
            }
            return value
        default:
            throw ManifestDiagnostic(at, "", "unsupported tag \(Builder.displayed(tag: tag!))")
        }
        return plain ? try Builder.plainValue(text, at: at) : .string(text)
    }

    static func plainValue(_ text: String, at: SourceLocation) throws(ManifestDiagnostic) -> Value {
        // Most plain scalars are words: only these first characters can start a null, a boolean or a number.
        guard let first = text.utf8.first else { return .null }
        switch first {
        case UInt8(ascii: "~"), UInt8(ascii: "n"), UInt8(ascii: "N"), UInt8(ascii: "t"), UInt8(ascii: "T"),
            UInt8(ascii: "f"), UInt8(ascii: "F"), UInt8(ascii: "."), UInt8(ascii: "+"), UInt8(ascii: "-"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            break
        default: return .string(text)
        }
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN":
            throw ManifestDiagnostic(at, "", "\(text) is not supported: numbers must be finite")
        default: break
        }
        if let int = integer(text) { return .int(int) }
        if text.first.map({ $0.isNumber || $0 == "-" || $0 == "+" || $0 == "." }) == true,
            text.allSatisfy({ $0.isASCII && ($0.isNumber || "+-.eE".contains($0)) }),
            let double = Double(text), let number = Value.number(double)
        {
            return number
        }
        return .string(text)
    }

    static func integer(_ text: String) -> Int? {
        if text.hasPrefix("0x") { return Int(text.dropFirst(2), radix: 16) }
        if text.hasPrefix("0o") { return Int(text.dropFirst(2), radix: 8) }
        let digits = text.first == "-" || text.first == "+" ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(text)
    }

    static func keyText(_ value: Value) -> String {
        switch value {
        case .string(let string): string
        case .null: "null"
        default: value.canonicalJSON
        }
    }

    static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?, length: Int) -> String {
        guard let pointer else { return "" }
        return String(decoding: UnsafeBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    static func anchor(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: $0) }
    }
}
