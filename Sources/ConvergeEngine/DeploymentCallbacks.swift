import ConvergeCore
import ConvergeStore
import Foundation
import Logging

/// A report from an asynchronous provisioner about one deployment attempt.
public struct CallbackReport: Sendable, Equatable {
    /// What the report says.
    public enum Kind: String, Sendable, CaseIterable {
        case log
        case phase
        case heartbeat
        case completed
        case failed
    }

    public var kind: Kind
    public var attempt: Int
    public var message: String?
    public var outputs: Value?
    public var planResult: Value?
    public var error: String?

    /// Reads a report body: `{"type": "log"|"phase"|"heartbeat"|"completed"|"failed", "attempt": 1, "message",
    /// "outputs", "planResult", "error"}`.
    public init(json: Value) throws {
        guard let type = json["type"]?.stringValue, let kind = Kind(rawValue: type) else {
            let allowed = Kind.allCases.map(\.rawValue).joined(separator: ", ")
            throw ConvergeError(.invalidArgument, "type must be one of \(allowed)")
        }
        guard case .int(let attempt)? = json["attempt"] else {
            throw ConvergeError(.invalidArgument, "attempt must be the attempt number the request carried")
        }
        self.kind = kind
        self.attempt = attempt
        self.message = json["message"]?.stringValue
        self.outputs = json["outputs"]
        self.planResult = json["planResult"]
        self.error = json["error"]?.stringValue
    }
}

/// Applies provisioner callbacks (DESIGN §5). A callback with a wrong token, for another deployment or attempt,
/// or after the deployment ended is refused and changes nothing. A verdict is recorded under the deployment's current
/// lease, whichever daemon holds it, and wakes the dispatcher waiting for it.
public struct DeploymentCallbacks: Sendable {
    let store: any DeploymentStore & DispatchStore
    let tokens: CallbackToken
    let leaseDuration: TimeInterval
    let runner: DeploymentRunner
    let dispatcher: Dispatcher

    /// Whether `token` is the callback token of attempt `attempt` of deployment `id`; checked before a body is read.
    public func isValid(_ token: String, deploymentID id: String, attempt: Int) -> Bool {
        tokens.isValid(token, deploymentID: id, attempt: attempt)
    }

    /// Applies `report` about deployment `id`, presented with `token`.
    public func handle(_ report: CallbackReport, deploymentID id: String, token: String) async throws {
        guard tokens.isValid(token, deploymentID: id, attempt: report.attempt) else {
            throw ConvergeError(.permissionDenied, "the callback token is not valid for deployment \(id)")
        }
        let deployment = try await store.deployment(id)
        guard deployment.status == .running, deployment.attempt == report.attempt, let lease = deployment.lease else {
            throw ConvergeError(
                .failedPrecondition,
                "deployment \(id) attempt \(report.attempt) is not running (it is \(deployment.status.rawValue), attempt \(deployment.attempt))"
            )
        }
        switch report.kind {
        case .log, .phase:
            let kind: DeploymentEventDraft.Kind = report.kind == .log ? .log : .phase
            try await runner.appendRedacted(
                [DeploymentEventDraft(kind: kind, message: report.message ?? "")], of: deployment)
        case .heartbeat:
            _ = try await store.renewLease(
                id, owner: lease.owner, epoch: lease.epoch, leaseDuration: leaseDuration)
        case .completed:
            await runner.record(
                .completed(outputs: report.outputs ?? [:], planResult: report.planResult), of: deployment,
                lease: lease)
            dispatcher.callbackEnded(id)
        case .failed:
            await runner.record(
                .failed(report.error ?? "the provisioner reported a failure"), of: deployment, lease: lease)
            dispatcher.callbackEnded(id)
        }
    }
}
