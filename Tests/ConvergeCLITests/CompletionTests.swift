import Foundation
import Testing

/// `converge completion bash|zsh|fish` prints a script that completes the commands, and kinds as values.
@Suite struct CompletionTests {
    @Test(arguments: ["bash", "zsh", "fish"])
    func script_namesTheCommandsAndTheirValues(shell: String) async throws {
        let result = try await ConvergeBinary.run(["completion", shell])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.split(separator: "\n").count > 100, "a script, not a line")
        for word in ["deploy", "preview", "destroy", "login", "use-context", "completion", "deployments", "RUNNING"] {
            #expect(result.stdout.contains(word), "the \(shell) script does not name \(word)")
        }
    }

    /// The bash script parses, and sourced, it registers `converge` and completes its commands and a kind.
    @Test func bashScript_isValidAndCompletes() async throws {
        let script = try await ConvergeBinary.run(["completion", "bash"]).stdout
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("converge-\(UUID().uuidString).bash")
        try script.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let bash = URL(fileURLWithPath: "/bin/bash")
        let syntax = try await ConvergeBinary.run(["-n", file.path], program: bash)
        #expect(syntax.status == 0, "bash -n: \(syntax.stderr)")

        func complete(_ words: String...) async throws -> [String] {
            let line = words.joined(separator: " ")
            let program = """
                source \(file.path)
                COMP_WORDS=(\(words.map { "'\($0)'" }.joined(separator: " "))); COMP_CWORD=\(words.count - 1)
                COMP_LINE='\(line)'; COMP_POINT=${#COMP_LINE}
                _converge converge '\(words.last!)' '\(words[words.count - 2])'
                printf '%s\\n' "${COMPREPLY[@]}"
                """
            let result = try await ConvergeBinary.run(["-c", program], program: bash)
            #expect(result.status == 0, "\(result.stderr)")
            return result.stdout.split(separator: "\n").map(String.init)
        }
        let commands = try await complete("converge", "")
        #expect(
            Set(["get", "preview", "login", "config", "completion", "version"]).isSubset(of: commands), "\(commands)")
        #expect(try await complete("converge", "get", "").contains("deployments"))
        #expect(try await complete("converge", "preview", "").contains("destroy"))
    }
}
