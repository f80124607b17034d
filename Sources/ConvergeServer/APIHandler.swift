import ConvergeAPI
import ConvergeCore
import ConvergeEngine
import ConvergeStore
import Crypto
import Foundation
import HTTPTypes
import OpenAPIRuntime

/// The operations of `openapi.yaml`, each a thin translation between the generated types and the engine or the
/// store, which own every decision. Authentication and the body cap happen before any of them
/// (`AuthenticationMiddleware`); errors are thrown as `ConvergeError`s and shaped by `APIErrorMiddleware`.
struct APIHandler: APIProtocol {
    let server: ConvergeServer

    var store: any Store { server.store }
    var engine: Engine { server.engine }

    // MARK: daemon

    func getHealth(_ input: Operations.GetHealth.Input) async throws -> Operations.GetHealth.Output {
        .ok(.init(body: .json(.init(status: "ok"))))
    }

    func getVersion(_ input: Operations.GetVersion.Input) async throws -> Operations.GetVersion.Output {
        .ok(.init(body: .json(.init(version: convergeVersion))))
    }

    func getReadiness(_ input: Operations.GetReadiness.Input) async throws -> Operations.GetReadiness.Output {
        let (serving, ready, checks) = await server.readiness()
        let body = Components.Schemas.Readiness(ready: ready, serving: serving, checks: checks.container)
        return serving ? .ok(.init(body: .json(body))) : .serviceUnavailable(.init(body: .json(body)))
    }

    func getMetrics(_ input: Operations.GetMetrics.Input) async throws -> Operations.GetMetrics.Output {
        .ok(.init(body: .plainText(HTTPBody(await server.prometheusText()))))
    }

    func headHealth(_ input: Operations.HeadHealth.Input) async throws -> Operations.HeadHealth.Output {
        .ok(.init())
    }

    func headReadiness(_ input: Operations.HeadReadiness.Input) async throws -> Operations.HeadReadiness.Output {
        await server.readiness().ready ? .ok(.init()) : .serviceUnavailable(.init())
    }

    func headMetrics(_ input: Operations.HeadMetrics.Input) async throws -> Operations.HeadMetrics.Output {
        .ok(.init())
    }

    func requestSync(_ input: Operations.RequestSync.Input) async throws -> Operations.RequestSync.Output {
        engine.manifests.requestSync()
        return .accepted(.init(body: .json(.init(status: "sync requested"))))
    }

