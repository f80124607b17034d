import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Why the AWS emulator could not be started or prepared.
public struct MotoServerError: Error, CustomStringConvertible {
    public var description: String
}

/// The AWS emulator (moto in server mode, installed by `make python-tools` into `.build/python-venv`) on loopback, with
/// signature checking on, for the tests of the cloud drivers.
///
/// moto checks nothing until it has served `INITIAL_NO_AUTH_ACTION_COUNT` requests that reach an AWS action, then
/// checks every later one: its SigV4 signature, against the access keys it knows, and the key's IAM policies. The
/// server starts with that count at 3, which `start()` spends on IAM `CreateUser`, `PutUserPolicy` (an inline policy
/// that allows every action) and `CreateAccessKey`: from then on, every request a test makes must be signed with
/// `accessKeyID` and `secretAccessKey`, or moto refuses it. Requests to `/moto-api/` do not count.
///
/// Each `start()` runs a server of its own (about half a second); it is killed by `stop()` or, failing that, when the
/// value is dropped, so also when a test fails or throws. Its output goes to `log`, which is kept for diagnostics.
/// A server costs a Python start of about a CPU-second, so the suites that start them are `.serialized`: dozens
/// starting at once starved the timing of the other tests on a two-core machine.
public final class MotoServer: Sendable {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    public let endpoint: String
    public let port: Int
    /// The key every request must be signed with (AWS Signature Version 4).
    public let accessKeyID: String
    public let secretAccessKey: String
    /// The region the tests sign for; moto serves every region on the one endpoint.
    public let region = "eu-west-1"
    /// The server's stdout and stderr.
    public let log: URL
    private let child: ChildProcess

    /// The requests moto serves before it checks signatures: the three IAM calls of `bootstrap`.
    static let unauthenticatedRequests = 3

    private init(port: Int, log: URL, child: ChildProcess, accessKeyID: String, secretAccessKey: String) {
        self.port = port
        self.endpoint = "http://127.0.0.1:\(port)"
        self.log = log
        self.child = child
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
    }

