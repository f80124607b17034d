import ConvergeCore
import ConvergeStore
import Foundation
import Logging
import Metrics

/// Makes the provisioner for a declared provisioner; `canProbe` says whether resending an attempt asks for its
/// status (a webhook honouring idempotency keys does; a local command does not).
public typealias ProvisionerFactory =
    @Sendable (Provisioner) -> (provisioner: any DeploymentProvisioner, canProbe: Bool)

/// Hands one RUNNING deployment to its provisioner and records how it ended; shared by the dispatcher (first
/// sends) and the lease monitor (probes after an expired lease).
struct DeploymentRunner: Sendable {
    let store: any Store
    let manifests: ManifestSource
    let makeProvisioner: ProvisionerFactory
    let callbackBaseURL: String?
    let tokens: CallbackToken
    let queue: WorkQueue<String>
    let logger: Logger

    /// The provisioner and job of a deployment, or why it cannot be sent.
    func prepare(_ deployment: Deployment) async throws -> (
        provisioner: any DeploymentProvisioner, canProbe: Bool, job: ProvisionJob
    ) {
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
        let (provisioner, canProbe) = makeProvisioner(declared)
        let callback = callbackBaseURL.map { base in
            ProvisionJob.Callback(
                url: "\(base)/v1/deployments/\(deployment.id)/events",
                token: tokens.token(deploymentID: deployment.id, attempt: deployment.attempt))
        }
        let job = ProvisionJob(deployment: deployment, artifacts: bundle.artifacts, secrets: [:], callback: callback)
        return (provisioner, canProbe, job)
    }

    /// Calls the provisioner for `job` as lease holder `owner`, and records the outcome; returns it.
    func send(_ job: ProvisionJob, to provisioner: any DeploymentProvisioner, owner: String) async -> ProvisionOutcome {
        let started = DispatchTime.now()
        let outcome = await call(provisioner, with: job)
        Timer(label: "converge_dispatch_duration_seconds", preferredDisplayUnit: .seconds)
            .recordInterval(since: started)
        await record(outcome, of: job.deployment, owner: owner)
        return outcome
    }

    /// What the provisioner says of `job`, its events appended to the deployment's log; a thrown error is a failure.
    func call(_ provisioner: any DeploymentProvisioner, with job: ProvisionJob) async -> ProvisionOutcome {
        let id = job.deployment.id
        do {
            return try await provisioner.provision(job) { [store] events in
                try? await store.appendEvents(events, to: id)
            }
        } catch {
            return .failed("provisioner error: \(error)")
        }
    }

    /// Records how a provisioner call ended; an accepted call stays RUNNING until its callbacks end it.
    func record(_ outcome: ProvisionOutcome, of deployment: Deployment, owner: String) async {
        let metadata: Logger.Metadata = [
            "deployment.id": "\(deployment.id)", "instance.id": "\(deployment.instanceID)",
        ]
        do {
            switch outcome {
            case .completed(let outputs, let planResult):
                _ = try await store.complete(deployment.id, owner: owner, outputs: outputs, planResult: planResult)
                logger.info("deployment completed", metadata: metadata)
            case .failed(let error):
                Counter(label: "converge_provisioner_errors_total", dimensions: [("kind", Self.kind(of: error))])
                    .increment()
                _ = try await store.fail(deployment.id, owner: owner, error: error)
                logger.info("deployment failed", metadata: metadata.merging(["error": "\(error)"]) { $1 })
            case .accepted:
                try await store.appendEvents(
                    [DeploymentEventDraft(kind: .phase, message: "accepted; waiting for the provisioner's callbacks")],
                    to: deployment.id)
                return
            }
        } catch {
            // Aborted meanwhile, or the lease moved on: the deployment is someone else's to end.
            logger.info("deployment outcome not recorded", metadata: metadata.merging(["error": "\(error)"]) { $1 })
        }
        await requeue(after: deployment)
    }

    /// Reconciles the instance of a finished deployment and everything connected downstream of it.
    func requeue(after deployment: Deployment) async {
        let downstream = manifests.current?.state.downstream(of: deployment.instanceID) ?? []
        await queue.add([deployment.instanceID] + downstream)
    }

    /// A coarse kind of provisioner error, for the metrics.
    static func kind(of error: String) -> String {
        if error.contains("timed out") || error.contains("no response within") { return "timeout" }
        if error.hasPrefix("connection failed") { return "connection" }
        if error.hasPrefix("the provisioner answered") { return "http" }
        return "provisioner"
    }
}
