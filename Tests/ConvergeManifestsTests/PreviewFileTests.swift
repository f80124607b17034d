import ConvergeCore
import Foundation
import Testing

@testable import ConvergeManifests

@Suite struct PreviewFileTests {
    @Test func examplePreview_readsTheKeysOtherPlatformsWrite() throws {
        let url = Paths.repository.appendingPathComponent("examples/preview.yaml")
        let preview = try PreviewFile.load(
            try String(contentsOf: url, encoding: .utf8), file: "preview.yaml",
            environment: ["PR_NUMBER": "123", "GIT_SHA": "f00d"])
        #expect(preview.project == "ecomm")
        #expect(preview.baseEnvironment == "staging")
        #expect(preview.copyEnvironmentDefaults)
        #expect(!preview.copySecrets)
        #expect(preview.ttlSeconds == 72 * 3600)
        #expect(preview.attributes == ["pullRequest": "123", "commit": "f00d"])
        #expect(
            preview.environmentDefaults == [Preview.Default(resourceType: "aws-vpc", resourceId: "ecomm-sharedvpc")])
        #expect(preview.instances["app"]?.params?["image"] == "registry.example.com/shop:f00d")
        #expect(preview.instances["app"]?.version == "2.3.0")
        #expect(preview.instances["db"]?.params == ["storage_gb": 20])
    }

    @Test func kindPreviewDocument_isAcceptedToo() throws {
        let preview = try PreviewFile.load(
            """
            apiVersion: converge/v1
            kind: Preview
            metadata: {name: pr7, project: ecomm}
            spec: {baseEnvironment: staging, ttl: 30m}
            """, file: "p.yaml", environment: [:])
        #expect(preview.name == "pr7")
        #expect(preview.ttlSeconds == 1800)
        #expect(preview.copyEnvironmentDefaults)
    }

    @Test func badPreview_reportsEveryLocatedError() {
        do {
            _ = try PreviewFile.load("project: ecomm\nttl: soon\ninstance: {}\n", file: "p.yaml", environment: [:])
            Issue.record("a bad preview loaded")
        } catch {
            #expect(
                error.diagnostics.map(\.description) == [
                    #"p.yaml:1:1: baseEnvironment: missing required field "baseEnvironment""#,
                    #"p.yaml:2:6: ttl: expected a duration such as 30m, 72h or 7d, got "soon""#,
                    #"p.yaml:3:1: instance: unknown field "instance"; did you mean "instances"?"#,
                ])
        }
    }

    // MARK: Variables (DESIGN §6: expanded inside parsed scalar values only, never in the raw text)

    /// Loads `text` and returns its diagnostics, recording an issue if it loaded.
    private func diagnostics(_ text: String, environment: [String: String], limits: YAMLLimits = YAMLLimits())
        -> [String]
    {
        do {
            _ = try PreviewFile.load(text, file: "p.yaml", environment: environment, limits: limits)
            Issue.record("the preview loaded")
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    @Test func expandVariables_bracedBareDefaultAndEscape() {
        let environment = ["PR": "42", "SHA": "abc123", "EMPTY": ""]
        func expand(_ text: String) -> (String, [String]) {
            let result = PreviewFile.expandVariables(in: text, environment: environment)
            return (result.value, result.problems)
        }
        #expect(expand("pr-${PR}/$SHA/x$EMPTY.") == ("pr-42/abc123/x.", []))
        #expect(expand("${MISSING:-main}-${EMPTY:-dflt}-${PR:-no}-${MISSING:-}") == ("main-dflt-42-", []))
        #expect(
            expand("cost $$5, $$PR, $$$PR, $5, $ alone, trailing $") == (
                "cost $5, $PR, $42, $5, $ alone, trailing $", []
            ))
        #expect(expand("no dollar") == ("no dollar", []))
    }

    @Test func expandVariables_insertsAValueAsItIsWithoutExpandingItAgain() {
        let result = PreviewFile.expandVariables(in: "${A}", environment: ["A": "$B ${C}", "B": "b", "C": "c"])
        #expect(result.value == "$B ${C}")
        #expect(result.problems.isEmpty)
    }

    @Test func expandVariables_reportsUndefinedOnceEachAndMalformedReferences() {
        let result = PreviewFile.expandVariables(in: "$NOPE-${NOPE}-${OTHER}-${bad-${A:-x", environment: ["A": "a"])
        #expect(
            result.problems == [
                "undefined variable NOPE (set it, or write ${NOPE:-default})",
                "undefined variable OTHER (set it, or write ${OTHER:-default})",
                #"malformed variable reference "${bad-${A:-x" (write ${NAME}, ${NAME:-default}, or $$ for a literal $)"#,
            ])
        #expect(
            PreviewFile.expandVariables(in: "${1X} ${} ${A-b}", environment: ["A": "a"]).problems.count == 3)
        let afterMalformed = PreviewFile.expandVariables(in: "${a b}-$A", environment: ["A": "a"])
        #expect(afterMalformed.value == "${a b}-a")
        #expect(afterMalformed.problems.count == 1)
    }

    /// Regression: the raw text was expanded before parsing, so a variable holding a newline and `key: value`
    /// (a branch name from a fork's pull request) added or changed keys.
    @Test(arguments: ["main\nproject: evil", "x\"\n  evil: 1", "x'\n  evil: 1", "a: b\nbaseEnvironment: prod"])
    func injectedNewlineInAVariable_staysInsideItsScalar(branch: String) throws {
        let preview = try PreviewFile.load(
            """
            project: ecomm
            baseEnvironment: staging
            attributes:
              branch: "${BRANCH}"
              plain: $BRANCH
            instances:
              app:
                params: {image: "shop:${BRANCH}"}
            """, file: "p.yaml", environment: ["BRANCH": branch])
        #expect(preview.project == "ecomm")
        #expect(preview.baseEnvironment == "staging")
        #expect(preview.attributes == ["branch": .string(branch), "plain": .string(branch)])
        #expect(preview.instances.keys.sorted() == ["app"])
        #expect(preview.instances["app"]?.params == ["image": .string("shop:" + branch)])
    }

    @Test func injectedNewlineInAVariable_staysInsideItsScalarInAKindPreviewDocument() throws {
        let branch = "main\n  evil: 1\nspec: {baseEnvironment: prod}"
        let preview = try PreviewFile.load(
            """
            apiVersion: converge/v1
            kind: Preview
            metadata: {name: pr7, project: ecomm}
            spec:
              baseEnvironment: staging
              attributes: {branch: "${BRANCH}"}
            """, file: "p.yaml", environment: ["BRANCH": branch])
        #expect(preview.baseEnvironment == "staging")
        #expect(preview.attributes == ["branch": .string(branch)])
    }

    @Test func injectedValueInAnIdentifierField_failsTheShapeCheckAtItsScalar() {
        let found = diagnostics(
            """
            project: ecomm
            baseEnvironment: ${BRANCH}
            environmentDefaults:
              - {resourceType: aws-vpc, resourceId: "$BRANCH"}
            """, environment: ["BRANCH": "main\nproject: evil"])
        #expect(found.count == 2)
        #expect(found.first?.hasPrefix("p.yaml:2:18: baseEnvironment: invalid character") == true)
        #expect(found.last?.hasPrefix("p.yaml:4:41: environmentDefaults[0].resourceId: ") == true)
        // The quoted value cannot forge a line of its own in a terminal or a CI log.
        #expect(found.allSatisfy { !$0.contains("\n") && $0.contains(#"main\nproject: evil"#) })

        let kind = diagnostics(
            """
            apiVersion: converge/v1
            kind: Preview
            metadata: {name: "${BRANCH}", project: ecomm}
            spec: {baseEnvironment: staging}
            """, environment: ["BRANCH": "pr7\nproject: evil"])
        #expect(kind.count == 1)
        #expect(kind.first?.hasPrefix("p.yaml:3:18: metadata.name: ") == true)
    }

    @Test func undefinedVariables_areAllReportedAtTheirScalars() {
        let found = diagnostics(
            """
            project: ecomm
            baseEnvironment: ${BASE}
            attributes:
              pr: "pr-$PR_NUMBER"
              commit: ${GIT_SHA:-unknown}
            instances:
              app:
                params: {tags: [a, "${TAG}"]}
            """, environment: [:])
        #expect(
            found == [
                "p.yaml:2:18: baseEnvironment: undefined variable BASE (set it, or write ${BASE:-default})",
                "p.yaml:4:7: attributes.pr: undefined variable PR_NUMBER (set it, or write ${PR_NUMBER:-default})",
                "p.yaml:8:24: instances.app.params.tags[1]: undefined variable TAG (set it, or write ${TAG:-default})",
            ])
    }

    @Test func undefinedVariable_inAKindPreviewDocument_isLocatedToo() {
        let found = diagnostics(
            """
            apiVersion: converge/v1
            kind: Preview
            metadata: {name: pr7, project: ecomm}
            spec: {baseEnvironment: $BASE, ttl: "${TTL}"}
            """, environment: [:])
        #expect(
            found == [
                "p.yaml:4:25: spec.baseEnvironment: undefined variable BASE (set it, or write ${BASE:-default})",
                "p.yaml:4:37: spec.ttl: undefined variable TTL (set it, or write ${TTL:-default})",
            ])
    }

    @Test func defaultsAndEscapes_applyInBothForms() throws {
        let plain = try PreviewFile.load(
            """
            project: ${PROJECT:-ecomm}
            baseEnvironment: ${BASE:-staging}
            attributes: {price: "$$5", pr: "${PR:-none}"}
            """, file: "p.yaml", environment: ["BASE": ""])
        #expect(plain.project == "ecomm")
        #expect(plain.baseEnvironment == "staging")
        #expect(plain.attributes == ["price": "$5", "pr": "none"])

        let kind = try PreviewFile.load(
            """
            apiVersion: converge/v1
            kind: Preview
            metadata: {name: "${NAME:-pr7}", project: ecomm}
            spec: {baseEnvironment: "${BASE:-staging}", ttl: "${TTL:-30m}"}
            """, file: "p.yaml", environment: ["BASE": ""])
        #expect(kind.name == "pr7")
        #expect(kind.baseEnvironment == "staging")
        #expect(kind.ttlSeconds == 1800)
    }

    @Test func variablesInKeys_areNotExpanded() throws {
        let preview = try PreviewFile.load(
            """
            project: ecomm
            baseEnvironment: staging
            attributes: {"${KEY}": value, $KEY: other}
            """, file: "p.yaml", environment: ["KEY": "project"])
        #expect(preview.attributes == ["${KEY}": "value", "$KEY": "other"])
        #expect(preview.project == "ecomm")
        #expect(
            diagnostics("$KEY: ecomm\nbaseEnvironment: staging\n", environment: ["KEY": "project"]).contains {
                $0.hasPrefix(#"p.yaml:1:1: $KEY: unknown field "$KEY""#)
            })
    }

    @Test func nonStringScalars_areLeftAsTheyParsed() throws {
        let preview = try PreviewFile.load(
            """
            project: ecomm
            baseEnvironment: staging
            copySecrets: true
            instances:
              db: {params: {storage_gb: 20, size: "${SIZE}", none: null}}
            """, file: "p.yaml", environment: ["SIZE": "40"])
        #expect(preview.copySecrets)
        #expect(preview.instances["db"]?.params == ["storage_gb": 20, "size": "40", "none": nil])
    }

    @Test func expandedValues_areBoundedByTheFileLimit() {
        let text = "project: ecomm\nbaseEnvironment: staging\nattributes: {a: $BIG, b: $BIG}\n"
        let found = diagnostics(
            text, environment: ["BIG": String(repeating: "x", count: 60)],
            limits: YAMLLimits(maxFileBytes: 100))
        #expect(found == ["p.yaml:3:26: attributes.b: expanded values are more than the limit of 100 bytes"])
    }

    @Test func malformedReference_isALocatedError() {
        let found = diagnostics("project: ecomm\nbaseEnvironment: \"${BASE\"\n", environment: ["BASE": "staging"])
        #expect(
            found == [
                #"p.yaml:2:18: baseEnvironment: malformed variable reference "${BASE" (write ${NAME}, ${NAME:-default}, or $$ for a literal $)"#
            ])
    }
}
