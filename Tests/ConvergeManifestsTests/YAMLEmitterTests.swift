import ConvergeCore
import Testing

@testable import ConvergeManifests

@Suite struct YAMLEmitterTests {
    /// What the project's parser reads from `text`: the one document's value, or null when there is none (the
    /// parser skips null documents).
    func readBack(_ text: String) throws -> Value {
        let documents = try YAMLParser().parse(text, file: "emitted.yaml")
        #expect(documents.count <= 1)
        return documents.first?.value ?? .null
    }

    static let trickyStrings: [String] = [
        "", " ", "  ", "plain", "two words", "true", "True", "TRUE", "false", "False", "null", "Null", "NULL", "~",
        "0", "-0", "00", "1", "-1", "+1", "1.0", "1.5", "-2.5", ".5", "5.", "1e3", "1E3", "1e+3", "1_000", "0x1A",
        "0x1a", "0xZZ", "0o17", "017", ".inf", "-.inf", "+.INF", ".nan", ".NaN", "1.2.3", "2024-01-01T00:00:00Z",
        "yes", "no", "on", "off", "y", "n", "Yes", "OFF", " leading", "trailing ", " both ", "a: b", "a:b", "a:",
        "key #not a comment", "#comment", "a#b", "- dash", "-", "-x", "--- doc", "---", "...", "[x]", "{x: 1}", "]",
        "*alias", "&anchor", "!tag", "!!str", "|", ">", "|-", "@at", "`tick", "%percent", "'single'",
        "\"double\"", "it's", "?", "? q", "x?", "a,b", "a, b", "<<", "=", "multi\nline", "multi\nline\n",
        "trailing newlines\n\n", "\n", "\n\n", "\nleading newline", "  indented\nsecond", "second\n  indented",
        "trailing space \nline", "tab\there", "\ttab first", "cr\r\nlf", "cr only\r", "nul\u{0}byte",
        "bell\u{7}", "escape\u{1B}[31m", "ünïcödé ✓ 日本語", "emoji 🚀 👩‍👩‍👧", "\u{FEFF}bom", "line\u{2028}separator",
        "next\u{85}line", "back\\slash", String(repeating: "long words ", count: 40),
        String(repeating: "x", count: 300),
    ]

    @Test(arguments: trickyStrings) func strings_readBackAsTheSameString(_ string: String) throws {
        let text = YAMLEmitter().emit(.string(string))
        #expect(try readBack(text) == .string(string), "emitted: \(text)")
        let nested = YAMLEmitter().emit(["key": .string(string), "list": [.string(string), "after"]])
        #expect(try readBack(nested) == ["key": .string(string), "list": [.string(string), "after"]])
    }

    @Test(arguments: trickyStrings.filter { $0 != "<<" }) func keys_readBackAsTheSameKey(_ key: String) throws {
        // "<<" is left out: the parser takes it as a merge key however it is quoted.
        let value: Value = .object([key: 1, "z": [.object([key: .string(key)])]])
        let text = YAMLEmitter().emit(value)
        #expect(try readBack(text) == value, "emitted: \(text)")
    }

    @Test func numbersBooleansAndNull_readBackAsThemselves() throws {
        let values: [Value] = [
            0, -1, 42, .int(Int.max), .int(Int.min), 1.5, -0.25, 0.1, 1e300, -1e300, 1e-300, 5e-324,
            1.7976931348623157e308, 123456789.123, 9.3e18, true, false,
        ]
        for value in values {
            let text = YAMLEmitter().emit(["v": value])
            #expect(try readBack(text) == ["v": value], "emitted: \(text)")
        }
        #expect(try readBack(YAMLEmitter().emit(nil)) == nil)
        #expect(try readBack(YAMLEmitter().emit(["v": nil])) == ["v": nil])
    }

    @Test func nestedCollections_readBackAsThemselves() throws {
        let value: Value = [
            "empty object": [:], "empty list": [], "list of lists": [[1, 2], [], [[nil]]],
            "objects in a list": [["a": 1, "b": ["c": "d"]], [:], ["x": []]],
            "deep": ["a": ["b": ["c": ["d": ["e": "f"]]]]], "mixed": [1, "1", 1.5, true, "true", nil, "null"],
        ]
        #expect(try readBack(YAMLEmitter().emit(value)) == value)
        #expect(try readBack(YAMLEmitter().emit([])) == [])
        #expect(try readBack(YAMLEmitter().emit([:])) == [:])
        #expect(try readBack(YAMLEmitter().emit([[:], []])) == [[:], []])
    }

    @Test func smallNestedExample_hasTheExpectedText() {
        let value: Value = [
            "name": "web", "replicas": 3, "enabled": true, "ratio": 0.5, "tags": ["a", "true"],
            "env": ["B": "2", "A": ""], "empty": [:], "none": [], "note": "line1\nline2\n", "nothing": nil,
            "servers": [["host": "a.example", "port": 80]],
        ]
        #expect(
            YAMLEmitter().emit(value) == """
                empty: {}
                enabled: true
                env:
                  A: ''
                  B: '2'
                name: web
                none: []
                note: |
                  line1
                  line2
                nothing: null
                ratio: 0.5
                replicas: 3
                servers:
                - host: a.example
                  port: 80
                tags:
                - a
                - 'true'

                """)
    }

    @Test func quoting_isLeftOutWhenPlainTextReadsBackTheSame() {
        #expect(
            YAMLEmitter().emit(["a": "nginx:1.27", "b": "1.2.3", "c": "no-op", "d": "ünï"]) == """
                a: nginx:1.27
                b: 1.2.3
                c: no-op
                d: ünï

                """)
        #expect(
            YAMLEmitter().emit(["a": "1.0", "b": "0x1A", "c": "null", "d": "yes", "e": " x"]) == """
                a: '1.0'
                b: '0x1A'
                c: 'null'
                d: 'yes'
                e: ' x'

                """)
    }

    @Test func keys_areSortedByTheirBytes() {
        #expect(YAMLEmitter().emit(["b": 1, "B": 2, "a": 3, "é": 4, "A": 5]) == "A: 5\nB: 2\na: 3\nb: 1\né: 4\n")
    }

    @Test func doubles_alwaysHaveAFraction() {
        #expect(YAMLEmitter.text(of: 1e300) == "1.0e+300")
        #expect(YAMLEmitter.text(of: 0.5) == "0.5")
        #expect(YAMLEmitter.text(of: 5e-324) == "5.0e-324")
    }

    @Test func longLines_areNotFolded() {
        let long = String(repeating: "word ", count: 40) + "end"
        #expect(YAMLEmitter().emit(["k": .string(long)]) == "k: \(long)\n")
    }
}
