import ArgumentParser
import ConvergeClient
import ConvergeCore
import Foundation

/// `converge login --server URL --token TOKEN [--context NAME]`: a token the daemon accepts, saved as a context of
/// the config file and made current.
struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a token against a daemon, then save both as a context of the config file, made current.",
        discussion: """
            converge login --server https://converge.example.com --token-file prod.token --context prod
            pass show converge/prod | converge login --server https://converge.example.com --token - --context prod

            The daemon is asked who the token is (GET /v1/whoami) first: a token it refuses, or a daemon that does not \
            answer, exits 1 and writes nothing. The config file ($XDG_CONFIG_HOME/converge/config.json, else \
            ~/.config/converge/config.json) is written readable by you only (mode 0600).
            """)

    @Option(help: "The daemon's URL.") var server: String
    @Option(help: "The token; - reads it from standard input, so that it is not on the command line.")
    var token: String?
    @Option(help: "A file holding the token.") var tokenFile: String?
    @Option(help: "The context's name (default: the server's host and port).") var context: String?
    @Option(
        help: ArgumentHelp(
            "A PEM file of the certificate authorities the daemon's certificate must chain to, saved with the "
                + "context (default: the system's store).", valueName: "file"),
        completion: .file())
    var certificateAuthority: String?

    func validate() throws {
        guard (token == nil) != (tokenFile == nil) else {
            throw ValidationError("give the token with one of --token or --token-file")
        }
    }

    func run() async throws {
        try await withDaemon {
            let secret = try readToken()
            // The same checks as every command's: an http(s) URL, a readable authority file (saved absolute).
            let settings = try ClientSettings.resolve(
                server: server, token: secret,
                certificateAuthority: certificateAuthority.map { URL(fileURLWithPath: $0).path }, context: nil,
                config: ClientConfig(), path: "", environment: [:])
            let url = settings.server
            let principal = try await ConvergeClient(settings: settings).api.getPrincipal().ok.body.json
            var (config, path) = try ClientConfig.current()
            let name = context ?? url.host.map { host in url.port.map { "\(host):\($0)" } ?? host } ?? server
            config.contexts[name] = ClientConfig.Context(
                server: url.absoluteString, token: secret, certificateAuthority: settings.certificateAuthority)
            config.currentContext = name
            try config.save(path: path)
            print(
                "logged in to \(url.absoluteString) as \(principal.name) (\(principal.role.rawValue)); "
                    + "context \(name) is current in \(path)")
        }
    }

    /// The token from `--token` (standard input for `-`) or `--token-file`, without surrounding white space.
    func readToken() throws -> String {
        let text: String
        switch (token, tokenFile) {
        case ("-"?, _):
            text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        case (let token?, _):
            text = token
        case (nil, let file?):
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ConvergeError(.invalidArgument, "--token-file \(file): cannot read it")
            }
            text = String(decoding: data, as: UTF8.self)
        case (nil, nil):
            text = ""
        }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw ConvergeError(.invalidArgument, "the token is empty") }
        return trimmed
    }
}
