import Foundation
import Testing

/// Runs the built `converge` binary as a user would and captures what it prints.
struct ConvergeBinary {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The binary beside the test bundle, in the same build products directory.
    static var executable: URL {
        var directory = Bundle.main.bundleURL
        for _ in 0..<4 where !FileManager.default.fileExists(atPath: directory.appendingPathComponent("converge").path)
        {
            directory.deleteLastPathComponent()
        }
        return directory.appendingPathComponent("converge")
    }

    static func run(_ arguments: String...) async throws -> Result {
        try await run(arguments)
    }

    /// Runs the binary (or `program`) with `arguments`, and `environment` added to the test's, in the repository,
    /// with `input` on its standard input (none: the test's), on a thread of its own while the caller awaits it: a
    /// test waiting on a process must not hold one of the few threads every other test's loopback servers answer on.
    static func run(
        _ arguments: [String], environment: [String: String] = [:], input: String? = nil, program: URL = executable
    ) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Swift.Result { try runBlocking(program, arguments, environment, input) })
            }
        }
    }

    private static func runBlocking(
        _ program: URL, _ arguments: [String], _ environment: [String: String], _ input: String?
    ) throws -> Result {
        let process = Process()
        process.executableURL = program
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.currentDirectoryURL = repository
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let stdin = Pipe()
        if input != nil { process.standardInput = stdin }
        try process.run()
        if let input {
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try stdin.fileHandleForWriting.close()
        }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }
}

@Suite struct ConvergeCommandTests {
    static let fixtures = "Tests/ConvergeManifestsTests/Fixtures"

    @Test func validate_exampleRepository_exitsZeroWithASummary() async throws {
        let result = try await ConvergeBinary.run("validate", "examples/gitops")
        #expect(result.status == 0)
        #expect(
            result.stdout
                == "examples/gitops: valid: 1 project, 2 environments, 1 resource, 7 bundles, 3 provisioners, 7 instances, 0 previews\n"
        )
        #expect(result.stderr.isEmpty)
    }

    @Test func validate_brokenRepository_exitsOneWithEveryErrorOnStderr() async throws {
        let result = try await ConvergeBinary.run("validate", "\(Self.fixtures)/several-files")
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty)
        #expect(
            result.stderr == """
                case.yaml:7:3: spec.replicas: unknown field "replicas"
                second.yml:1:13: apiVersion: expected one of "converge/v1", got "converge/v2"; did you mean "converge/v1"?
                2 errors in \(Self.fixtures)/several-files

                """)
    }

    @Test func validate_json_printsErrorsForAnnotations() async throws {
        let result = try await ConvergeBinary.run("validate", "\(Self.fixtures)/wrong-type", "--output", "json")
        #expect(result.status == 1)
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect(json?["valid"] as? Bool == false)
        let errors = json?["errors"] as? [[String: Any]]
        #expect(errors?.count == 1)
        #expect(errors?.first?["file"] as? String == "case.yaml")
        #expect(errors?.first?["line"] as? Int == 6)
        #expect(errors?.first?["column"] as? Int == 10)
        #expect(errors?.first?["field"] as? String == "spec.prune")
        #expect(errors?.first?["message"] as? String == #"expected boolean, got string "yes""#)
    }

    @Test func validate_limitsAreConfigurable() async throws {
        let result = try await ConvergeBinary.run("validate", "examples/gitops", "--max-depth", "2")
        #expect(result.status == 1)
        #expect(result.stderr.contains("nesting is deeper than the limit of 2 levels"))
    }

    @Test func usageErrors_exitTwo() async throws {
        let unknownOption = try await ConvergeBinary.run("validate", "--bogus")
        #expect(unknownOption.status == 2)
        #expect(unknownOption.stderr.contains("Unknown option '--bogus'"))
        #expect(try await ConvergeBinary.run("schema", "widget").status == 2)
        #expect(try await ConvergeBinary.run("validate", "--output", "xml").status == 2)
        #expect(try await ConvergeBinary.run("nonsense").status == 2)
        #expect(try await ConvergeBinary.run("validate", "--max-depth", "0").status == 2)
    }

    @Test func version_andHelp_exitZero() async throws {
        let version = try await ConvergeBinary.run("version", "--client")
        #expect(version.status == 0)
        #expect(version.stdout.hasPrefix("client: "))
        #expect(try await ConvergeBinary.run("--help").status == 0)
    }

    @Test(arguments: ["project", "environment", "resource", "bundle", "provisioner", "instance", "preview"])
    func schema_matchesTheCommittedFile(kind: String) async throws {
        let result = try await ConvergeBinary.run("schema", kind)
        #expect(result.status == 0)
        let committed = try String(
            contentsOf: ConvergeBinary.repository.appendingPathComponent("manifests/schemas/\(kind).json"),
            encoding: .utf8)
        #expect(
            result.stdout == committed, "manifests/schemas/\(kind).json is stale: regenerate it with `make schemas`")
    }

    @Test func schema_ofACloudResource_printsItsParamsSchema() async throws {
        let result = try await ConvergeBinary.run("schema", "aws-dynamodb-table")
        #expect(result.status == 0)
        let schema = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect(schema?["title"] as? String == "converge aws-dynamodb-table params")
        #expect(schema?["required"] as? [String] == ["partitionKey"])
        let properties = schema?["properties"] as? [String: [String: Any]]
        #expect(properties?["billingMode"]?["default"] as? String == "PAY_PER_REQUEST")
        #expect(properties?["partitionKey"]?["required"] as? [String] == ["name", "type"])
        let help = try await ConvergeBinary.run("schema", "--help")
        #expect(help.stdout.contains("aws-dynamodb-table, aws-s3-bucket, aws-sqs-queue"))
        let misspelt = try await ConvergeBinary.run("schema", "aws-dynamodb-tabel")
        #expect(misspelt.status == 2)
        #expect(misspelt.stderr.contains(#"did you mean "aws-dynamodb-table"?"#))
    }
}
