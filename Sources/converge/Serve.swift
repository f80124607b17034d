import ArgumentParser
import ConvergeCore
import ConvergeEngine
import ConvergeProvisioners
import ConvergeServer
import ConvergeStore
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import UnixSignals

/// `converge serve`: the daemon that keeps infrastructure converging on the manifests.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon: reconcile the manifests and dispatch deployments to provisioners.",
        discussion: """
            Every option can also be set with a CONVERGE_* variable (CONVERGE_MAX_CONCURRENT_DEPLOYMENTS) or in a \
            YAML config file (maxConcurrentDeployments: 4); options win over variables, variables over the file.
            """)

    @Option(help: "A YAML config file of settings.")
    var config: String?
    @Option(help: "The manifests directory (default .).")
    var manifests: String?
    @Option(name: .customLong("db"), help: "The store: sqlite:PATH (default sqlite:converge.sqlite).")
    var database: String?
    @Option(help: "The HTTP listen address HOST:PORT (default 127.0.0.1:8787).")
    var listen: String?
    @Option(help: "How many deployments run at once (default 4).")
    var maxConcurrentDeployments: Int?
    @Option(help: "Reconcile workers (default 2).")
    var workers: Int?
    @Option(help: "Seconds a deployment's lease lasts without a heartbeat (default 30).")
    var leaseSeconds: Int?
    @Option(help: "Seconds between reads of the manifests (default 10).")
    var pollSeconds: Int?
    @Option(help: "The daemon's URL as provisioners reach it, for callbacks (default http://LISTEN).")
    var callbackURL: String?
    @Option(help: "Comma-separated URL prefixes provisioners may be called at (default: loopback only).")
    var allowedProvisionerURLs: String?
    @Option(help: "The variable holding the secret of the git push webhook (off when unset).")
    var gitWebhookSecretEnv: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical (default info).")
    var logLevel: String?

    /// The settings with every layer applied.
    func settings(environment: [String: String]) throws -> ServeSettings {
        var settings = ServeSettings()
        if let config { try settings.apply(try ServeSettings.values(ofConfigFile: config), from: config) }
        try settings.apply(ServeSettings.values(ofEnvironment: environment), from: "environment")
        var flags: [String: String] = [:]
        flags["manifests"] = manifests
        flags["db"] = database
        flags["listen"] = listen
        flags["maxConcurrentDeployments"] = maxConcurrentDeployments.map(String.init)
        flags["workers"] = workers.map(String.init)
        flags["leaseSeconds"] = leaseSeconds.map(String.init)
        flags["pollSeconds"] = pollSeconds.map(String.init)
        flags["callbackURL"] = callbackURL
        flags["allowedProvisionerURLs"] = allowedProvisionerURLs
        flags["gitWebhookSecretEnv"] = gitWebhookSecretEnv
        flags["logLevel"] = logLevel
        try settings.apply(flags, from: "command line")
        return settings
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let settings: ServeSettings
        let path: String
        do {
            settings = try self.settings(environment: environment)
            path = try settings.sqlitePath
        } catch let error as ConvergeError {
            throw ValidationError(error.message)
        }
        let level = Logger.Level(rawValue: settings.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "converge")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

        let store = try SQLiteStore(path: path, logger: logger)
        let manifestsURL = URL(fileURLWithPath: settings.manifests, isDirectory: true).standardizedFileURL
        var configuration = EngineConfiguration(manifests: manifestsURL)
        configuration.workers = settings.workers
        configuration.maxConcurrentDeployments = settings.maxConcurrentDeployments
        configuration.leaseDuration = TimeInterval(settings.leaseSeconds)
        configuration.leaseCheckInterval = max(0.5, min(5, TimeInterval(settings.leaseSeconds) / 4))
        configuration.pollInterval = TimeInterval(settings.pollSeconds)
        configuration.resyncInterval = TimeInterval(settings.resyncSeconds)
        configuration.shutdownGracePeriod = .seconds(settings.shutdownGraceSeconds)
        configuration.avatarTemplate = settings.avatarURLTemplate
        let host = settings.listenHost.contains(":") ? "[\(settings.listenHost)]" : settings.listenHost
        configuration.callbackBaseURL = settings.callbackURL ?? "http://\(host):\(settings.listenPort)"
        var webhookSettings = WebhookProvisioner.Settings()
        webhookSettings.allowedURLPrefixes = settings.allowedProvisionerURLs
        let engine = try await Engine(
            configuration: configuration, store: store, clock: SystemClock(),
            makeProvisioner: { [webhookSettings] declared in
                if let webhook = declared.webhook {
                    return (WebhookProvisioner(webhook, settings: webhookSettings, logger: logger), true)
                }
                // Commands and their working directory are relative to the manifests directory, so a repository
                // can ship its own scripts.
                var exec = declared.exec!
                exec.workingDirectory =
                    URL(fileURLWithPath: exec.workingDirectory ?? ".", relativeTo: manifestsURL).path
                return (ExecProvisioner(exec, logger: logger), false)
            }, logger: logger)
        let gitSecret = settings.gitWebhookSecretEnv.flatMap { environment[$0] }.map { Array($0.utf8) }
        let server = ConvergeServer(
            engine: engine, store: store, metrics: registry, gitWebhookSecret: gitSecret, logger: logger)
        let application = server.application(host: settings.listenHost, port: settings.listenPort) { port in
            logger.info("listening", metadata: ["http.address": "\(settings.listenHost):\(port)"])
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [store] + engine.services + [ReloadOnHangup(manifests: engine.manifests), application],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        logger.info(
            "converge serve starting",
            metadata: [
                "manifests": "\(settings.manifests)", "store": "\(settings.database)",
                "lease.owner": "\(configuration.owner)",
            ])
        try await group.run()
    }
}

/// Re-reads the manifests on SIGHUP.
struct ReloadOnHangup: Service {
    let manifests: ManifestSource

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            for await _ in await UnixSignalsSequence(trapping: .sighup) { manifests.requestSync() }
        }
    }
}
