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

    @Test func didYouMean_suggestsOnlyCloseNames() {
        #expect(didYouMean("polcy", among: ["policy", "prune"]) == #"; did you mean "policy"?"#)
        #expect(didYouMean("zzzzzz", among: ["policy", "prune"]) == "")
        #expect(didYouMean("paramsSch", among: ["params", "paramsSchema"]) == #"; did you mean "paramsSchema"?"#)
        #expect(didYouMean("par", among: ["paramsSchema"]) == "")
        #expect(editDistance("kitten", "sitting") == 3)
        #expect(editDistance("", "abc") == 3)
    }
}
