import ArgumentParser
import ConvergeAPI
import ConvergeClient
import ConvergeCore
import ConvergeEngine
import Foundation

/// `converge secret set|list|rm`: an instance's secrets. A value is read from standard input or a file, never from
/// the command line (where `ps` and shell histories would show it), and never printed.
struct Secret: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set, list and delete an instance's secrets (sent only to its provisioner, at dispatch).",
        subcommands: [SetValue.self, List.self, Remove.self])

    struct SetValue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Create or replace a secret; the value is read from standard input, or --from-file.",
            discussion: """
                From standard input, one trailing newline is dropped (as echo adds it); a file is taken byte for \
                byte. The value must be UTF-8 text of at most 64 KiB.
                """)

        @Argument(help: "The instance, such as ecomm-production-db.") var instance: String
        @Argument(help: "The secret's name: a letter or _, then letters, digits or _.") var name: String
        @Option(name: .customLong("from-file"), help: "Read the value from this file instead of standard input.")
        var fromFile: String?
        @OptionGroup var options: ClientOptions

        func validate() throws {
            do {
                try InstanceSecrets.checkName(name)
            } catch let error as ConvergeError {
                throw ValidationError(error.message)
            }
        }

        func run() async throws {
            try await withDaemon {
                let value = try readValue()
                _ = try await options.client().api.setInstanceSecret(
                    path: .init(id: instance, name: name), body: .json(.init(value: value))
                ).noContent
                try Secret.report(["instance": instance, "name": name, "status": "set"], options: options)
            }
        }

        /// The value, from `--from-file` verbatim or from standard input without one trailing newline.
        func readValue() throws -> String {
            let data: Data
            if let fromFile {
                guard let contents = FileManager.default.contents(atPath: fromFile) else {
                    throw ConvergeError(.invalidArgument, "cannot read \(fromFile)")
                }
                data = contents
            } else {
                if isatty(STDIN_FILENO) == 1 {
                    FileHandle.standardError.write(
                        line: "converge: reading the value from standard input; end it with Ctrl-D")
                }
                var bytes = FileHandle.standardInput.readDataToEndOfFile()
                if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
                if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
                data = bytes
            }
            guard let value = String(data: data, encoding: .utf8) else {
                throw ConvergeError(.invalidArgument, "the value must be UTF-8 text")
            }
            guard !value.isEmpty else { throw ConvergeError(.invalidArgument, "the value is empty") }
            guard value.utf8.count <= InstanceSecrets.maxValueBytes else {
                throw ConvergeError(
                    .invalidArgument,
                    "the value must be at most \(InstanceSecrets.maxValueBytes) bytes, got \(value.utf8.count)")
            }
            return value
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the names of an instance's secrets.")

        @Argument(help: "The instance.") var instance: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await withDaemon {
                let list = try await options.client().api.listInstanceSecrets(path: .init(id: instance)).ok.body.json
                try options.print(
                    ["items": list.names.map { ["name": $0] }],
                    table: Table(columns: [.init("name", path: "name")], emptyMessage: "no secrets"))
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete a secret of an instance.")

        @Argument(help: "The instance.") var instance: String
        @Argument(help: "The secret's name.") var name: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await withDaemon {
                _ = try await options.client().api.deleteInstanceSecret(path: .init(id: instance, name: name))
                    .noContent
                try Secret.report(["instance": instance, "name": name, "status": "deleted"], options: options)
            }
        }
    }

    /// What a change prints: one line for people, the object with `-o json|yaml`.
    static func report(_ fields: [String: String], options: ClientOptions) throws {
        guard options.output.isTable else { return try options.print(fields, table: nil) }
        print("secret \(fields["name"] ?? "") of \(fields["instance"] ?? "") \(fields["status"] ?? "")")
    }
}

/// `converge init-key`: creates the daemon's secrets key file.
struct InitKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init-key",
        abstract: "Create the daemon's secrets key: 32 random bytes in a file readable by its owner only.",
        discussion: """
            converge serve refuses to start without it. An existing file is never overwritten: the secrets sealed \
            under it would be lost. Back it up apart from the database.
            """)

    @Option(name: .customLong("secrets-key-file"), help: "Where to create it (default converge.key).")
    var secretsKeyFile = "converge.key"

    func run() throws {
        do {
            try SecretsKeyFile.create(at: secretsKeyFile)
        } catch let error as ConvergeError {
            FileHandle.standardError.write(line: "converge init-key: \(error.message)")
            throw ExitCode.failure
        }
        print("created \(secretsKeyFile)")
    }
}

/// The daemon's secrets key file: 32 raw bytes, readable and writable by its owner only.
enum SecretsKeyFile {
    /// Creates a new key at `path`; refuses an existing file.
    static func create(at path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            let reason =
                errno == EEXIST
                ? "it already exists, and a key is never overwritten (the secrets sealed under it would be lost)"
                : String(cString: strerror(errno))
            throw ConvergeError(.failedPrecondition, "cannot create the secrets key file \(path): \(reason)")
        }
        defer { close(descriptor) }
        let key = SecretBox.newKey()
        let written = key.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard fchmod(descriptor, 0o600) == 0, written == key.count, fsync(descriptor) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(path)
            throw ConvergeError(.internal, "cannot write the secrets key file \(path): \(reason)")
        }
    }

    /// The key at `path`: refused when the file is missing, readable or writable by group or others, or not 32 bytes.
    static func load(from path: String) throws -> [UInt8] {
        var status = stat()
        guard stat(path, &status) == 0 else {
            let reason =
                errno == ENOENT
                ? "does not exist; create it with converge init-key --secrets-key-file \(path)"
                : "cannot be read: \(String(cString: strerror(errno)))"
            throw ConvergeError(.failedPrecondition, "the secrets key file \(path) \(reason)")
        }
        let mode = status.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw ConvergeError(
                .failedPrecondition,
                "the secrets key file \(path) must be readable by its owner only (chmod 600), but its mode is "
                    + String(mode, radix: 8))
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConvergeError(.failedPrecondition, "the secrets key file \(path) cannot be read")
        }
        guard data.count == SecretBox.keyByteCount else {
            throw ConvergeError(
                .failedPrecondition,
                "the secrets key file \(path) must hold \(SecretBox.keyByteCount) bytes (made by converge init-key), "
                    + "it holds \(data.count)")
        }
        return Array(data)
    }
}
