import ConvergeCore
import Foundation
import GRDB

extension SQLiteStore {
    static let openStatuses = "('PROPOSED', 'APPROVED', 'PENDING', 'RUNNING')"

    /// The head of every instance's queue whose instance has nothing RUNNING, oldest first; indexed throughout.
    static let claimSQL = """
        SELECT d.* FROM deployments AS d INDEXED BY deployments_queue_order
        WHERE d.status IN ('APPROVED', 'PENDING')
          AND NOT EXISTS (SELECT 1 FROM deployments AS q INDEXED BY deployments_queue
              WHERE q.instance_id = d.instance_id AND q.status IN ('APPROVED', 'PENDING') AND q.seq < d.seq)
          AND NOT EXISTS (SELECT 1 FROM deployments AS r INDEXED BY deployments_one_running
              WHERE r.instance_id = d.instance_id AND r.status = 'RUNNING')
        ORDER BY d.seq LIMIT ?
        """

    /// An instance's deployments before a sequence, newest first.
    static let historySQL = """
        SELECT * FROM deployments INDEXED BY deployments_history
        WHERE instance_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?
        """

    /// A deployment's events after a sequence, in order.
    static let eventsSQL = """
        SELECT * FROM deployment_events INDEXED BY deployment_events_by_deployment
        WHERE deployment_id = ? AND seq > ? ORDER BY seq LIMIT ?
        """

    /// RUNNING deployments whose lease expired before a time, except those whose ids are in a JSON array.
    static let expiredLeasesSQL = """
        SELECT * FROM deployments INDEXED BY deployments_leases
        WHERE status = 'RUNNING' AND lease_expires_at < ? AND id NOT IN (SELECT value FROM json_each(?))
        ORDER BY lease_expires_at LIMIT ?
        """

    /// Whether any lease expired before a time, except those of deployments whose ids are in a JSON array.
    static let anyExpiredSQL = """
        SELECT EXISTS (SELECT 1 FROM deployments INDEXED BY deployments_leases
            WHERE status = 'RUNNING' AND lease_expires_at < ? AND id NOT IN (SELECT value FROM json_each(?)))
        """

    /// Whether `claimSQL` would find anything.
    static let anyClaimableSQL =
        "SELECT EXISTS (\(claimSQL.replacingOccurrences(of: "ORDER BY d.seq LIMIT ?", with: "")))"

    /// An instance's newest deployments without their snapshots.
    static let recentSQL = """
        SELECT seq, id, action, status, desired_hash, created_by, error, finished_at, retry_of, rollback_of
        FROM deployments INDEXED BY deployments_recent
        WHERE instance_id = ? ORDER BY seq DESC LIMIT ?
        """

    public func createDeployment(_ request: DeploymentRequest) async throws -> DeploymentCreation {
        try request.checkMode()
        return try await transaction { db in
            let instance = try Self.fetchInstance(db, request.instanceID)
            if request.decidedAfter != nil {
                try request.checkDecided(
                    newest: try Int64.fetchOne(
                        db, sql: "SELECT COALESCE(MAX(seq), 0) FROM deployments WHERE instance_id = ?",
                        arguments: [instance.id])!)
            }
            if let planID = request.planID { try request.checkPlan(try Self.fetchDeployment(db, planID)) }
            let now = self.now
            let id = DeploymentID.make(now: date(now))
            var snapshot = request.snapshot
            snapshot.metadata = snapshot.metadata.merged(with: ["deploymentId": .string(id)])
            let status = request.initialStatus
            try db.run(
                sql: """
                    INSERT INTO deployments (id, instance_id, environment, action, params, connection_params, version,
                        md_metadata, desired_hash, status, created_by, proposed_by, created_at, updated_at, retry_of,
                        rollback_of, approval_step, plan_id)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (instance_id, desired_hash) WHERE status IN \(Self.openStatuses) DO NOTHING
                    """,
                arguments: [
                    id, instance.id, instance.environment, snapshot.action.rawValue, snapshot.params.canonicalJSON,
                    snapshot.connectionParams.canonicalJSON, snapshot.version, snapshot.metadata.canonicalJSON,
                    snapshot.desiredHash, status.rawValue, request.actor,
                    request.mode == .proposal ? request.actor : nil, now, now, request.retryOf, request.rollbackOf,
                    request.initialApprovalStep?.rawValue, request.planID,
                ])
            guard db.changesCount == 1 else {
                let existing = try Self.fetchDeployment(
                    db,
                    where: "instance_id = ? AND desired_hash = ? AND status IN \(Self.openStatuses)",
                    arguments: [instance.id, snapshot.desiredHash])
                return DeploymentCreation(deployment: existing!, created: false)
            }
            let deployment = try Self.fetchDeployment(db, id)
            if request.mode == .direct { try self.advanceInstance(db, to: deployment) }
            try self.record(db, deployment, kind: .status, message: request.creationMessage)
            try self.audit(
                db, actor: request.actor, action: "deployment.create", kind: "Deployment", id: id, before: nil,
                after: deployment.auditValue)
            return DeploymentCreation(deployment: deployment, created: true)
        }
    }

