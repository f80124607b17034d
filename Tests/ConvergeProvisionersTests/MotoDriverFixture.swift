import ConvergeCore
import ConvergeTestSupport
import Synchronization

@testable import ConvergeProvisioners

/// What the SQS and DynamoDB drivers' tests share: signed clients of the moto emulator and a driver's context.
enum MotoDriverFixture {
    /// A client of the emulator; a wrong key or secret makes one the emulator refuses.
    static func client(_ moto: MotoServer, accessKeyID: String? = nil, secretAccessKey: String? = nil) -> AWSClient {
        var settings = AWSClient.Settings()
        settings.allowedURLPrefixes = [moto.endpoint]
        settings.maxAttempts = 2
        return AWSClient(
            region: moto.region, endpoint: moto.endpoint,
            credentials: AWSCredentials(
                accessKeyID: accessKeyID ?? moto.accessKeyID, secretAccessKey: secretAccessKey ?? moto.secretAccessKey),
            settings: settings)
    }

    static func context(_ client: AWSClient, instance: String, params: Value, log: DriverLog = DriverLog())
        -> CloudContext
    {
        CloudContext(instance: instance, params: params, client: client, log: { log.append($0) })
    }
}

/// The lines a driver logs.
final class DriverLog: Sendable {
    private let lines = Mutex<[String]>([])

    func append(_ line: String) {
        lines.withLock { $0.append(line) }
    }

    /// The lines logged so far, then none.
    func take() -> [String] {
        lines.withLock { lines in
            defer { lines = [] }
            return lines
        }
    }
}
