import Foundation
import Testing

@testable import ConvergeCore

@Suite struct JSONParserTests {
    @Test func parse_readsEveryKindOfValue_inCanonicalNumberForm() throws {
        let text =
            #" { "s": "a\"b\\c\/d\n\t\u00e9\ud83d\ude00", "i": -42, "d": 1.5, "e": 1e2, "z": 2.0, "#
            + #""big": 123456789012345678901234, "t": true, "f": false, "n": null, "a": [ [], {}, [1, "x"] ] } "#
        let value = try Value(json: text)
        #expect(
            value == [
                "s": "a\"b\\c/d\n\té😀", "i": -42, "d": 1.5, "e": 100, "z": 2, "big": .double(1.2345678901234568e23),
                "t": true, "f": false, "n": nil, "a": [[], [:], [1, "x"]],
            ])
    }

    @Test func parse_roundTripsTheCanonicalEncoding() throws {
        let value: Value = [
            "text": "quote \" backslash \\ control \u{01} unicode ü", "list": [1, -2.5, true, nil, ["k": "v"]],
            "empty": [:],
        ]
        #expect(try Value(json: value.canonicalJSON) == value)
        #expect(try Value(json: value.prettyJSON) == value)
    }

    @Test func parse_refusesMalformedText_namingTheByte() {
        let cases = [
            "{", "[1,]", "{\"a\" 1}", "01", "1.", "1e", "\"abc", "\"\\x\"", "\"\\ud800\"", "tru", "{} x", "\"a\u{01}\"",
            "-", "[1 2]", "{\"a\":1,}",
        ]
        for text in cases {
            #expect(throws: ConvergeError.self, "\(text)") { try Value(json: text) }
        }
        do {
            _ = try Value(json: "[1, 2, x]")
            Issue.record("parsed invalid json")
        } catch let error as ConvergeError {
            #expect(error.code == .invalidArgument)
            #expect(error.message == "invalid json at byte 7: unexpected character")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func parse_refusesNestingBeyondTheLimit() throws {
        let deep =
            String(repeating: "[", count: JSONParser.maxDepth + 1)
            + String(repeating: "]", count: JSONParser.maxDepth + 1)
        #expect(throws: ConvergeError.self) { try Value(json: deep) }
        let allowed =
            String(repeating: "[", count: JSONParser.maxDepth) + String(repeating: "]", count: JSONParser.maxDepth)
        #expect(try Value(json: allowed) != .null)
    }

    @Test func hexString_isLowerCaseTwoDigitsPerByte() {
        #expect([0x00, 0x0f, 0xa5, 0xff].hexString == "000fa5ff")
    }
}
