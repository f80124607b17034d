import ConvergeCore
import Foundation
import Logging

/// Applies deployments by calling a cloud provider's API itself (DESIGN §5): the driver of the bundle's
/// `spec.cloud.resource` provisions, plans or decommissions one object, through `AWSClient`.
///
/// Credentials are the instance's secrets named as the provisioner's `credentials` say, else the daemon's variables of
/// those names; they are never logged nor written to events. A provision's outputs are the object's data under each
/// of the bundle's artifacts; a plan's result is `{"changes": [{path, before, after}], "exists": Bool}`, which reports
/// changes as drift checks read it. An AWS error answer fails the deployment with its code and message.
public struct CloudProvisioner: DeploymentProvisioner {
    let cloud: Provisioner.Cloud
    let settings: AWSClient.Settings
    let drivers: [String: any CloudResourceDriver]
    let environment: @Sendable (String) -> String?
    let logger: Logger

    public init(
        _ cloud: Provisioner.Cloud, settings: AWSClient.Settings,
        drivers: [String: any CloudResourceDriver] = CloudDrivers.all,
        logger: Logger,
        environment: @escaping @Sendable (String) -> String? = { ProcessInfo.processInfo.environment[$0] }
    ) {
        self.cloud = cloud
        self.settings = settings
        self.drivers = drivers
        self.environment = environment
        self.logger = logger
    }

    public func provision(
        _ job: ProvisionJob, events: @escaping @Sendable ([DeploymentEventDraft]) async -> Void
    ) async throws -> ProvisionOutcome {
        guard cloud.provider == "aws" else { return .failed("cloud provider \(cloud.provider) has no drivers") }
        guard let resource = job.cloudResource, let driver = drivers[resource] else {
            return .failed("the bundle names no cloud resource this daemon drives (\(job.cloudResource ?? "none"))")
        }
        let names = cloud.credentials
        func credential(_ name: String) -> String? {
            (job.secrets[name] ?? environment(name)).flatMap { $0.isEmpty ? nil : $0 }
        }
        guard let key = credential(names.accessKeyID), let secret = credential(names.secretAccessKey) else {
            return .failed(
                "no AWS credentials: set \(names.accessKeyID) and \(names.secretAccessKey) in the daemon's environment "
                    + "or as the instance's secrets")
        }
        let limit = min(TimeInterval(cloud.timeoutSeconds), job.timeLimit ?? .infinity)
        guard limit > 0 else { return .timeLimitPassed }
        let client = AWSClient(
            region: cloud.region, endpoint: cloud.endpoint,
            credentials: AWSCredentials(
                accessKeyID: key, secretAccessKey: secret, sessionToken: credential(names.sessionToken)),
            settings: settings, deadline: .now + .milliseconds(Int64(limit * 1000)))
        let deployment = job.deployment
        let context = CloudContext(
            instance: deployment.instanceID, params: deployment.snapshot.params, client: client,
            log: { line in await events([DeploymentEventDraft(kind: .log, message: line)]) })
        let action = deployment.snapshot.action
        await events([
            DeploymentEventDraft(
                kind: .phase,
                message: "\(action.rawValue) \(resource) in \(cloud.region)"
                    + (cloud.endpoint.map { " at \($0)" } ?? ""))
        ])
        do {
            switch action {
            case .provision:
                let data = try await driver.provision(context)
                return .completed(outputs: .object(job.artifacts.mapValues { _ in data }), planResult: nil)
            case .plan:
                let changes = try await driver.plan(context)
                let exists = !changes.contains { $0.path.isEmpty && $0.before == nil }
                await context.log("plan: \(changes.count) change(s)")
                return .completed(
                    outputs: [:],
                    planResult: [
                        "exists": .bool(exists),
                        "changes": .array(
                            changes.map { change in
                                var members: [String: Value] = ["path": .string(change.path)]
                                members["before"] = change.before
                                members["after"] = change.after
                                return .object(members)
                            }),
                    ])
            case .decommission:
                try await driver.decommission(context)
                return .completed(outputs: [:], planResult: nil)
            }
        } catch let error as AWSError {
            logger.info(
                "cloud call failed",
                metadata: [
                    "deployment.id": "\(deployment.id)", "aws.code": "\(error.code)", "http.status": "\(error.status)",
                ])
            return .failed(error.description)
        } catch let error as CloudError {
            return .failed(error.description)
        }
    }
}
