import Foundation

/// A certificate authority and a server certificate for 127.0.0.1 and localhost that it signed, made with `openssl`
/// in a directory of the test's: what a test of TLS trusts, or does not.
public struct TestCertificates: Sendable {
    public let authority: String
    public let certificate: String
    public let key: String

    /// Makes them in `directory`, named after `name` (so one directory holds several sets).
    public init(in directory: URL, name: String = "server") throws {
        let base = directory.appendingPathComponent(name).path
        authority = base + "-ca.pem"
        certificate = base + ".pem"
        key = base + "-key.pem"
        let authorityKey = base + "-ca-key.pem"
        let request = base + ".csr"
        let extensions = base + ".ext"
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n".write(
            toFile: extensions, atomically: true, encoding: .utf8)
        try Self.openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=converge test CA \(name)", "-keyout", authorityKey, "-out", authority,
        ])
        try Self.openssl([
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
            "/CN=converge test \(name)", "-keyout", key, "-out", request,
        ])
        try Self.openssl([
            "x509", "-req", "-in", request, "-CA", authority, "-CAkey", authorityKey, "-CAcreateserial", "-days", "2",
            "-extfile", extensions, "-out", certificate,
        ])
    }

    private static func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        let errors = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CertificateError(
                description: "openssl \(arguments.joined(separator: " ")): \(String(decoding: message, as: UTF8.self))")
        }
    }

    struct CertificateError: Error, CustomStringConvertible {
        var description: String
    }
}
