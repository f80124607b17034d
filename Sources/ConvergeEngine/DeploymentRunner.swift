import ConvergeCore
import ConvergeStore
import Foundation
import Logging
import Metrics

/// Makes the provisioner for a declared provisioner.
public typealias ProvisionerFactory = @Sendable (Provisioner) -> any DeploymentProvisioner

/// A RUNNING deployment ready to send: its provisioner, the job, and when the provisioner's time is up.
struct PreparedDeployment: Sendable {
    var provisioner: any DeploymentProvisioner
    var job: ProvisionJob
    /// The first start plus the provisioner's timeout: past it, the deployment fails without a verdict.
    var deadline: Date
    var timeoutSeconds: Int
    /// Redacts what the provisioner says of the values it was sent: the instance's secrets and the sensitive outputs
    /// of its connections.
    var redactor: SecretRedactor
}

/// Hands RUNNING deployments to their provisioners and records how they ended, fenced by the lease it holds;
/// shared by the dispatcher (first sends and resumed ones) and the provisioner callbacks.
struct DeploymentRunner: Sendable {
    let store: any DesiredStateStore & DeploymentStore & DispatchStore & ChangeFeed
    let manifests: ManifestSource
    /// The instances' secrets: opened at dispatch for the job, and redacted from everything recorded of a deployment.
    let secrets: InstanceSecrets
    let makeProvisioner: ProvisionerFactory
    let callbackBaseURL: String?
    let tokens: CallbackToken
    let queue: WorkQueue<String>
    let clock: any EngineClock
    let logger: Logger

    /// The provisioner and job of a deployment, or why it cannot be sent.
    func prepare(_ deployment: Deployment) async throws -> PreparedDeployment {
        guard let state = manifests.current?.state else {
            throw ConvergeError(.failedPrecondition, "no manifests are loaded")
        }
        let record = try await store.instance(deployment.instanceID)
        guard let bundle = state.bundles[record.bundle] else {
            throw ConvergeError(.failedPrecondition, "bundle \(record.bundle) is not declared in the manifests")
        }
        guard let declared = state.provisioners[bundle.provisioner] else {
            throw ConvergeError(
                .failedPrecondition, "provisioner \(bundle.provisioner) is not declared in the manifests")
        }
        let timeout = declared.timeoutSeconds
        let deadline = (deployment.startedAt ?? clock.now).addingTimeInterval(TimeInterval(timeout))
        let callback = callbackBaseURL.map { base in
            ProvisionJob.Callback(
                url: "\(base)/v1/deployments/\(deployment.id)/events",
                token: tokens.token(deploymentID: deployment.id, attempt: deployment.attempt))
        }
        // A first send has the provisioner's whole timeout; a resumed one what is left of it.
        let resumed = (deployment.lease?.epoch ?? 1) > 1
        // Secrets are read fresh for every send (never snapshotted): a value set after the deployment was created is
        // the one the provisioner gets. Sensitive outputs of its connections are snapshotted sealed, and opened only
        // for the job.
        let values = try await secrets.values(of: deployment.instanceID)
        let connectionParams = try secrets.openingSealed(deployment.snapshot.connectionParams)
        var sent = deployment
        sent.snapshot.connectionParams = connectionParams.value
        let job = ProvisionJob(
            deployment: sent, artifacts: bundle.artifacts, secrets: values, callback: callback,
            timeLimit: resumed ? deadline.timeIntervalSince(clock.now) : nil, cloudResource: bundle.cloudResource)
        return PreparedDeployment(
            provisioner: makeProvisioner(declared), job: job, deadline: deadline, timeoutSeconds: timeout,
            redactor: SecretRedactor(Array(values.values) + connectionParams.opened))
    }

    /// What the provisioner says of `job`, its events appended to the deployment's log; a thrown error is a failure.
    /// Nil when the call was cancelled (the lease was lost, or the daemon is stopping): nothing is to be recorded.
    func call(_ prepared: PreparedDeployment) async -> ProvisionOutcome? {
        let (provisioner, job, redactor) = (prepared.provisioner, prepared.job, prepared.redactor)
        let id = job.deployment.id
        let started = DispatchTime.now()
        defer {
            Timer(label: MetricFamily.dispatchDuration.name, preferredDisplayUnit: .seconds)
                .recordInterval(since: started)
        }
        // What the provisioner says is redacted of the values it was sent; `record` redacts the current ones too.
        do {
            let outcome = try await provisioner.provision(job) { [store] events in
                try? await store.appendEvents(events.map(redactor.redact), to: id)
            }
            return Task.isCancelled ? nil : redactor.redact(outcome)
        } catch {
            if error is CancellationError || Task.isCancelled { return nil }
            return .failed(redactor.redact("provisioner error: \(error)"))
        }
    }