    public func approve(
        _ id: String, by approver: Approver, rule: ApproverRule?, step expected: Deployment.ApprovalStep?
    ) async throws -> Deployment {
        try await transaction { db in
            let deployment = try Self.fetchDeployment(db, id)
            let decision = try Self.decide(db, .approve(step: expected), of: deployment, by: approver, rule: rule)
            guard case .approve(let step, let next) = decision else { throw decision.refusal }
            try db.run(
                sql: "INSERT INTO deployment_approvals (deployment_id, step, principal, at) VALUES (?, ?, ?, ?)",
                arguments: [id, step.rawValue, approver.name, self.now])
            guard next != .approved else {
                let approved = try self.move(
                    db, deployment, to: .approved, actor: approver.name, set: ["approved_by": approver.name])
                try self.advanceInstance(db, to: approved)
                return approved
            }
            try db.run(
                sql: """
                    UPDATE deployments SET approval_step = 'apply', updated_at = ?
                    WHERE seq = ? AND status = 'PROPOSED' AND approval_step = 'plan'
                    """,
                arguments: [self.now, deployment.sequence])
            guard db.changesCount == 1 else {
                throw ConvergeError.deploymentChanged(id)
            }
            let moved = try Self.fetchDeployment(db, id)
            try self.record(db, moved, kind: .status, message: Deployment.planApprovedMessage(by: approver.name))
            try self.audit(
                db, actor: approver.name, action: "deployment.planApproved", kind: "Deployment", id: id,
                before: deployment.auditValue, after: moved.auditValue)
            return moved
        }
    }

    public func reject(_ id: String, by approver: Approver, rule: ApproverRule?, reason: String?) async throws
        -> Deployment
    {
        try await transaction { db in
            let deployment = try Self.fetchDeployment(db, id)
            let decision = try Self.decide(db, .reject, of: deployment, by: approver, rule: rule)
            guard case .reject = decision else { throw decision.refusal }
            return try self.move(
                db, deployment, to: .rejected, actor: approver.name, because: reason,
                set: ["error": reason, "finished_at": self.now])
        }
    }

    /// The approval rules' answer to `request`, with what they need read in the deciding transaction: the
    /// proposal's environment (copied onto it) and the newest deployment of its instance created after it that is neither REJECTED
    /// nor ABORTED nor a PLAN (one indexed read).
    private static func decide(
        _ db: Database, _ request: ApprovalDecision.Request, of deployment: Deployment, by approver: Approver,
        rule: ApproverRule?
    ) throws -> ApprovalDecision {
        let newer = try String.fetchOne(
            db,
            sql: """
                SELECT id FROM deployments INDEXED BY deployments_history
                WHERE instance_id = ? AND seq > ? AND status NOT IN ('REJECTED', 'ABORTED') AND action <> 'plan'
                ORDER BY seq DESC LIMIT 1
                """,
            arguments: [deployment.instanceID, deployment.sequence])
        let environment = try String.fetchOne(
            db, sql: "SELECT environment FROM deployments WHERE seq = ?", arguments: [deployment.sequence])
        return ApprovalDecision.decide(
            request, of: deployment, by: approver, in: environment ?? "", rule: rule, supersededBy: newer)
    }

    public func abort(_ id: String, actor: String, reason: String?) async throws -> Deployment {
        try await transaction { db in
            let deployment = try Self.fetchDeployment(db, id)
            return try self.move(
                db, deployment, to: .aborted, actor: actor, because: reason,
                set: ["error": reason ?? "aborted by \(actor)", "finished_at": self.now, "lease_expires_at": nil])
        }
    }

    public func claimNextDeployments(owner: String, leaseDuration: TimeInterval, limit: Int) async throws
        -> [Deployment]
    {
        try Paging.checkLimit(limit)
        // Most calls find nothing to claim: a read first keeps them from taking the write lock.
        guard try readInPlace({ db in try db.fetchValue(Bool.self, sql: Self.anyClaimableSQL) ?? false }) else {
            return []
        }
        return try await transaction { db in
            let heads = try Self.fetchDeployments(db, sql: Self.claimSQL, arguments: [limit])
            let now = self.now
            return try heads.map { head in
                try self.move(
                    db, head, to: .running, actor: owner,
                    set: [
                        "attempt": head.attempt + 1, "lease_owner": owner, "lease_epoch": head.leaseEpoch + 1,
                        "lease_expires_at": now + millis(leaseDuration), "started_at": now,
                    ])
            }
        }
    }

