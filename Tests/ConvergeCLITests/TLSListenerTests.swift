import ConvergeCore
import ConvergeTestSupport
import Foundation
import Testing

/// The daemon's listener over TLS: a client that trusts its authority talks to it, one that does not is refused, a
/// provisioner's callbacks reach it over https, and SIGHUP puts a new certificate in force.
@Suite struct TLSListenerTests {
    /// `curl` against the daemon: its exit status and output (the body, or the error).
    static func curl(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["curl", "-sS", "--max-time", "10"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func httpsListener_trustedClientsOnly_callbacksOverHTTPS_andSIGHUPReloadsTheCertificate() async throws {
        let server = try await LoopbackServer.start { _, _ in ScriptedResponse(status: 202) }
        defer { Task { await server.stop() } }
        let daemon = try DaemonProcess(files: repository(url: server.url, instances: ["a": ["size": 1]]))
        let first = try TestCertificates(in: daemon.directory, name: "first")
        let second = try TestCertificates(in: daemon.directory, name: "second")
        let certificate = daemon.directory.appendingPathComponent("tls.pem").path
        let key = daemon.directory.appendingPathComponent("tls-key.pem").path
        try FileManager.default.copyItem(atPath: first.certificate, toPath: certificate)
        try FileManager.default.copyItem(atPath: first.key, toPath: key)
        daemon.arguments += ["--tls-cert-file", certificate, "--tls-key-file", key]
        try await daemon.start()
        let base = "https://127.0.0.1:\(daemon.port)"

        let trusted = try Self.curl(["--cacert", first.authority, base + "/healthz"])
        #expect(trusted.status == 0, "\(trusted.output)")
        let untrusted = try Self.curl(["--cacert", second.authority, base + "/healthz"])
        #expect(untrusted.status == 60, "curl exits 60 for a certificate it cannot verify: \(untrusted.output)")
        let plain = try Self.curl(["http://127.0.0.1:\(daemon.port)/healthz"])
        #expect(plain.status != 0, "plain HTTP is not served on a TLS listener: \(plain.output)")

        // The CLI verifies the daemon: with the authority that signed its certificate it works (by flag, by the
        // environment, by the context `converge login` saved); with another, or the system's store, it refuses.
        let token = try await daemon.token("tls", role: "admin")
        let https = ["CONVERGE_SERVER": base]
        let viaFlag = try await daemon.cli(
            token, environment: https, ["get", "instances", "--certificate-authority", first.authority])
        #expect(viaFlag.status == 0 && viaFlag.stdout.contains("p-dev-a"), "\(viaFlag)")
        let viaEnvironment = try await daemon.cli(
            token, environment: https.merging(["CONVERGE_CERTIFICATE_AUTHORITY": first.authority]) { $1 },
            ["get", "instances"])
        #expect(viaEnvironment.status == 0, "\(viaEnvironment)")
        for refused in [
            try await daemon.cli(
                token, environment: https, ["get", "instances", "--certificate-authority", second.authority]),
            try await daemon.cli(token, environment: https, ["get", "instances"]),
        ] {
            #expect(refused.status != 0 && refused.stderr.contains("certificate"), "\(refused)")
        }
        let missing = try await daemon.cli(
            token, environment: https, ["get", "instances", "--certificate-authority", "/nonexistent.pem"])
        #expect(missing.status != 0 && missing.stderr.contains("/nonexistent.pem"), "\(missing)")
        let login = try await daemon.cli(
            nil, "login", "--server", base, "--token", token, "--certificate-authority", first.authority)
        #expect(login.status == 0, "\(login)")
        let viaContext = try await daemon.cli(nil, environment: ["CONVERGE_SERVER": ""], ["get", "instances"])
        #expect(viaContext.status == 0 && viaContext.stdout.contains("p-dev-a"), "\(viaContext)")

        // The provisioner is told an https callback URL, and its callbacks end the deployment through it.
        try await eventually("the provisioner is called") { await server.requests.count == 1 }
        let callback = try #require(await server.requests.first?.json?["callback"] as? [String: String])
        let url = try #require(callback["url"])
        #expect(url.hasPrefix(base + "/"), "\(url)")
        let done = try Self.curl([
            "--cacert", first.authority, "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H",
            "Authorization: Bearer \(callback["token"]!)", "-H", "Content-Type: application/json", "--data",
            #"{"type": "completed", "attempt": 1, "outputs": {}}"#, url,
        ])
        #expect(done.output == "204", "\(done.output)")
        try await eventually("a is deployed") {
            try await daemon.store().history("p-dev-a").first?.status == .completed
        }

        // A new certificate from another authority, put in force by SIGHUP without a restart.
        try FileManager.default.removeItem(atPath: certificate)
        try FileManager.default.removeItem(atPath: key)
        try FileManager.default.copyItem(atPath: second.certificate, toPath: certificate)
        try FileManager.default.copyItem(atPath: second.key, toPath: key)
        kill(daemon.process!.processIdentifier, SIGHUP)
        try await eventually("the new certificate is in force") {
            try Self.curl(["--cacert", second.authority, base + "/healthz"]).status == 0
        }
        #expect(try Self.curl(["--cacert", first.authority, base + "/healthz"]).status == 60)
        #expect(daemon.logText.contains("TLS certificate reloaded"))

        // A reload that cannot read the files keeps the certificate in force.
        try "not a certificate".write(toFile: certificate, atomically: true, encoding: .utf8)
        kill(daemon.process!.processIdentifier, SIGHUP)
        try await eventually("the failed reload is logged") {
            daemon.logText.contains("TLS certificate not reloaded; the one in force stays")
        }
        #expect(try Self.curl(["--cacert", second.authority, base + "/healthz"]).status == 0)
        try await daemon.stop()
    }

    @Test func aCertificateWithoutItsKey_isRefusedAtStart() async throws {
        let result = try await ConvergeBinary.run(["serve", "--tls-cert-file", "/tmp/x.pem"])
        #expect(result.status == 2)
        #expect(
            result.stderr
                == "converge serve: command line: --tls-cert-file needs --tls-key-file too: TLS takes a certificate "
                + "and its key\n")
    }
}
