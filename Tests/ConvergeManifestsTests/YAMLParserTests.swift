import ConvergeCore
import Testing

@testable import ConvergeManifests

@Suite struct YAMLParserTests {
    func parse(_ text: String, limits: YAMLLimits = YAMLLimits()) throws -> [YAMLNode] {
        try YAMLParser(limits: limits).parse(text, file: "f.yaml")
    }

    func error(_ text: String, limits: YAMLLimits = YAMLLimits()) -> String? {
        do {
            _ = try parse(text, limits: limits)
            return nil
        } catch {
            return (error as? ManifestDiagnostic)?.description ?? "\(error)"
        }
    }

    @Test func nodes_knowWhereTheyWereWritten() throws {
        let document = try #require(try parse("a: 1\nb:\n  - x\n  - {c: d}\n").first)
        #expect(document.location == SourceLocation(file: "f.yaml", line: 1, column: 1))
        #expect(document["a"]?.location == SourceLocation(file: "f.yaml", line: 1, column: 4))
        let list = try #require(document["b"]?.elements)
        #expect(list[1]["c"]?.location == SourceLocation(file: "f.yaml", line: 4, column: 9))
        #expect(document.entries?.map(\.keyLocation.line) == [1, 2])
    }

    @Test func scalars_resolveWithTheCoreSchema() throws {
        let document = try #require(
            try parse(
                """
                int: 42
                negative: -7
                hex: 0x1F
                float: 1.5
                whole: 2.0
                yes: yes
                bool: true
                null1: ~
                null2:
                quoted: "42"
                single: 'true'
                tagged: !!str 12
                version: 1.4.2
                """
            ).first)
        #expect(
            document.value == [
                "int": 42, "negative": -7, "hex": 31, "float": 1.5, "whole": 2, "yes": "yes", "bool": true,
                "null1": nil, "null2": nil, "quoted": "42", "single": "true", "tagged": "12", "version": "1.4.2",
            ])
    }

    @Test func documents_areSplitAndEmptyOnesSkipped() throws {
        #expect(try parse("---\na: 1\n---\n---\nb: 2\n...\n").count == 2)
        #expect(try parse("").isEmpty)
        #expect(try parse("# only a comment\n").isEmpty)
    }

    @Test func mergeKeys_addMissingKeysAndExplicitKeysWin() throws {
        let document = try #require(
            try parse(
                """
                base: &base {size: 1, tier: small}
                extra: &extra {zone: a, size: 9}
                one:
                  <<: *base
                  size: 2
                both:
                  <<: [*base, *extra]
                """
            ).first)
        #expect(document["one"]?.value == ["size": 2, "tier": "small"])
        #expect(document["both"]?.value == ["size": 1, "tier": "small", "zone": "a"])
        #expect(error("a: {<<: 1}") == "f.yaml:1:9: merge key << expects a mapping or a list of mappings, got integer")
    }

    @Test func aliases_expandWithinTheLimit() throws {
        let document = try #require(try parse("a: &x [1, 2]\nb: *x\n").first)
        #expect(document["b"]?.value == [1, 2])
        // Each alias of [1, 2] pulls in three nodes: the sequence and its two elements.
        #expect(error("a: &x [1, 2]\nb: [*x, *x]\n", limits: YAMLLimits(maxAliasExpansion: 6)) == nil)
        #expect(
            error("a: &x [1, 2]\nb: [*x, *x]\n", limits: YAMLLimits(maxAliasExpansion: 5))
                == "f.yaml:2:9: aliases expand to more than 5 nodes (limit on alias expansion)")
        #expect(error("a: *nope\n") == "f.yaml:1:4: alias *nope refers to no anchor defined before it")
    }

    @Test func refusals_areLocated() {
        #expect(
            error("a: [\n")
                == "f.yaml:2:1: yaml syntax error: while parsing a flow node (line 2, column 1), did not find expected node content"
        )
        #expect(error("a: .inf\n") == "f.yaml:1:4: .inf is not supported: numbers must be finite")
        #expect(error("a: !custom x\n") == "f.yaml:1:4: unsupported tag !custom")
        #expect(error("a: !!int x\n") == #"f.yaml:1:4: "x" is not a valid !!int"#)
        #expect(error("? [a]\n: b\n") == "f.yaml:1:3: mapping keys must be scalars")
        #expect(
            error("a: [[[1]]]\n", limits: YAMLLimits(maxDepth: 3))
                == "f.yaml:1:6: nesting is deeper than the limit of 3 levels")
    }

    // Issue 6: building a collection copied it on every append, so parsing was quadratic in the size of one
    // collection (50,000 items took 20 s). These sizes would take minutes in a debug build if it came back; the
    // speed itself is measured by `make bench`, not asserted here.
    @Test(arguments: [2_000, 40_000])
    func largeCollections_parseWholeAndInOrder(count: Int) throws {
        let sequence = "items:\n" + (0..<count).map { "  - item\($0)\n" }.joined()
        let items = try #require(try parse(sequence).first?["items"]?.elements)
        #expect(items.count == count)
        #expect(items.first?.string == "item0")
        #expect(items.last?.string == "item\(count - 1)")
        #expect(items.last?.location.line == count + 1)

        let mapping = (0..<count).map { "key\($0): \($0)\n" }.joined()
        let document = try #require(try parse(mapping).first)
        let entries = try #require(document.entries)
        #expect(entries.count == count)
        #expect(entries.map(\.key) == (0..<count).map { "key\($0)" })
        #expect(document.value.objectValue?.count == count)
        #expect(document.value["key\(count - 1)"] == .int(count - 1))

        let flow = "[" + (0..<count).map { "{n: \($0)}" }.joined(separator: ", ") + "]"
        let nested = try #require(try parse(flow).first?.value.arrayValue)
        #expect(nested.count == count)
        #expect(nested.last == ["n": .int(count - 1)])
    }

    @Test(arguments: ["{a: 1}", "[1]"])
    func tagOnACollection_isRefusedLikeOnAScalar(collection: String) {
        #expect(
            error("params: !!python/object/apply:os.system \(collection)\n")
                == "f.yaml:1:9: unsupported tag !!python/object/apply:os.system")
        #expect(error("params: !custom \(collection)\n") == "f.yaml:1:9: unsupported tag !custom")
        #expect(error("a: !!python/name:os.system x\n") == "f.yaml:1:4: unsupported tag !!python/name:os.system")
    }

    @Test func collectionTags_ofTheirOwnKind_areAccepted() throws {
        let document = try #require(try parse("a: !!map {b: 1}\nc: !!seq [1]\nd: ! {e: f}\n").first)
        #expect(document.value == ["a": ["b": 1], "c": [1], "d": ["e": "f"]])
        #expect(error("a: !!seq {b: 1}\n") == "f.yaml:1:4: unsupported tag !!seq")
        #expect(error("a: !!map [1]\n") == "f.yaml:1:4: unsupported tag !!map")
    }

    @Test func longTagsAndValues_areQuotedCutShort() {
        let long = String(repeating: "x", count: 100_000)
        let quoted = "\"" + String(repeating: "x", count: 60) + "…(100000 bytes)\""
        #expect(error("a: !!int \(long)\n") == "f.yaml:1:4: \(quoted) is not a valid !!int")
        #expect(
            error("a: !\(long) {}\n") == "f.yaml:1:4: unsupported tag !" + String(repeating: "x", count: 59)
                + "…(100001 bytes)")
    }

    @Test func quotedForError_keepsShortTextAndCutsLongTextOnce() {
        #expect("storage_gb".quotedForError == "\"storage_gb\"")
        let sixty = String(repeating: "é", count: 60)
        #expect(sixty.quotedForError == "\"\(sixty)\"")
        #expect(!sixty.isTooLongToQuote)
        let long = sixty + "z"
        #expect(long.isTooLongToQuote)
        #expect(long.quotedForError == "\"\(sixty)…(\(long.utf8.count) bytes)\"")
    }
}