    public func takeOverExpiredLeases(
        owner: String, leaseDuration: TimeInterval, limit: Int, excluding applying: Set<String>
    ) async throws -> [Deployment] {
        try Paging.checkLimit(limit)
        let excluded = Value.array(applying.sorted().map(Value.string)).canonicalJSON
        let now = self.now
        guard
            try readInPlace({ db in
                try db.fetchValue(Bool.self, sql: Self.anyExpiredSQL, arguments: [now, excluded]) ?? false
            })
        else { return [] }
        return try await transaction { db in
            let now = self.now
            let expired = try Self.fetchDeployments(
                db, sql: Self.expiredLeasesSQL, arguments: [now, excluded, limit])
            return try expired.map { deployment in
                try db.run(
                    sql: """
                        UPDATE deployments SET lease_owner = ?, lease_epoch = lease_epoch + 1, lease_expires_at = ?,
                            updated_at = ?
                        WHERE seq = ? AND status = 'RUNNING' AND lease_epoch = ?
                        """,
                    arguments: [
                        owner, now + millis(leaseDuration), now, deployment.sequence, deployment.leaseEpoch,
                    ])
                let taken = try Self.fetchDeployment(db, deployment.id)
                try self.record(db, taken, kind: .phase, message: deployment.takeOverMessage(by: owner))
                try self.audit(
                    db, actor: owner, action: "deployment.takeOverLease", kind: "Deployment", id: deployment.id,
                    before: deployment.auditValue, after: taken.auditValue)
                return taken
            }
        }
    }

    public func renewLease(_ id: String, owner: String, epoch: Int64, leaseDuration: TimeInterval) async throws
        -> Deployment
    {
        try await transaction { db in
            let deployment = try self.leased(db, id, owner: owner, epoch: epoch)
            try db.run(
                sql: "UPDATE deployments SET lease_expires_at = ?, updated_at = ? WHERE seq = ?",
                arguments: [self.now + millis(leaseDuration), self.now, deployment.sequence])
            return try Self.fetchDeployment(db, id)
        }
    }

    public func complete(_ id: String, owner: String, epoch: Int64, outputs: Value, planResult: Value?) async throws
        -> Deployment
    {
        try await transaction { db in
            let deployment = try self.leased(db, id, owner: owner, epoch: epoch)
            return try self.finish(
                db, deployment, as: .completed, actor: owner,
                set: ["outputs": outputs.canonicalJSON, "plan_result": planResult?.canonicalJSON])
        }
    }

    public func fail(_ id: String, owner: String, epoch: Int64, error: String) async throws -> Deployment {
        try await transaction { db in
            let deployment = try self.leased(db, id, owner: owner, epoch: epoch)
            return try self.finish(db, deployment, as: .failed, actor: owner, because: error, set: ["error": error])
        }
    }

    public func deployment(_ id: String) async throws -> Deployment {
        try readInPlace { db in try Self.fetchDeployment(db, id) }
    }

    public func recentDeployments(of instanceID: String, limit: Int) async throws -> [DeploymentSummary] {
        try Paging.checkLimit(limit)
        return try readInPlace { db in try Self.fetchRecent(db, instanceID, limit: limit) }
    }

    public func reconcileInputs(
        of instanceID: String, upstream: [String], recentLimit: Int, includeConfiguration: Bool
    ) async throws -> ReconcileInputs {
        try Paging.checkLimit(recentLimit)
        return try readInPlace { db in
            var records: [String: InstanceRecord] = [:]
            for id in Set(upstream) where id != instanceID {
                records[id] = try Self.fetchInstanceIfAny(db, id, configuration: false)
            }
            return ReconcileInputs(
                record: try Self.fetchInstanceIfAny(
                    db, instanceID, configuration: includeConfiguration, outputs: false),
                upstream: records, recent: try Self.fetchRecent(db, instanceID, limit: recentLimit))
        }
    }

    static func fetchRecent(_ db: Database, _ instanceID: String, limit: Int) throws -> [DeploymentSummary] {
        try db.fetchRows(sql: recentSQL, arguments: [instanceID, limit]).map { row in
            DeploymentSummary(
                id: row["id"], sequence: row["seq"], action: Deployment.Action(rawValue: row["action"])!,
                status: Deployment.Status(rawValue: row["status"])!, desiredHash: row["desired_hash"],
                createdBy: row["created_by"], error: row["error"],
                finishedAt: (row["finished_at"] as Int64?).map(date), retryOf: row["retry_of"],
                rollbackOf: row["rollback_of"])
        }
    }

