import ArgumentParser
import ConvergeClient
import ConvergeCore
import Foundation

/// `converge version`: this client's version and the daemon's, as kubectl version shows both.
struct Version: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the client's version and the daemon's; exit 1 when the daemon does not answer.")

    @Flag(help: "Only the client's version; the daemon is not asked.") var client = false
    @OptionGroup var options: ClientOptions

    func run() async throws {
        var versions: [String: Value] = ["client": .string(convergeVersion)]
        var failure: String?
        if !client {
            var server = "the server"
            do {
                let settings = try options.settings()
                server = settings.server.absoluteString
                versions["server"] = .string(
                    try await ConvergeClient(settings: settings).api.getVersion().ok.body.json.version)
            } catch {
                failure = "cannot get the server's version from \(server): \(describe(error))"
            }
        }
        FileHandle.standardOutput.write(Data(render(.object(versions), as: options.output, table: nil).utf8))
        if let failure {
            FileHandle.standardError.write(line: "converge: \(failure)")
            throw ExitCode.failure
        }
    }
}
