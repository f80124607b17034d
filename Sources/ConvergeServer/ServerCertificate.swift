import ConvergeCore
import Foundation
import NIOCore
import NIOSSL
import Synchronization

/// The daemon's TLS certificate and key, read from their PEM files and read again on `reload()` (SIGHUP): every TLS
/// handshake after a reload presents the new certificate, and connections already open keep theirs. A reload that
/// cannot read or parse the files keeps the certificate in force.
public final class ServerCertificate: Sendable {
    public let certificateFile: String
    public let keyFile: String
    private let current: Mutex<NIOSSLContextConfigurationOverride>

    public init(certificateFile: String, keyFile: String) throws {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        current = Mutex(try Self.read(certificateFile: certificateFile, keyFile: keyFile))
    }

    /// Reads the files again; throws (and keeps the certificate in force) when they do not hold a certificate chain
    /// and its key.
    public func reload() throws {
        let next = try Self.read(certificateFile: certificateFile, keyFile: keyFile)
        current.withLock { $0 = next }
    }

    /// The server configuration: its certificate is the one in force at each handshake.
    public var tlsConfiguration: TLSConfiguration {
        get throws {
            let initial = current.withLock { $0 }
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: initial.certificateChain ?? [], privateKey: initial.privateKey!)
            configuration.minimumTLSVersion = .tlsv12
            configuration.sslContextCallback = { [self] _, promise in
                promise.succeed(self.current.withLock { $0 })
            }
            return configuration
        }
    }

    private static func read(certificateFile: String, keyFile: String) throws -> NIOSSLContextConfigurationOverride {
        var override = NIOSSLContextConfigurationOverride()
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(certificateFile)
            guard !chain.isEmpty else {
                throw ConvergeError(.invalidArgument, "\(certificateFile) holds no PEM certificate")
            }
            override.certificateChain = chain.map { .certificate($0) }
        } catch let error as ConvergeError {
            throw error
        } catch {
            throw ConvergeError(.invalidArgument, "cannot read the TLS certificate \(certificateFile): \(error)")
        }
        do {
            override.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
        } catch {
            throw ConvergeError(.invalidArgument, "cannot read the TLS key \(keyFile): \(error)")
        }
        return override
    }
}
