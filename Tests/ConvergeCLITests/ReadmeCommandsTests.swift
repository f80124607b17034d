import ArgumentParser
import Foundation
import Testing

@testable import converge

/// The README's commands table against the binary: every command is in it, and what it documents is accepted.
@Suite struct ReadmeCommandsTests {
    /// The rows of the README's commands table.
    static func commandRows() throws -> [String] {
        let readme = try String(
            contentsOf: ConvergeBinary.repository.appendingPathComponent("README.md"), encoding: .utf8)
        return readme.split(separator: "\n").filter { $0.hasPrefix("| `converge ") }.map(String.init)
    }

    /// Regression (issue 13): `converge diff` was missing from the table.
    @Test func everyCommand_isInTheCommandsTable() throws {
        let rows = try Self.commandRows().joined(separator: "\n")
        for command in Converge.configuration.subcommands {
            let name = command._commandName
            #expect(
                rows.contains("`converge \(name) ") || rows.contains("`converge \(name)`")
                    || rows.contains("`\(name) "), "converge \(name) is not in the README's commands table")
        }
    }

    /// Regression (issue 13): the README documented `validate -o text`, which the command refuses.
    @Test func validate_acceptsTheOutputsTheTableDocuments_andRefusesOthers() async throws {
        let row = try #require(try Self.commandRows().first { $0.hasPrefix("| `converge validate") })
        let documented = try #require(row.firstRange(of: "[-o ").map { row[$0.upperBound...] })
        let formats = documented.prefix { $0 != "]" }.split(separator: "\\|").map(String.init)
        #expect(formats == ["table", "json", "yaml"])
        for format in formats {
            #expect(try await ConvergeBinary.run("validate", "examples/gitops", "-o", format).status == 0)
        }
        let text = try await ConvergeBinary.run("validate", "examples/gitops", "-o", "text")
        #expect(text.status == 2)
        let wide = try await ConvergeBinary.run("validate", "examples/gitops", "-o", "wide")
        #expect(wide.status == 2)
        #expect(wide.stderr.contains("--output: expected table, json or yaml, got wide"))
    }

    /// A password in the database URL is refused before anything starts (it would show in `ps` and in logs), and
    /// the message does not repeat it.
    @Test func serve_withAPasswordInThePostgresURL_isRefused_andExitsTwo() async throws {
        let result = try await ConvergeBinary.run(["serve", "--db", "postgres://converge:hunter2@db.internal/converge"])
        #expect(result.status == 2)
        #expect(
            result.stderr
                == "converge serve: command line: --db \"postgres://redacted@db.internal/converge\": the database URL "
                + "must not hold a password; give it with --db-password-file or PGPASSWORD\n")
    }
}