    /// Starts a server on a free port, waits until it answers (20 s at most) and creates the IAM user whose key signs
    /// the tests' requests; throws with the end of the server's log when it cannot.
    public static func start() async throws -> MotoServer {
        let python = repository.appendingPathComponent(".build/python-venv/bin/python")
        guard FileManager.default.isExecutableFile(atPath: python.path) else {
            throw MotoServerError(
                description: "moto is not installed: run make python-tools (\(python.path) is missing)")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "converge-moto-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let log = directory.appendingPathComponent("moto.log")
        guard FileManager.default.createFile(atPath: log.path, contents: nil) else {
            throw MotoServerError(description: "cannot create \(log.path)")
        }
        // The port was free when chosen, but a test starting a server beside this one can bind it first: then this
        // server exits with "Address already in use", and the start moves to another port.
        for _ in 1...5 {
            let port = try freeLoopbackPort()
            let offset = logText(log).utf8.count
            let child = try ChildProcess(python: python, port: port, log: log)
            let listening = "Running on http://127.0.0.1:\(port)"
            do {
                try await eventually("moto answers on port \(port) or exits", timeout: .seconds(20)) {
                    guard child.isRunning else { return true }
                    guard logText(log, from: offset).contains(listening) else { return false }
                    return await answers(port: port)
                }
            } catch let error as TimedOut {
                throw MotoServerError(description: "\(error)\n\(logTail(log))")
            }
            if child.isRunning {
                let key = try await bootstrap(endpoint: "http://127.0.0.1:\(port)", log: log)
                return MotoServer(
                    port: port, log: log, child: child, accessKeyID: key.accessKeyID,
                    secretAccessKey: key.secretAccessKey)
            }
            guard logText(log, from: offset).contains("Address already in use") else {
                throw MotoServerError(description: "moto exited before it answered:\n\(logTail(log))")
            }
        }
        throw MotoServerError(description: "no port moto could bind after 5 tries:\n\(logTail(log))")
    }

    /// Kills the server and waits until it has exited.
    public func stop() async throws {
        child.kill()
        try await eventually("moto exits", timeout: .seconds(10)) { !child.isRunning }
    }

    /// The last lines of the server's log, for a failing test's message.
    public func logTail(lines: Int = 40) -> String {
        Self.logTail(log, lines: lines)
    }

    // MARK: - Bootstrap

    /// Creates the IAM user `converge-tests`, allows it everything and returns a new access key of it: the three
    /// requests moto serves without checking a signature.
    private static func bootstrap(endpoint: String, log: URL) async throws -> (
        accessKeyID: String, secretAccessKey: String
    ) {
        let user = "converge-tests"
        let policy = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#
        _ = try await iam(endpoint, log: log, ["Action": "CreateUser", "UserName": user])
        _ = try await iam(
            endpoint, log: log,
            ["Action": "PutUserPolicy", "UserName": user, "PolicyName": "admin", "PolicyDocument": policy])
        let created = try await iam(endpoint, log: log, ["Action": "CreateAccessKey", "UserName": user])
        guard let accessKeyID = element("AccessKeyId", in: created),
            let secretAccessKey = element("SecretAccessKey", in: created)
        else {
            throw MotoServerError(description: "moto's CreateAccessKey answer has no key: \(created)")
        }
        return (accessKeyID, secretAccessKey)
    }

    /// Calls an action of the IAM query API and returns the XML answer; throws unless the status is 200.
    private static func iam(_ endpoint: String, log: URL, _ parameters: [String: String]) async throws -> String {
        var request = URLRequest(url: URL(string: endpoint + "/")!, timeoutInterval: 20)
        request.httpMethod = "POST"
        request.setValue("application/x-www-form-urlencoded; charset=utf-8", forHTTPHeaderField: "Content-Type")
        // moto picks the service of a request from the credential scope of its Authorization header (unsigned, this
        // one would go to S3); the signature is not checked yet.
        request.setValue(
            "AWS4-HMAC-SHA256 Credential=bootstrap/20250101/us-east-1/iam/aws4_request, SignedHeaders=host, "
                + "Signature=unchecked",
            forHTTPHeaderField: "Authorization")
        let form = (parameters.merging(["Version": "2010-05-08"]) { $1 }).sorted { $0.key < $1.key }
            .map { "\(formEncoded($0.key))=\(formEncoded($0.value))" }.joined(separator: "&")
        request.httpBody = Data(form.utf8)
        let (data, response) = try await URLSession.shared.data(for: request)
        let body = String(decoding: data, as: UTF8.self)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard status == 200 else {
            throw MotoServerError(
                description: "moto answered IAM \(parameters["Action"] ?? "") with \(status): \(body)\n\(logTail(log))")
        }
        return body
    }

    private static func formEncoded(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    /// The text of the first `<name>` element of `xml`.
    private static func element(_ name: String, in xml: String) -> String? {
        guard let start = xml.range(of: "<\(name)>"),
            let end = xml.range(of: "</\(name)>", range: start.upperBound..<xml.endIndex)
        else { return nil }
        return String(xml[start.upperBound..<end.lowerBound])
    }

    /// Whether the server on `port` answers moto's own API (which does not count as a request to an AWS action).
    private static func answers(port: Int) async -> Bool {
        let request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/moto-api/config")!, timeoutInterval: 2)
        let response = try? await URLSession.shared.data(for: request).1
        return (response as? HTTPURLResponse).map { (200..<300).contains($0.statusCode) } ?? false
    }

    // MARK: - Files and ports

    /// The repository's root: this file is `Tests/ConvergeTestSupport/MotoServer.swift` in it.
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    private static func logText(_ log: URL, from offset: Int = 0) -> String {
        guard let data = FileManager.default.contents(atPath: log.path), data.count > offset else { return "" }
        return String(decoding: data[offset...], as: UTF8.self)
    }

    private static func logTail(_ log: URL, lines: Int = 40) -> String {
        "moto's log \(log.path) ends with:\n"
            + logText(log).split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(
                separator: "\n")
    }

}

/// The moto server process, killed (SIGKILL) and waited for when dropped.
///
/// `@unchecked Sendable`: the `Process` is set once, before the value is shared, and only its thread-safe
/// `isRunning` and `processIdentifier` are read afterwards.
private final class ChildProcess: @unchecked Sendable {
    private let process = Process()

    /// `python -m moto.server -H 127.0.0.1 -p <port>`, and a thread that ends the server once its parent (the test
    /// process) is gone, so that a test run that crashes leaves no server behind.
    static let script = """
        import os, sys, threading, time
        def exit_when_orphaned(parent=os.getppid()):
            while os.getppid() == parent:
                time.sleep(1)
            os._exit(1)
        threading.Thread(target=exit_when_orphaned, daemon=True).start()
        from moto.server import main
        main(sys.argv[1:])
        """

    init(python: URL, port: Int, log: URL) throws {
        process.executableURL = python
        process.arguments = ["-c", Self.script, "-H", "127.0.0.1", "-p", "\(port)"]
        var environment = ProcessInfo.processInfo.environment
        environment["INITIAL_NO_AUTH_ACTION_COUNT"] = "\(MotoServer.unauthenticatedRequests)"
        environment["PYTHONUNBUFFERED"] = "1"
        process.environment = environment
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        defer { try? handle.close() }  // the server has its own copy
        try process.run()
    }

    deinit {
        kill()
        process.waitUntilExit()
    }

    var isRunning: Bool { process.isRunning }

    /// SIGKILL: the test process may hold SIGTERM blocked, and a child inherits that mask.
    func kill() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }
}
