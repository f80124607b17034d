import ArgumentParser
import ConvergeCore
import ConvergeEngine
import ConvergeProvisioners
import ConvergeServer
import ConvergeStore
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import UnixSignals

/// `converge serve`: the daemon that keeps infrastructure converging on the manifests.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon: reconcile the manifests and dispatch deployments to provisioners.",
        discussion: """
            Every option can also be set with a CONVERGE_* variable (CONVERGE_MAX_CONCURRENT_DEPLOYMENTS) or in a \
            YAML config file (maxConcurrentDeployments: 4); options win over variables, variables over the file. \
            Every value is checked at start, whichever layer set it; a bad one exits 2 with one line saying which.
            """)

    @Option(help: "A YAML config file of settings.")
    var config: String?
    @Option(name: .customLong("manifests"), help: "The manifests directory, which must exist (default .).")
    var manifests: String?
    @Option(
        name: .customLong("db"),
        help: """
            The store: sqlite:PATH, or postgres://USER@HOST[:PORT]/DATABASE[?sslmode=disable|require|verify-full] \
            for several daemons on one database (default sqlite:converge.sqlite).
            """)
    var database: String?
    @Option(
        name: .customLong("tls-cert-file"),
        help:
            "The listener's TLS certificate chain (PEM), with --tls-key-file; read again on SIGHUP (default: plain HTTP)."
    )
    var tlsCertFile: String?
    @Option(name: .customLong("tls-key-file"), help: "The key of --tls-cert-file (PEM).")
    var tlsKeyFile: String?
    @Option(
        name: .customLong("db-password-file"),
        help: "A file holding the PostgreSQL password (default: the PGPASSWORD variable).")
    var dbPasswordFile: String?
    @Option(name: .customLong("listen"), help: "The HTTP listen address HOST:PORT (default 127.0.0.1:8787).")
    var listen: String?
    @Option(
        name: .customLong("max-concurrent-deployments"),
        help: "How many deployments run at once, \(Serve.range("maxConcurrentDeployments")) (default 4).")
    var maxConcurrentDeployments: String?
    @Option(name: .customLong("workers"), help: "Reconcile workers, \(Serve.range("workers")) (default 2).")
    var workers: String?
    @Option(
        name: .customLong("reconcile-rate"),
        help: "Reconciles per second the work queue hands out, \(Serve.range("reconcileRate")) (default 1000).")
    var reconcileRate: String?
    @Option(
        name: .customLong("lease-seconds"),
        help: "Seconds a deployment's lease lasts without a heartbeat, \(Serve.range("leaseSeconds")) (default 30).")
    var leaseSeconds: String?
    @Option(
        name: .customLong("poll-seconds"),
        help: "Seconds between reads of the manifests, \(Serve.range("pollSeconds")) (default 10).")
    var pollSeconds: String?
    @Option(
        name: .customLong("resync-seconds"),
        help: "Seconds between reconciles of every instance, \(Serve.range("resyncSeconds")) (default 300).")
    var resyncSeconds: String?
    @Option(
        name: .customLong("shutdown-grace-seconds"),
        help:
            "Seconds provisioner calls get to finish on shutdown, \(Serve.range("shutdownGraceSeconds")) (default 20).")
    var shutdownGraceSeconds: String?
    @Option(
        name: .customLong("callback-url"),
        help: "The daemon's http(s) URL as provisioners reach it, for callbacks (default http://LISTEN).")
    var callbackURL: String?
    @Option(
        name: .customLong("allowed-provisioner-urls"),
        help: "Comma-separated http(s) URL prefixes provisioners may be called at (default: loopback only).")
    var allowedProvisionerURLs: String?
    @Option(
        name: .customLong("git-webhook-secret-env"),
        help: "The variable holding the secret of the git push webhook; it must be set (off when not given).")
    var gitWebhookSecretEnv: String?
    @Option(
        name: .customLong("avatar-url-template"),
        help: "An http(s) URL for commit authors' avatars, with {email} where the email goes (off when not given).")
    var avatarURLTemplate: String?
    @Option(
        name: .customLong("tokens-file"),
        help: "The API's bearer tokens, made by converge token create (default converge.tokens).")
    var tokensFile: String?
    @Option(
        name: .customLong("secrets-key-file"),
        help: "The key instance secrets are sealed under, made by converge init-key (default converge.key).")
    var secretsKeyFile: String?
    @Option(
        name: .customLong("allow-exec-command"),
        help: ArgumentHelp(
            "A command (argv[0], exactly) an exec provisioner applied through the API may run; repeatable (default: "
                + "none, exec provisioners come only from the manifests).", valueName: "COMMAND"))
    var allowExecCommand: [String] = []
    @Option(
        name: .customLong("request-timeout-seconds"),
        help: """
            Seconds a client has to send a whole request before its connection is closed, \
            \(Serve.range("requestTimeoutSeconds")) (default 30).
            """)
    var requestTimeoutSeconds: String?
    @Option(
        name: .customLong("max-connections"),
        help: "HTTP connections open at once; more wait, \(Serve.range("maxConnections")) (default 512).")
    var maxConnections: String?
    @Option(
        name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (default info).")
    var logLevel: String?

    /// "from 1 to 1000", the documented range of a numeric setting, for the help.
    static func range(_ name: String) -> String {
        ServeSettings.integers[name].map { "from \($0.range.lowerBound) to \($0.range.upperBound)" } ?? ""
    }

    /// The settings with every layer applied and checked; a bad value is a `ConvergeError` naming its layer.
    func settings(environment: [String: String]) throws -> ServeSettings {
        var settings = ServeSettings()
        if let config {
            try settings.apply(try ServeSettings.values(ofConfigFile: config), from: .file(config))
        }
        try settings.apply(ServeSettings.values(ofEnvironment: environment), from: .environment)
        let flags: [String: String?] = [
            "manifests": manifests, "db": database, "listen": listen,
            "maxConcurrentDeployments": maxConcurrentDeployments, "workers": workers, "reconcileRate": reconcileRate,
            "leaseSeconds": leaseSeconds, "pollSeconds": pollSeconds, "resyncSeconds": resyncSeconds,
            "shutdownGraceSeconds": shutdownGraceSeconds, "callbackURL": callbackURL,
            "allowedProvisionerURLs": allowedProvisionerURLs, "gitWebhookSecretEnv": gitWebhookSecretEnv,
            "avatarURLTemplate": avatarURLTemplate, "tokensFile": tokensFile, "secretsKeyFile": secretsKeyFile,
            "dbPasswordFile": dbPasswordFile, "tlsCertFile": tlsCertFile, "tlsKeyFile": tlsKeyFile,
            "logLevel": logLevel, "requestTimeoutSeconds": requestTimeoutSeconds, "maxConnections": maxConnections,
            "allowExecCommand": allowExecCommand.isEmpty ? nil : allowExecCommand.joined(separator: ","),
        ]
        try settings.apply(flags.compactMapValues { $0 }, from: .commandLine)
        try settings.checkResolved(environment: environment)
        return settings
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let settings: ServeSettings
        let password: String?
        let certificate: ServerCertificate?
        let secretBox: SecretBox
        do {
            settings = try self.settings(environment: environment)
            password = try settings.databasePassword(environment: environment)
            certificate = try settings.tlsCertFile.map {
                try ServerCertificate(certificateFile: $0, keyFile: settings.tlsKeyFile!)
            }
            secretBox = try SecretBox(key: try SecretsKeyFile.load(from: settings.secretsKeyFile))
        } catch let error as ConvergeError {
            // One line a user can act on, and the usage-error status `converge validate` uses too.
            FileHandle.standardError.write(line: "converge serve: \(error.message)")
            throw ExitCode(2)
        }
        let level = Logger.Level(rawValue: settings.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "converge")
        // A write past the file size limit (`ulimit -f`) fails with EFBIG, which the store reports as it reports a
        // full disk (and `/readyz` with it), instead of the signal killing the daemon.
        signal(SIGXFSZ, SIG_IGN)
        let metrics = DaemonMetrics(version: convergeVersion)
        MetricsSystem.bootstrap(metrics.factory)

        let store = try await Self.openStore(settings.storeLocation, password: password, logger: logger)
        let manifestsURL = URL(fileURLWithPath: settings.manifests, isDirectory: true).standardizedFileURL
        var configuration = settings.engineConfiguration(manifests: manifestsURL)
        configuration.secretBox = secretBox
        configuration.version = convergeVersion
        let webhookSettings = settings.webhookSettings
        let cloudSettings = settings.cloudSettings
        let engine = try await Engine(
            configuration: configuration, store: store, clock: SystemClock(),
            makeProvisioner: { [webhookSettings, cloudSettings] declared in
                if let webhook = declared.webhook {
                    return WebhookProvisioner(webhook, settings: webhookSettings, logger: logger)
                }
                if let cloud = declared.cloud {
                    return CloudProvisioner(cloud, settings: cloudSettings, logger: logger)
                }
                // Commands and their working directory are relative to the manifests directory, so a repository
                // can ship its own scripts.
                var exec = declared.exec!
                exec.workingDirectory =
                    URL(fileURLWithPath: exec.workingDirectory ?? ".", relativeTo: manifestsURL).path
                return ExecProvisioner(exec, logger: logger)
            }, logger: logger)
        let gitSecret = settings.gitWebhookSecretEnv.flatMap { environment[$0] }.map { Array($0.utf8) }
        let server = ConvergeServer(
            engine: engine, store: store, metrics: metrics, gitWebhookSecret: gitSecret,
            tokens: TokensFile(path: settings.tokensFile), settings: settings.serverSettings, logger: logger)
        let application = try server.application(
            host: settings.listenHost, port: settings.listenPort, certificate: certificate
        ) { port in
            logger.info("listening", metadata: ["http.address": "\(settings.listenHost):\(port)"])
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [store] + engine.services + [
                    ReloadOnHangup(manifests: engine.manifests, certificate: certificate, logger: logger), application,
                ],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        logger.info(
            "converge serve starting",
            metadata: [
                "manifests": "\(settings.manifests)", "store": "\(ServeSettings.redacted(settings.database))",
                "lease.owner": "\(configuration.owner)",
            ])
        try await group.run()
    }
}

extension Serve {
    /// Opens the store the settings name, migrated. A SQLite file is one daemon's (a second exits); a PostgreSQL
    /// database takes several daemons, and one migrated by a newer converge is refused with the usage-error status.
    static func openStore(_ location: ServeSettings.StoreLocation, password: String?, logger: Logger) async throws
        -> any Store & Service
    {
        switch location {
        case .sqlite(let path):
            // One daemon per SQLite file, however it is named: a second would run a concurrency limit of its own on
            // the same deployments. The lock is held until the process exits; it is taken before SQLite opens the
            // file.
            _ = try DaemonLock(databasePath: path, holder: DaemonLock.processDescription)
            return try SQLiteStore(path: path, logger: logger)
        case .postgres(let url):
            let store = try PostgresStore(url: url, password: password, logger: logger)
            do {
                try await store.migrate()
            } catch let error as ConvergeError where error.code == .failedPrecondition {
                FileHandle.standardError.write(line: "converge serve: \(error.message)")
                throw ExitCode(2)
            }
            return store
        }
    }
}

/// Re-reads the manifests, and the TLS certificate and key, on SIGHUP.
struct ReloadOnHangup: Service {
    let manifests: ManifestSource
    let certificate: ServerCertificate?
    let logger: Logger

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            for await _ in await UnixSignalsSequence(trapping: .sighup) {
                manifests.requestSync()
                guard let certificate else { continue }
                do {
                    try certificate.reload()
                    logger.info(
                        "TLS certificate reloaded", metadata: ["tls.certificate": "\(certificate.certificateFile)"])
                } catch {
                    logger.error(
                        "TLS certificate not reloaded; the one in force stays", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
