import Testing

/// Regression (issue 13): `converge gett deployments` said "2 unexpected arguments" and `--status RUNNNING` went to
/// the daemon. A mistyped command, subcommand, kind or value is a usage error (exit 2) that names what was meant.
@Suite struct DidYouMeanTests {
    @Test(arguments: [
        (["gett", "deployments"], #"error: unknown command "gett"; did you mean "get"?"#),
        (
            ["preview", "destory", "pr42"],
            #"error: unknown command "destory" for "converge preview"; did you mean "destroy"?"#
        ),
        (["env", "frok", "a", "b"], #"error: unknown command "frok" for "converge env"; did you mean "fork"?"#),
        (
            ["config", "use-contxt", "prod"],
            #"error: unknown command "use-contxt" for "converge config"; did you mean "use-context"?"#
        ),
        (["florp"], #"error: unknown command "florp"; see "converge --help""#),
    ])
    func mistypedCommand_isAUsageErrorNamingTheCommand(arguments: [String], message: String) async throws {
        let result = try await ConvergeBinary.run(arguments, environment: ["CONVERGE_SERVER": "http://127.0.0.1:1"])
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr == message + "\n")
        #expect(result.stdout.isEmpty)
    }

    @Test(arguments: [
        (["get", "deploymnets"], #""deploymnets" is none of deployments, instances"#, #"did you mean "deployments"?"#),
        (["describe", "instnace", "x"], #""instnace" is none of"#, #"did you mean "instances"?"#),
        (
            ["get", "deployments", "--status", "RUNNNING"], #""RUNNNING" is none of PROPOSED, REJECTED, APPROVED"#,
            #"did you mean "RUNNING"?"#
        ),
        (["get", "deployments", "--status", "RUNNING,FAILD"], #""FAILD" is none of"#, #"did you mean "FAILED"?"#),
        (
            ["get", "deployments", "--action", "provison"], #""provison" is none of provision, plan, decommission"#,
            #"did you mean "provision"?"#
        ),
        (
            ["get", "instances", "-o", "jsno"], #""jsno" is none of table, wide, name, json, yaml"#,
            #"did you mean "json"?"#
        ),
        (["approve", "d1", "--step", "aply"], #""aply" is none of review, plan, apply"#, #"did you mean "apply"?"#),
        (["completion", "bsh"], #""bsh" is none of bash, zsh, fish"#, #"did you mean "bash"?"#),
    ])
    func mistypedValue_isAUsageErrorListingTheValuesAndTheClosest(
        arguments: [String], list: String, suggestion: String
    ) async throws {
        let result = try await ConvergeBinary.run(arguments, environment: ["CONVERGE_SERVER": "http://127.0.0.1:1"])
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains(list), "\(result.stderr)")
        #expect(result.stderr.contains(suggestion), "\(result.stderr)")
    }

    /// A word a group's default command takes as its argument is not a mistyped command: `preview pr42` is
    /// `preview up pr42`, which wants its file.
    @Test func defaultCommandsArgument_isNotCalledAMistypedCommand() async throws {
        let result = try await ConvergeBinary.run(["preview", "pr42"])
        #expect(result.status == 2)
        #expect(!result.stderr.contains("unknown command"), "\(result.stderr)")
        #expect(result.stderr.contains("--file"), "\(result.stderr)")
    }
}