    public func history(of instanceID: String, after cursor: String?, limit: Int) async throws -> Page<Deployment> {
        try Paging.checkLimit(limit)
        let before = try Paging.sequence(of: cursor, default: Int64.max)
        return try await read { db in
            let items = try Self.fetchDeployments(
                db,
                sql: Self.historySQL, arguments: [instanceID, before, limit + 1])
            return Page(
                items: Array(items.prefix(limit)),
                nextCursor: items.count > limit ? String(items[limit - 1].sequence) : nil)
        }
    }

    public func appendEvents(_ events: [DeploymentEventDraft], to id: String) async throws {
        try await transaction { db in
            let deployment = try Self.fetchDeployment(db, id)
            for event in events {
                try self.record(db, deployment, kind: event.kind, message: event.message, data: event.data)
            }
        }
    }

    public func events(of id: String, after cursor: String?, limit: Int) async throws -> Page<DeploymentEvent> {
        try Paging.checkLimit(limit)
        let after = try Paging.sequence(of: cursor, default: 0)
        return try await read { db in
            _ = try Self.fetchDeployment(db, id)
            let rows = try db.fetchRows(sql: Self.eventsSQL, arguments: [id, after, limit + 1])
            let items = try rows.prefix(limit).map { row in
                DeploymentEvent(
                    sequence: row["seq"], deploymentID: row["deployment_id"], at: date(row["at"]),
                    kind: DeploymentEventDraft.Kind(rawValue: row["kind"]) ?? .log, message: row["message"],
                    data: try (row["data"] as String?).map(Value.init(json:)))
            }
            return Page(items: items, nextCursor: rows.count > limit ? String(items[limit - 1].sequence) : nil)
        }
    }
}

extension SQLiteStore {
    /// Moves a deployment to `status` if `transition(from:to:)` allows it, with a compare-and-set on its current
    /// status, and records the change in its event log and the audit log.
    func move(
        _ db: Database, _ deployment: Deployment, to status: Deployment.Status, actor: String,
        because reason: String? = nil, set columns: [String: (any DatabaseValueConvertible)?] = [:]
    ) throws -> Deployment {
        try transition(from: deployment.status, to: status)
        let assignments = columns.keys.sorted()
        let sql =
            "UPDATE deployments SET status = ?, updated_at = ?"
            + assignments.map { ", \($0) = ?" }.joined() + " WHERE seq = ? AND status = ?"
        var arguments: StatementArguments = [status.rawValue, now]
        for column in assignments { arguments += [columns[column]!] }
        arguments += [deployment.sequence, deployment.status.rawValue]
        try db.run(sql: sql, arguments: arguments)
        guard db.changesCount == 1 else {
            throw ConvergeError.deploymentChanged(deployment.id)
        }
        let moved = try Self.fetchDeployment(db, deployment.id)
        let event = deployment.statusEvent(to: status, actor: actor, because: reason)
        try record(db, moved, kind: .status, message: event.message, data: event.data)
        try audit(
            db, actor: actor, action: Deployment.auditAction(movingTo: status), kind: "Deployment",
            id: deployment.id, before: deployment.auditValue, after: moved.auditValue)
        return moved
    }

    /// Ends a RUNNING deployment and moves its instance's status (and outputs) as `InstanceStatus.after` says.
    func finish(
        _ db: Database, _ deployment: Deployment, as status: Deployment.Status, actor: String,
        because reason: String? = nil, set columns: [String: (any DatabaseValueConvertible)?]
    ) throws -> Deployment {
        var columns = columns
        columns["finished_at"] = now
        columns["lease_expires_at"] = .some(nil)
        let finished = try move(db, deployment, to: status, actor: actor, because: reason, set: columns)
        if let instanceStatus = InstanceStatus.after(finished.action, endedWith: status) {
            let outputs: String? =
                switch finished.instanceOutputs(endingAs: status) {
                case .replace(let outputs): outputs?.canonicalJSON
                case .keep:
                    try String.fetchOne(
                        db, sql: "SELECT outputs FROM instances WHERE id = ?", arguments: [finished.instanceID])
                }
            try db.run(
                sql: "UPDATE instances SET status = ?, outputs = ?, updated_at = ? WHERE id = ?",
                arguments: [instanceStatus.rawValue, outputs, now, finished.instanceID])
        }
        return finished
    }

