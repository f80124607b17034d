import ConvergeCore
import Testing

@testable import ConvergeManifests

/// An environment's `spec.driftCheck: {every: DURATION}`: decoded to seconds, refused with located errors.
@Suite struct EnvironmentDriftTests {
    func load(driftCheck: String) throws(ManifestErrors) -> DesiredState {
        try loadEnvironment(spec: "driftCheck", driftCheck)
    }

    func errors(driftCheck: String) -> [String] {
        environmentErrors(spec: "driftCheck", driftCheck)
    }

    @Test(arguments: [("6h", 21_600.0), ("1s", 1), ("1000ms", 1), ("30m", 1800), ("8760h", 31_536_000)])
    func driftCheck_isDecodedToSeconds(every: String, seconds: Double) throws {
        let state = try load(driftCheck: "    every: \(every)\n")
        #expect(state.environments["shop-prod"]?.driftCheck == DriftCheck(every: seconds))
    }

    @Test func absentDriftCheck_meansNoDriftCheck() throws {
        let state = try ManifestLoader().load(files: Paths.files("base"))
        #expect(state.environments["shop-dev"]?.driftCheck == nil)
    }

    @Test func badDriftCheck_isRefusedWithLocatedErrors() {
        #expect(
            errors(driftCheck: "    every: soon\n") == [
                #"envs/prod.yaml:9:12: spec.driftCheck.every: expected a duration like 30s, 5m or 1h, got "soon""#
            ])
        #expect(
            errors(driftCheck: "    every: 6h\n    jitter: 5m\n") == [
                #"envs/prod.yaml:10:5: spec.driftCheck.jitter: unknown field "jitter""#
            ])
        #expect(
            errors(driftCheck: "    evry: 6h\n") == [
                #"envs/prod.yaml:9:5: spec.driftCheck.every: missing required field "every""#,
                #"envs/prod.yaml:9:5: spec.driftCheck.evry: unknown field "evry"; did you mean "every"?"#,
            ])
        #expect(
            errors(driftCheck: "    every: 500ms\n") == [
                #"envs/prod.yaml:9:12: spec.driftCheck.every: must be at least 1s, got "500ms""#
            ])
        #expect(
            errors(driftCheck: "    every: 8761h\n") == [
                #"envs/prod.yaml:9:12: spec.driftCheck.every: must be at most 8760h, got "8761h""#
            ])
    }

    @Test func jsonSchema_describesDriftCheck() {
        let property = KindShapes.jsonSchema(.environment)["properties"]?["spec"]?["properties"]?["driftCheck"]
        #expect(property?["required"] == ["every"])
        #expect(property?["additionalProperties"] == false)
        #expect(property?["properties"]?["every"]?["pattern"] == "^[0-9]+(ms|s|m|h)$")
    }
}
