import ConvergeCore
import Foundation
import Testing

@Suite struct LabelSelectorTests {
    @Test(
        arguments: [
            ("", []),
            ("  ", []),
            ("tier=data", [.equals("tier", "data")]),
            ("tier==data", [.equals("tier", "data")]),
            ("tier!=data", [.notEquals("tier", "data")]),
            ("critical", [.exists("critical")]),
            ("!legacy", [.notExists("legacy")]),
            ("tier=", [.equals("tier", "")]),
            (
                "tier=data, env != prod ,critical,! legacy",
                [.equals("tier", "data"), .notEquals("env", "prod"), .exists("critical"), .notExists("legacy")]
            ),
            ("app.kubernetes.io/name=shop_1", [.equals("app.kubernetes.io/name", "shop_1")]),
            ("a=b,a=c", [.equals("a", "b"), .equals("a", "c")]),
        ] as [(String, [LabelSelector.Requirement])])
    func parses(text: String, requirements: [LabelSelector.Requirement]) throws {
        #expect(try LabelSelector(parsing: text) == LabelSelector(requirements))
    }

    @Test(arguments: [
        (",", "position 1: expected a label key, got \",\""),
        ("tier=data,", "position 11: expected a label key, got the end"),
        ("tier=data,,x", "position 11: expected a label key, got \",\""),
        ("=data", "position 1: expected a label key, got \"=\""),
        ("tier!data", "position 6: expected \"=\" after \"!\", got \"d\""),
        ("tier=da ta", "position 9: expected \",\" or the end, got \"t\""),
        ("tier=a=b", "position 7: expected \",\" or the end, got \"=\""),
        ("tier in (a)", "position 6: expected \"=\", \"==\", \"!=\", \",\" or the end, got \"i\""),
        ("!tier=data", "position 6: expected \",\" or the end, got \"=\""),
        ("ti$r", "position 3: expected \"=\", \"==\", \"!=\", \",\" or the end, got \"$\""),
        ("tier=dätä", "position 7: expected \",\" or the end, got \"ä\""),
    ])
    func refusesMalformed_sayingWhereAndWhat(text: String, message: String) {
        #expect(throws: ConvergeError(.invalidArgument, message, details: ["position": .int(positionIn(message))])) {
            try LabelSelector(parsing: text)
        }
    }

    private func positionIn(_ message: String) -> Int {
        Int(message.dropFirst("position ".count).prefix { $0.isNumber })!
    }

    @Test(
        arguments: [
            ("tier=data", ["tier": "data"], true),
            ("tier=data", ["tier": "web"], false),
            ("tier=data", [:], false),
            ("tier!=data", ["tier": "web"], true),
            ("tier!=data", [:], true),
            ("tier!=data", ["tier": "data"], false),
            ("tier", ["tier": ""], true),
            ("tier", ["other": "x"], false),
            ("!tier", [:], true),
            ("!tier", ["tier": "data"], false),
            ("tier=data,!legacy", ["tier": "data", "legacy": "yes"], false),
            ("tier=data,!legacy", ["tier": "data"], true),
            ("a=b,a=c", ["a": "b"], false),
            ("", ["any": "thing"], true),
        ] as [(String, [String: String], Bool)])
    func matches(text: String, labels: [String: String], selected: Bool) throws {
        #expect(try LabelSelector(parsing: text).matches(labels) == selected)
    }

    @Test(arguments: ["tier=data", "a=b,a=c,x!=y,e,!n", ""])
    func codable_roundTripsAndKeepsMatchLabelsForm(text: String) throws {
        let selector = try LabelSelector(parsing: text)
        let data = try JSONEncoder().encode(selector)
        #expect(try JSONDecoder().decode(LabelSelector.self, from: data) == selector)
        #expect(selector.description == text)
    }

    @Test func matchLabels_encodeAsBefore() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let data = try encoder.encode(LabelSelector(matchLabels: ["tier": "data", "a": "b"]))
        #expect(String(decoding: data, as: UTF8.self) == #"{"matchLabels":{"a":"b","tier":"data"}}"#)
    }
}