    /// The RUNNING deployment `id` whose current lease `owner` holds under `epoch`, or why not.
    func leased(_ db: Database, _ id: String, owner: String, epoch: Int64) throws -> Deployment {
        let deployment = try Self.fetchDeployment(db, id)
        try deployment.checkLease(owner: owner, epoch: epoch)
        return deployment
    }

    /// Copies a deployment's snapshot into its instance's current configuration; a plan never moves it.
    func advanceInstance(_ db: Database, to deployment: Deployment) throws {
        guard deployment.action != .plan else { return }
        try db.run(
            sql: "UPDATE instances SET params = ?, connection_params = ?, version = ?, updated_at = ? WHERE id = ?",
            arguments: [
                deployment.snapshot.params.canonicalJSON, deployment.snapshot.connectionParams.canonicalJSON,
                deployment.snapshot.version, now, deployment.instanceID,
            ])
    }

    func record(
        _ db: Database, _ deployment: Deployment, kind: DeploymentEventDraft.Kind, message: String, data: Value? = nil
    ) throws {
        try db.run(
            sql: "INSERT INTO deployment_events (deployment_id, at, kind, message, data) VALUES (?, ?, ?, ?, ?)",
            arguments: [deployment.id, now, kind.rawValue, message, data?.canonicalJSON])
    }

    static func fetchDeployment(_ db: Database, _ id: String) throws -> Deployment {
        guard let deployment = try fetchDeployment(db, where: "id = ?", arguments: [id]) else {
            throw ConvergeError.deploymentNotFound(id)
        }
        return deployment
    }

    static func fetchDeployment(_ db: Database, where condition: String, arguments: StatementArguments) throws
        -> Deployment?
    {
        try fetchDeployments(db, sql: "SELECT * FROM deployments WHERE \(condition) LIMIT 1", arguments: arguments)
            .first
    }

    static func fetchDeployments(_ db: Database, sql: String, arguments: StatementArguments) throws -> [Deployment] {
        try db.fetchRows(sql: sql, arguments: arguments).map { row in
            var deployment = try deployment(from: row)
            try attachApprovals(db, to: &deployment)
            return deployment
        }
    }

    /// A proposal's recorded approvals, and where the plan of a two-phase one stands: one indexed read each, only
    /// for the deployments that have them.
    static func attachApprovals(_ db: Database, to deployment: inout Deployment) throws {
        guard deployment.proposedBy != nil else { return }
        deployment.approvals = try db.fetchRows(
            sql: "SELECT step, principal, at FROM deployment_approvals WHERE deployment_id = ? ORDER BY seq",
            arguments: [deployment.id]
        ).map { row in
            Deployment.Approval(
                step: Deployment.ApprovalStep(rawValue: row["step"]) ?? .review, by: row["principal"],
                at: date(row["at"]))
        }
        if let planID = deployment.planDeploymentID,
            let row = try db.fetchRow(
                sql: "SELECT status, plan_result FROM deployments WHERE id = ?", arguments: [planID])
        {
            deployment.planOutcome = Deployment.PlanOutcome(
                status: Deployment.Status(rawValue: row["status"])!,
                result: try (row["plan_result"] as String?).map(Value.init(json:)))
        }
    }

    static func deployment(from row: Row) throws -> Deployment {
        let status = Deployment.Status(rawValue: row["status"])!
        let action: String = row["action"]
        return Deployment(
            id: row["id"], sequence: row["seq"], instanceID: row["instance_id"],
            snapshot: DeploymentSnapshot(
                action: Deployment.Action(rawValue: action)!, params: try Value(json: row["params"]),
                connectionParams: try Value(json: row["connection_params"]), version: row["version"],
                metadata: try Value(json: row["md_metadata"])),
            desiredHash: row["desired_hash"], status: status,
            proposedBy: row["proposed_by"], approvedBy: row["approved_by"], createdBy: row["created_by"],
            createdAt: date(row["created_at"]), updatedAt: date(row["updated_at"]),
            startedAt: (row["started_at"] as Int64?).map(date), finishedAt: (row["finished_at"] as Int64?).map(date),
            attempt: row["attempt"],
            lease: Deployment.lease(
                status: status, owner: row["lease_owner"], epoch: row["lease_epoch"],
                expiresAt: row["lease_expires_at"]),
            error: row["error"], outputs: try (row["outputs"] as String?).map(Value.init(json:)),
            planResult: try (row["plan_result"] as String?).map(Value.init(json:)), retryOf: row["retry_of"],
            rollbackOf: row["rollback_of"],
            approvalStep: (row["approval_step"] as String?).flatMap(Deployment.ApprovalStep.init(rawValue:)),
            planDeploymentID: row["plan_id"])
    }
}
