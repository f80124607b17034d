import ConvergeCore
import Testing

/// The forms of an output marked sensitive, and how they are shown.
@Suite struct SensitiveValueTests {
    @Test func markedAndSealedValues_areShownByName_atAnyDepth_andNothingElseIs() {
        let outputs: Value = [
            "db": [
                "host": "db.internal", "password": ["value": "hunter2", "sensitive": true],
                "keys": [["$sealed": "AAAA"], "plain"],
            ],
            // Neither form: more members, `sensitive` not true, a `$sealed` that is not a string.
            "near": [
                ["value": "v", "sensitive": true, "other": 1], ["value": "v", "sensitive": "yes"], ["$sealed": 1],
            ],
            "empty": [:], "none": nil,
        ]
        #expect(
            outputs.showingSensitiveByName == [
                "db": ["host": "db.internal", "password": "[sensitive]", "keys": ["[sensitive]", "plain"]],
                "near": [
                    ["value": "v", "sensitive": true, "other": 1], ["value": "v", "sensitive": "yes"], ["$sealed": 1],
                ],
                "empty": [:], "none": nil,
            ])
        #expect(SensitiveValue.marked(in: ["value": ["a": 1], "sensitive": true]) == ["a": 1])
        #expect(SensitiveValue.sealedText(of: SensitiveValue.sealed("QUJD")) == "QUJD")
    }

    @Test func anExecLine_showsItsSensitiveValuesByName_andOtherLinesAsTheyAre() {
        let line =
            #"{"outputs": {"out": {"password": {"value": "hunter2", "sensitive": true}}}, "status": "completed"}"#
        #expect(
            SensitiveValue.showingByName(inLine: line)
                == #"{"outputs":{"out":{"password":"[sensitive]"}},"status":"completed"}"#)
        for unchanged in ["applying", #"{"sensitive": false, "value": 1}"#, #"not "sensitive" JSON"#, "[1, 2]"] {
            #expect(SensitiveValue.showingByName(inLine: unchanged) == unchanged)
        }
    }
}