    func receiveGitPush(_ input: Operations.ReceiveGitPush.Input) async throws -> Operations.ReceiveGitPush.Output {
        guard let secret = server.gitWebhookSecret else {
            throw ConvergeError(.failedPrecondition, "the git push webhook is not configured")
        }
        guard case .any(let body) = input.body else { throw ConvergeError(.invalidArgument, "body: required") }
        // The middleware read the body whole under the cap; this collects what it kept.
        let payload = try await [UInt8](collecting: body, upTo: ConvergeServer.maxBodyBytes)
        let signature = input.headers.xHubSignature256 ?? ""
        guard signature.hasPrefix("sha256="), let mac = [UInt8](hex: String(signature.dropFirst(7))), mac.count == 32,
            HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: payload, using: SymmetricKey(data: secret))
        else {
            throw ConvergeError(.unauthenticated, "the X-Hub-Signature-256 header does not match the payload")
        }
        engine.manifests.requestSync()
        return .accepted(.init(body: .json(.init(status: "sync requested"))))
    }

    func getPrincipal(_ input: Operations.GetPrincipal.Input) async throws -> Operations.GetPrincipal.Output {
        let principal = try RequestPrincipal.required()
        return .ok(.init(body: .json(.init(name: principal.name, role: .init(principal.role)))))
    }

    // MARK: resources and instances

    func listResources(_ input: Operations.ListResources.Input) async throws -> Operations.ListResources.Output {
        let page = try await store.resources(
            of: ResourceKind(input.path.kind), labels: try Self.labelSelector(input.query.labelSelector),
            after: input.query.cursor, limit: input.query.limit ?? 50)
        return .ok(
            .init(
                body: .json(.init(items: page.items.map(Components.Schemas.Resource.init), nextCursor: page.nextCursor))
            ))
    }

    func getResource(_ input: Operations.GetResource.Input) async throws -> Operations.GetResource.Output {
        let resource = try await store.resource(ResourceKey(ResourceKind(input.path.kind), input.path.id))
        return .ok(.init(body: .json(.init(resource))))
    }

    func listInstances(_ input: Operations.ListInstances.Input) async throws -> Operations.ListInstances.Output {
        let page = try await store.instances(
            environment: try await environmentID(input.query.environment), drifted: input.query.drifted,
            labels: try Self.labelSelector(input.query.labelSelector), after: input.query.cursor,
            limit: input.query.limit ?? 50)
        return .ok(
            .init(
                body: .json(.init(items: try await instanceViews(page.items), nextCursor: page.nextCursor))
            ))
    }

    func getInstance(_ input: Operations.GetInstance.Input) async throws -> Operations.GetInstance.Output {
        .ok(.init(body: .json(try await instanceView(store.instance(input.path.id, details: true)))))
    }

    /// The `labelSelector` parameter, parsed; a malformed one is `invalid_argument` naming it.
    static func labelSelector(_ text: String?) throws -> LabelSelector? {
        guard let text else { return nil }
        do {
            return try LabelSelector(parsing: text)
        } catch {
            var details = error.details?.objectValue ?? [:]
            details["field"] = "labelSelector"
            throw ConvergeError(error.code, "labelSelector: \(error.message)", details: .object(details))
        }
    }

    // MARK: deployments

    func createDeployment(_ input: Operations.CreateDeployment.Input) async throws
        -> Operations.CreateDeployment.Output
    {
        guard case .json(let body) = input.body else { throw ConvergeError(.invalidArgument, "body: required") }
        let creation = try await engine.reconciler.requestDeployment(
            of: input.path.id, action: body.action.map(Deployment.Action.init) ?? .provision,
            mode: body.mode.map { $0 == .direct ? .direct : .proposal }, actor: try RequestPrincipal.required().name)
        let deployment = Components.Schemas.Deployment(creation.deployment)
        return creation.created ? .created(.init(body: .json(deployment))) : .ok(.init(body: .json(deployment)))
    }

    func rollbackInstance(_ input: Operations.RollbackInstance.Input) async throws
        -> Operations.RollbackInstance.Output
    {
        guard case .json(let body) = input.body else { throw ConvergeError(.invalidArgument, "body: required") }
        let creation = try await engine.reconciler.requestRollback(
            of: input.path.id, to: body.to, actor: try RequestPrincipal.required().name)
        let deployment = Components.Schemas.Deployment(creation.deployment)
        return creation.created ? .created(.init(body: .json(deployment))) : .ok(.init(body: .json(deployment)))
    }

    func listDeployments(_ input: Operations.ListDeployments.Input) async throws -> Operations.ListDeployments.Output {
        let query = input.query
        var statuses: Set<Deployment.Status>?
        if let text = query.status {
            statuses = Set(
                try text.split(separator: ",").map { word in
                    guard let status = Deployment.Status(rawValue: word.uppercased()) else {
                        let known = Deployment.Status.allCases.map(\.rawValue).joined(separator: ", ")
                        throw ConvergeError(
                            .invalidArgument, "status: expected one of \(known), got \"\(word)\"",
                            details: ["field": "status"])
                    }
                    return status
                })
        }
        let filter = DeploymentFilter(
            instanceID: query.instance, environment: try await environmentID(query.environment), statuses: statuses,
            action: query.action.map(Deployment.Action.init), actor: query.actor)
        let page = try await store.listDeployments(filter, after: query.cursor, limit: query.limit ?? 50)
        return .ok(
            .init(
                body: .json(
                    .init(items: page.items.map(Components.Schemas.Deployment.init), nextCursor: page.nextCursor))))
    }

    func getDeployment(_ input: Operations.GetDeployment.Input) async throws -> Operations.GetDeployment.Output {
        .ok(.init(body: .json(.init(try await store.deployment(input.path.id)))))
    }

    func approveDeployment(_ input: Operations.ApproveDeployment.Input) async throws
        -> Operations.ApproveDeployment.Output
    {
        let step: Deployment.ApprovalStep? =
            if case .json(let body) = input.body { body.step.flatMap { .init(rawValue: $0.rawValue) } } else { nil }
        let approved = try await engine.reconciler.approve(
            input.path.id, by: try RequestPrincipal.required().approver, step: step)
        engine.dispatcher.wakeUp()
        await engine.queue.add([approved.instanceID])
        return .ok(.init(body: .json(.init(approved))))
    }

    func rejectDeployment(_ input: Operations.RejectDeployment.Input) async throws
        -> Operations.RejectDeployment.Output
    {
        let reason: String? = if case .json(let body) = input.body { body.reason } else { nil }
        let rejected = try await engine.reconciler.reject(
            input.path.id, by: try RequestPrincipal.required().approver, reason: reason)
        await engine.queue.add([rejected.instanceID])
        return .ok(.init(body: .json(.init(rejected))))
    }

    func abortDeployment(_ input: Operations.AbortDeployment.Input) async throws -> Operations.AbortDeployment.Output {
        let reason: String? = if case .json(let body) = input.body { body.reason } else { nil }
        let aborted = try await store.abort(input.path.id, actor: try RequestPrincipal.required().name, reason: reason)
        // A RUNNING deployment's provisioner call is stopped by the dispatcher when its next renewal finds the
        // deployment no longer RUNNING.
        engine.dispatcher.wakeUp()
        await engine.queue.add([aborted.instanceID])
        return .ok(.init(body: .json(.init(aborted))))
    }

    func planDeployment(_ input: Operations.PlanDeployment.Input) async throws -> Operations.PlanDeployment.Output {
        let creation = try await engine.reconciler.requestPlan(
            ofProposal: input.path.id, actor: try RequestPrincipal.required().name)
        let deployment = Components.Schemas.Deployment(creation.deployment)
        return creation.created ? .created(.init(body: .json(deployment))) : .ok(.init(body: .json(deployment)))
    }

    func listDeploymentEvents(_ input: Operations.ListDeploymentEvents.Input) async throws
        -> Operations.ListDeploymentEvents.Output
    {
        let id = input.path.id
        if input.query.follow == true {
            _ = try await store.deployment(id)
            let start = input.headers.lastEventID ?? input.query.cursor
            if let start, Int64(start) == nil {
                throw ConvergeError(.invalidArgument, "Last-Event-ID: expected an event sequence, got \"\(start)\"")
            }
            return .ok(.init(body: .textEventStream(server.eventStream(of: id, after: start))))
        }
        let page = try await store.events(of: id, after: input.query.cursor, limit: input.query.limit ?? 50)
        if page.items.isEmpty { _ = try await store.deployment(id) }
        return .ok(
            .init(
                body: .json(
                    .init(items: page.items.map(Components.Schemas.DeploymentEvent.init), nextCursor: page.nextCursor)))
        )
    }

    func reportDeploymentEvent(_ input: Operations.ReportDeploymentEvent.Input) async throws
        -> Operations.ReportDeploymentEvent.Output
    {
        guard case .json(let body) = input.body else { throw ConvergeError(.invalidArgument, "body: required") }
        var report: [String: Value] = ["type": .string(body._type.rawValue), "attempt": .int(body.attempt)]
        report["message"] = body.message.map { .string($0) }
        report["outputs"] = body.outputs.map { .object($0.additionalProperties.mapValues(Value.init)) }
        report["planResult"] = body.planResult.map(Value.init)
        report["error"] = body.error.map { .string($0) }
        // The middleware checked the token against the deployment; `handle` holds the report to its attempt.
        try await engine.callbacks.handle(
            try CallbackReport(json: .object(report)), deploymentID: input.path.id,
            token: RequestPrincipal.callbackToken ?? "")
        return .noContent(.init())
    }

    func compareDeployments(_ input: Operations.CompareDeployments.Input) async throws
        -> Operations.CompareDeployments.Output
    {
        let from = try await store.deployment(input.query.from)
        let to = try await store.deployment(input.query.to)
        let changes = from.comparable.changes(to: to.comparable)
        return .ok(
            .init(
                body: .json(
                    .init(
                        from: from.id, to: to.id,
                        changes: changes.map {
                            .init(path: $0.path, before: $0.before?.container, after: $0.after?.container)
                        }))))
    }

    func watchDeployments(_ input: Operations.WatchDeployments.Input) async throws
        -> Operations.WatchDeployments.Output
    {
        let after: Int64
        if let last = input.headers.lastEventID {
            guard let sequence = Int64(last), sequence >= 0 else {
                throw ConvergeError(.invalidArgument, "Last-Event-ID: expected a change sequence, got \"\(last)\"")
            }
            after = sequence
        } else {
            after = try await store.latestDeploymentChange()
        }
        return .ok(.init(body: .textEventStream(server.changeStream(after: after))))
    }

    func listAudit(_ input: Operations.ListAudit.Input) async throws -> Operations.ListAudit.Output {
        let query = input.query
        let page = try await store.auditLog(
            AuditFilter(
                actor: query.actor, action: query.action, targetKind: query.targetKind, targetID: query.targetId),
            after: query.cursor, limit: query.limit ?? 50)
        return .ok(
            .init(
                body: .json(
                    .init(items: page.items.map(Components.Schemas.AuditEntry.init), nextCursor: page.nextCursor))))
    }
}