    /// Appends events to a deployment's log with the values its provisioner may echo redacted: the one way
    /// callbacks record what a provisioner reports.
    func appendRedacted(_ events: [DeploymentEventDraft], of deployment: Deployment) async throws {
        let redactor = await redactor(for: deployment)
        try await store.appendEvents(events.map(redactor.redact), to: deployment.id)
    }

    /// A redactor of the values a deployment's provisioner may echo: its instance's current secret values and the
    /// sensitive outputs of its connections. When they cannot be read, one that redacts everything, so that nothing
    /// recorded can hold a value.
    func redactor(for deployment: Deployment) async -> SecretRedactor {
        do {
            return try await secrets.redactor(
                for: deployment.instanceID,
                alsoRedacting: try secrets.openingSealed(deployment.snapshot.connectionParams).opened)
        } catch {
            logger.warning(
                "cannot read the instance's secrets to redact what is recorded; recording it redacted whole",
                metadata: ["instance.id": "\(deployment.instanceID)", "error": "\(error)"])
            return .everything
        }
    }

    /// Records how a provisioner call ended, as the holder of `lease`; returns whether the deployment ended (an
    /// accepted call stays RUNNING until its callbacks end it, and a lost lease records nothing).
    @discardableResult
    func record(_ unredacted: ProvisionOutcome, of deployment: Deployment, lease: Deployment.Lease) async -> Bool {
        // Whatever path the outcome came by (an answer, a callback, an exec line, a cloud driver), the store never
        // sees a secret value in its outputs, plan result or error, nor a sensitive output unsealed.
        let outcome = await redactor(for: deployment).redact(sealingSensitive(unredacted))
        let metadata: Logger.Metadata = [
            "deployment.id": "\(deployment.id)", "instance.id": "\(deployment.instanceID)",
            "lease.epoch": "\(lease.epoch)",
        ]
        do {
            switch outcome {
            case .completed(let outputs, let planResult):
                _ = try await retryingTransient {
                    try await store.complete(
                        deployment.id, owner: lease.owner, epoch: lease.epoch, outputs: outputs,
                        planResult: planResult)
                }
                logger.info("deployment completed", metadata: metadata)
            case .failed(let error):
                Counter(
                    label: MetricFamily.provisionerErrors.name,
                    dimensions: [("kind", ProvisionerErrorKind(error: error).rawValue)]
                ).increment()
                _ = try await retryingTransient {
                    try await store.fail(deployment.id, owner: lease.owner, epoch: lease.epoch, error: error)
                }
                logger.info("deployment failed", metadata: metadata.merging(["error": "\(error)"]) { $1 })
            case .accepted:
                try? await store.appendEvents(
                    [DeploymentEventDraft(kind: .phase, message: "accepted; waiting for the provisioner's callbacks")],
                    to: deployment.id)
                return false
            }
        } catch {
            // Aborted meanwhile, or the lease was taken over: the deployment is someone else's to end.
            logger.info("deployment outcome not recorded", metadata: metadata.merging(["error": "\(error)"]) { $1 })
            return true
        }
        await requeue(after: deployment)
        return true
    }

    /// `outcome` with the values its provisioner marked sensitive (in its outputs, or its plan result) sealed;
    /// failed when they cannot be (no key).
    private func sealingSensitive(_ outcome: ProvisionOutcome) -> ProvisionOutcome {
        guard case .completed(let outputs, let planResult) = outcome else { return outcome }
        do {
            return .completed(
                outputs: try secrets.sealingSensitive(outputs), planResult: try planResult.map(secrets.sealingSensitive)
            )
        } catch {
            return .failed("cannot store the provisioner's sensitive outputs: \(error)")
        }
    }

    /// Runs a store write again while the database is busy (`aborted`), a few times with a short backoff, and while
    /// it is unreachable, for up to `unreachableRetry` with a backoff capped at a second: an outcome the provisioner
    /// gave is recorded once the database is back (under the lease it was given, if nobody took it over meanwhile),
    /// rather than lost and the deployment sent again.
    private func retryingTransient<T: Sendable>(_ write: () async throws -> T) async throws -> T {
        var delay = Duration.milliseconds(20)
        var busy = 0
        let giveUp = ContinuousClock.now + Self.unreachableRetry
        while true {
            do {
                return try await write()
            } catch let error as ConvergeError
                where (error.code == .aborted && busy < 5)
                || (error.details?["reason"] == "unreachable" && ContinuousClock.now < giveUp)
            {
                if error.code == .aborted { busy += 1 }
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(1))
            }
        }
    }

    /// How long an outcome waits for an unreachable database.
    static let unreachableRetry = Duration.seconds(300)

    /// Reconciles the instance of a finished deployment and everything connected downstream of it.
    func requeue(after deployment: Deployment) async {
        let downstream = manifests.current?.downstream[deployment.instanceID] ?? []
        await queue.add([deployment.instanceID] + downstream)
    }
}
