import ConvergeCore
import Foundation
import Testing

@Suite struct ValueTests {
    @Test func canonicalJSON_sortsKeysAndHasNoWhitespace() {
        let value: Value = ["b": 1, "a": ["z": true, "y": nil], "c": [1, "x"]]
        #expect(value.canonicalJSON == #"{"a":{"y":null,"z":true},"b":1,"c":[1,"x"]}"#)
    }

    @Test func canonicalJSON_hasOneNumberForm() {
        #expect(Value.number(20.0) == .int(20))
        #expect(Value.number(20.0)!.canonicalJSON == "20")
        #expect(Value.number(0.5)!.canonicalJSON == "0.5")
        #expect(Value.double(1e300).canonicalJSON == "1e+300")
        #expect(Value.number(.infinity) == nil)
        #expect(Value.number(.nan) == nil)
    }

    @Test func canonicalJSON_escapesControlCharacters() {
        #expect(Value.string("a\"b\\c\n\u{01}é").canonicalJSON == #""a\"b\\c\n\u0001é""#)
    }

    @Test func canonicalHash_isSHA256OfTheCanonicalBytes() {
        #expect(Value.object([:]).canonicalHash == "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")
        let a: Value = ["x": 1, "y": 2.0]
        let b: Value = ["y": 2, "x": 1]
        #expect(a.canonicalHash == b.canonicalHash)
    }

    @Test func json_roundTripsThroughCodable() throws {
        let value: Value = ["s": "text", "i": -3, "d": 1.25, "b": false, "n": nil, "a": [[:], []]]
        #expect(try Value(json: value.canonicalJSON) == value)
        #expect(try Value(json: value.prettyJSON) == value)
        #expect(throws: ConvergeError.self) { try Value(json: "{") }
    }

    @Test func merge_mergesObjectsReplacesListsAndScalarsAndNullDeletes() {
        let base: Value = ["a": ["x": 1, "y": 2], "list": [1, 2, 3], "keep": "k", "gone": 1]
        let overlay: Value = ["a": ["y": 3, "z": ["deep": nil, "kept": 1]], "list": [9], "gone": nil]
        #expect(
            base.merged(with: overlay) == ["a": ["x": 1, "y": 3, "z": ["kept": 1]], "list": [9], "keep": "k"])
        #expect(Value.string("scalar").merged(with: ["a": 1]) == ["a": 1])
        #expect(base.merged(with: [:]) == base)
    }

    @Test func changes_areLeafLevelAndSorted() {
        let before: Value = ["params": ["size": 20, "tags": ["a", "b"]], "version": "1.0"]
        let after: Value = ["params": ["size": 30, "tags": ["a"], "new": true], "version": "1.0"]
        #expect(
            before.changes(to: after) == [
                ValueChange(path: "params.new", before: nil, after: true),
                ValueChange(path: "params.size", before: 20, after: 30),
                ValueChange(path: "params.tags[1]", before: "b", after: nil),
            ])
        #expect(before.changes(to: before).isEmpty)
        #expect(Value.int(1).changes(to: "1") == [ValueChange(path: "", before: 1, after: "1")])
    }
}
