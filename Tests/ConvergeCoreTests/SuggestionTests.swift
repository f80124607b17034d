import ConvergeCore
import Testing

@Suite struct SuggestionTests {
    static let commands = ["get", "describe", "deploy", "delete", "diff", "destroy", "preview", "version", "login"]
    static let statuses = ["PENDING", "RUNNING", "AWAITING_APPROVAL", "COMPLETED", "FAILED", "ABORTED", "REJECTED"]
    static let kinds = ["deployments", "instances", "projects", "environments", "resources", "bundles", "previews"]

    /// A misspelt word and what it meant: one edit (a letter more, less, changed, or two swapped) on a short word,
    /// up to three on a long one, a cut-short word of four or more characters; case is ignored.
    @Test(arguments: [
        ("gett", "get"), ("destory", "destroy"), ("RUNNNING", "RUNNING"), ("running", "RUNNING"),
        ("deploymnets", "deployments"), ("instnace", "instances"), ("COMPLTED", "COMPLETED"), ("previwe", "preview"),
        ("envir", "environments"), ("lgoin", "login"),
    ])
    func suggests(typed: String, meant: String) {
        #expect(suggestion(for: typed, among: Self.commands + Self.statuses + Self.kinds) == meant)
    }

    /// Nothing close: no suggestion rather than a wild guess.
    @Test(arguments: ["zzzzzz", "xyz", "par", "", "deployments-of-everything", String(repeating: "p", count: 1 << 20)])
    func suggestsNothingFar(typed: String) {
        #expect(suggestion(for: typed, among: Self.commands + Self.statuses + Self.kinds) == nil)
    }

    @Test func didYouMean_endsAMessageOrIsEmpty() {
        #expect(didYouMean("polcy", among: ["policy", "prune"]) == #"; did you mean "policy"?"#)
        #expect(didYouMean("paramsSch", among: ["params", "paramsSchema"]) == #"; did you mean "paramsSchema"?"#)
        #expect(didYouMean("zzzzzz", among: ["policy", "prune"]) == "")
        #expect(
            didYouMean("policyy", among: ["policy", String(repeating: "p", count: 50)]) == #"; did you mean "policy"?"#)
    }

    /// A swap of neighbours is one edit; the rest as Levenshtein counts them.
    @Test(arguments: [
        ("kitten", "sitting", 3), ("", "abc", 3), ("abc", "", 3), ("", "", 0), ("ab", "ba", 1),
        ("destory", "destroy", 1),
        ("ca", "abc", 3), ("same", "same", 0),
    ])
    func editDistance(a: String, b: String, distance: Int) {
        #expect(ConvergeCore.editDistance(a, b) == distance)
        #expect(ConvergeCore.editDistance(b, a) == distance)
    }
}
