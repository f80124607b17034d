import ConvergeCore
import Foundation
import PostgresNIO

/// Deployments, approvals, leases and dispatch on PostgreSQL, as SQLiteStore does them: every decision and its write
/// are one SERIALIZABLE transaction. Claims and takeovers alone run READ COMMITTED and take only the rows nobody else
/// holds (`FOR UPDATE SKIP LOCKED`), so one daemon's claim never waits for another's.
extension PostgresStore: DeploymentStore, DispatchStore {
    public func createDeployment(_ request: DeploymentRequest) async throws -> DeploymentCreation {
        try request.checkMode()
        return try await transaction { connection in
            let instance = try await self.fetchInstance(connection, request.instanceID)
            if request.decidedAfter != nil {
                try request.checkDecided(
                    newest: try await connection.one(
                        "SELECT COALESCE(MAX(seq), 0) FROM deployments WHERE instance_id = \(instance.id)", Int64.self,
                        logger: self.logger)!)
            }
            if let planID = request.planID { try request.checkPlan(try await self.fetchDeployment(connection, planID)) }
            let now = self.now
            let id = DeploymentID.make(now: date(now))
            var snapshot = request.snapshot
            snapshot.metadata = snapshot.metadata.merged(with: ["deploymentId": .string(id)])
            let proposedBy = request.mode == .proposal ? request.actor : nil
            let inserted = try await connection.rows(
                """
                INSERT INTO deployments (id, instance_id, environment, action, params, connection_params, version,
                    md_metadata, desired_hash, status, created_by, proposed_by, created_at, updated_at, retry_of,
                    rollback_of, approval_step, plan_id)
                VALUES (\(id), \(instance.id), \(instance.environment), \(snapshot.action.rawValue),
                    \(snapshot.params.canonicalJSON), \(snapshot.connectionParams.canonicalJSON), \(snapshot.version),
                    \(snapshot.metadata.canonicalJSON), \(snapshot.desiredHash), \(request.initialStatus.rawValue),
                    \(request.actor), \(proposedBy), \(now), \(now), \(request.retryOf), \(request.rollbackOf),
                    \(request.initialApprovalStep?.rawValue), \(request.planID))
                ON CONFLICT (instance_id, desired_hash) WHERE status IN ('PROPOSED', 'APPROVED', 'PENDING', 'RUNNING')
                DO NOTHING
                RETURNING *
                """, logger: logger)
            guard !inserted.isEmpty else {
                let existing = try await self.fetchDeployments(
                    connection,
                    """
                    SELECT * FROM deployments
                    WHERE instance_id = \(instance.id) AND desired_hash = \(snapshot.desiredHash)
                        AND status IN ('PROPOSED', 'APPROVED', 'PENDING', 'RUNNING')
                    """)
                return DeploymentCreation(deployment: existing[0], created: false)
            }
            let deployment = try await self.deployments(connection, from: inserted)[0]
            if request.mode == .direct { try await self.advanceInstance(connection, to: deployment) }
            try await self.record(connection, id, kind: .status, message: request.creationMessage)
            try await self.audit(
                connection, actor: request.actor, action: "deployment.create", kind: "Deployment", id: id, before: nil,
                after: deployment.auditValue)
            return DeploymentCreation(deployment: deployment, created: true)
        }
    }

    public func approve(
        _ id: String, by approver: Approver, rule: ApproverRule?, step expected: Deployment.ApprovalStep?
    ) async throws -> Deployment {
        try await transaction { connection in
            let deployment = try await self.fetchDeployment(connection, id)
            let decision = try await self.decide(
                connection, .approve(step: expected), of: deployment, by: approver, rule: rule)
            guard case .approve(let step, let next) = decision else { throw decision.refusal }
            try await connection.query(
                """
                INSERT INTO deployment_approvals (deployment_id, step, principal, at)
                VALUES (\(id), \(step.rawValue), \(approver.name), \(self.now))
                """, logger: logger)
            guard next != .approved else {
                let approved = try await self.move(
                    connection, deployment, to: .approved, actor: approver.name, set: ["approved_by": approver.name])
                try await self.advanceInstance(connection, to: approved)
                return approved
            }
            guard
                let moved = try await self.fetchDeployments(
                    connection,
                    """
                    UPDATE deployments SET approval_step = 'apply', updated_at = \(self.now)
                    WHERE seq = \(deployment.sequence) AND status = 'PROPOSED' AND approval_step = 'plan'
                    RETURNING *
                    """
                ).first
            else { throw ConvergeError.deploymentChanged(id) }
            try await self.record(
                connection, id, kind: .status, message: Deployment.planApprovedMessage(by: approver.name))
            try await self.audit(
                connection, actor: approver.name, action: "deployment.planApproved", kind: "Deployment", id: id,
                before: deployment.auditValue, after: moved.auditValue)
            return moved
        }
    }

    public func reject(_ id: String, by approver: Approver, rule: ApproverRule?, reason: String?) async throws
        -> Deployment
    {
        try await transaction { connection in
            let deployment = try await self.fetchDeployment(connection, id)
            let decision = try await self.decide(connection, .reject, of: deployment, by: approver, rule: rule)
            guard case .reject = decision else { throw decision.refusal }
            return try await self.move(
                connection, deployment, to: .rejected, actor: approver.name, because: reason,
                set: ["error": reason, "finished_at": self.now])
        }
    }

    /// The approval rules' answer to `request`, with what they need read in the deciding transaction: the
    /// proposal's environment and the newest deployment of its instance created after it that is neither REJECTED
    /// nor ABORTED nor a PLAN.
    private func decide(
        _ connection: PostgresConnection, _ request: ApprovalDecision.Request, of deployment: Deployment,
        by approver: Approver, rule: ApproverRule?
    ) async throws -> ApprovalDecision {
        let row = try await connection.row(
            """
            SELECT d.environment, (SELECT n.id FROM deployments AS n
                WHERE n.instance_id = d.instance_id AND n.seq > d.seq AND n.status NOT IN ('REJECTED', 'ABORTED')
                    AND n.action <> 'plan'
                ORDER BY n.seq DESC LIMIT 1) AS newer
            FROM deployments AS d WHERE d.seq = \(deployment.sequence)
            """, logger: logger)
        return ApprovalDecision.decide(
            request, of: deployment, by: approver, in: try row?.value("environment", as: String.self) ?? "",
            rule: rule, supersededBy: try row?.value("newer", as: String?.self))
    }

    public func abort(_ id: String, actor: String, reason: String?) async throws -> Deployment {
        try await transaction { connection in
            let deployment = try await self.fetchDeployment(connection, id)
            return try await self.move(
                connection, deployment, to: .aborted, actor: actor, because: reason,
                set: ["error": reason ?? "aborted by \(actor)", "finished_at": self.now, "lease_expires_at": nil])
        }
    }

    public func claimNextDeployments(owner: String, leaseDuration: TimeInterval, limit: Int) async throws
        -> [Deployment]
    {
        try Paging.checkLimit(limit)
        return try await transaction(isolation: "READ COMMITTED") { connection in
            // The heads another claim holds are skipped, not waited for; one that another daemon made RUNNING
            // meanwhile fails the status recheck of the lock and drops out.
            let heads = try await self.fetchDeployments(
                connection,
                """
                SELECT d.* FROM deployments AS d
                WHERE d.status IN ('APPROVED', 'PENDING')
                  AND NOT EXISTS (SELECT 1 FROM deployments AS q
                      WHERE q.instance_id = d.instance_id AND q.status IN ('APPROVED', 'PENDING') AND q.seq < d.seq)
                  AND NOT EXISTS (SELECT 1 FROM deployments AS r
                      WHERE r.instance_id = d.instance_id AND r.status = 'RUNNING')
                ORDER BY d.seq LIMIT \(limit)
                FOR UPDATE OF d SKIP LOCKED
                """)
            let now = self.now
            var claimed: [Deployment] = []
            for head in heads {
                // A head that another claim made the queue's head at the same time (an older proposal approved
                // meanwhile) meets its RUNNING deployment at the unique index: that one head is skipped.
                try await connection.query("SAVEPOINT claim", logger: logger)
                do {
                    claimed.append(
                        try await self.move(
                            connection, head, to: .running, actor: owner,
                            set: [
                                "attempt": head.attempt + 1, "lease_owner": owner, "lease_epoch": head.leaseEpoch + 1,
                                "lease_expires_at": now + millis(leaseDuration), "started_at": now,
                            ]))
                    try await connection.query("RELEASE SAVEPOINT claim", logger: logger)
                } catch let error as PSQLError
                    where error.serverInfo?[.constraintName] == "deployments_one_running"
                {
                    try await connection.query("ROLLBACK TO SAVEPOINT claim", logger: logger)
                }
            }
            return claimed
        }
    }

    public func takeOverExpiredLeases(
        owner: String, leaseDuration: TimeInterval, limit: Int, excluding applying: Set<String>
    ) async throws -> [Deployment] {
        try Paging.checkLimit(limit)
        return try await transaction(isolation: "READ COMMITTED") { connection in
            let now = self.now
            // A lease renewed or ended meanwhile fails the recheck of the lock and drops out; one another takeover
            // holds is skipped.
            let expired = try await self.fetchDeployments(
                connection,
                """
                SELECT * FROM deployments
                WHERE status = 'RUNNING' AND lease_expires_at < \(now) AND id <> ALL(\(applying.sorted())::text[])
                ORDER BY lease_expires_at LIMIT \(limit)
                FOR UPDATE SKIP LOCKED
                """)
            var taken: [Deployment] = []
            for deployment in expired {
                guard
                    let takenOver = try await self.fetchDeployments(
                        connection,
                        """
                        UPDATE deployments SET lease_owner = \(owner), lease_epoch = lease_epoch + 1,
                            lease_expires_at = \(now + millis(leaseDuration)), updated_at = \(now)
                        WHERE seq = \(deployment.sequence) AND status = 'RUNNING'
                            AND lease_epoch = \(deployment.leaseEpoch)
                        RETURNING *
                        """
                    ).first
                else { continue }
                try await self.record(
                    connection, deployment.id, kind: .phase, message: deployment.takeOverMessage(by: owner))
                try await self.audit(
                    connection, actor: owner, action: "deployment.takeOverLease", kind: "Deployment",
                    id: deployment.id, before: deployment.auditValue, after: takenOver.auditValue)
                taken.append(takenOver)
            }
            return taken
        }
    }

    public func renewLease(_ id: String, owner: String, epoch: Int64, leaseDuration: TimeInterval) async throws
        -> Deployment
    {
        try await transaction { connection in
            let deployment = try await self.leased(connection, id, owner: owner, epoch: epoch)
            let now = self.now
            return try await self.fetchDeployments(
                connection,
                """
                UPDATE deployments SET lease_expires_at = \(now + millis(leaseDuration)), updated_at = \(now)
                WHERE seq = \(deployment.sequence)
                RETURNING *
                """)[0]
        }
    }

    public func complete(_ id: String, owner: String, epoch: Int64, outputs: Value, planResult: Value?) async throws
        -> Deployment
    {
        try await transaction { connection in
            let deployment = try await self.leased(connection, id, owner: owner, epoch: epoch)
            return try await self.finish(
                connection, deployment, as: .completed, actor: owner,
                set: ["outputs": outputs.canonicalJSON, "plan_result": planResult?.canonicalJSON])
        }
    }

    public func fail(_ id: String, owner: String, epoch: Int64, error: String) async throws -> Deployment {
        try await transaction { connection in
            let deployment = try await self.leased(connection, id, owner: owner, epoch: epoch)
            return try await self.finish(
                connection, deployment, as: .failed, actor: owner, because: error, set: ["error": error])
        }
    }

    public func deployment(_ id: String) async throws -> Deployment {
        try await read { connection in try await self.fetchDeployment(connection, id) }
    }

    public func recentDeployments(of instanceID: String, limit: Int) async throws -> [DeploymentSummary] {
        try Paging.checkLimit(limit)
        return try await read { connection in try await self.fetchRecent(connection, instanceID, limit: limit) }
    }

    public func reconcileInputs(
        of instanceID: String, upstream: [String], recentLimit: Int, includeConfiguration: Bool
    ) async throws -> ReconcileInputs {
        try Paging.checkLimit(recentLimit)
        let upstream = Set(upstream).subtracting([instanceID]).sorted()
        return try await read { connection in
            var records: [String: InstanceRecord] = [:]
            if !upstream.isEmpty {
                for row in try await connection.rows(
                    "SELECT * FROM instances WHERE id = ANY(\(upstream))", logger: logger)
                {
                    let record = try Self.instanceRecord(from: row, configuration: false)
                    records[record.id] = record
                }
            }
            return ReconcileInputs(
                record: try await self.fetchInstanceIfAny(
                    connection, instanceID, configuration: includeConfiguration, outputs: false),
                upstream: records, recent: try await self.fetchRecent(connection, instanceID, limit: recentLimit))
        }
    }

    public func history(of instanceID: String, after cursor: String?, limit: Int) async throws -> Page<Deployment> {
        try Paging.checkLimit(limit)
        let before = try Paging.sequence(of: cursor, default: Int64.max)
        return try await read { connection in
            let items = try await self.fetchDeployments(
                connection,
                """
                SELECT * FROM deployments WHERE instance_id = \(instanceID) AND seq < \(before)
                ORDER BY seq DESC LIMIT \(limit + 1)
                """)
            return Page(
                items: Array(items.prefix(limit)),
                nextCursor: items.count > limit ? String(items[limit - 1].sequence) : nil)
        }
    }

    public func appendEvents(_ events: [DeploymentEventDraft], to id: String) async throws {
        try await transaction { connection in
            try await self.checkExists(connection, id)
            for event in events {
                try await self.record(connection, id, kind: event.kind, message: event.message, data: event.data)
            }
        }
    }

    public func events(of id: String, after cursor: String?, limit: Int) async throws -> Page<DeploymentEvent> {
        try Paging.checkLimit(limit)
        let after = try Paging.sequence(of: cursor, default: 0)
        return try await read { connection in
            try await self.checkExists(connection, id)
            let rows = try await connection.rows(
                """
                SELECT * FROM deployment_events WHERE deployment_id = \(id) AND seq > \(after)
                ORDER BY seq LIMIT \(limit + 1)
                """, logger: logger)
            let items = try rows.prefix(limit).map { row in
                DeploymentEvent(
                    sequence: try row.value("seq"), deploymentID: try row.value("deployment_id"),
                    at: date(try row.value("at")),
                    kind: DeploymentEventDraft.Kind(rawValue: try row.value("kind")) ?? .log,
                    message: try row.value("message"),
                    data: try row.value("data", as: String?.self).map(Value.init(json:)))
            }
            return Page(items: items, nextCursor: rows.count > limit ? String(items[limit - 1].sequence) : nil)
        }
    }
}

extension PostgresStore {
    /// Moves a deployment to `status` if `transition(from:to:)` allows it, with a compare-and-set on its current
    /// status, setting `columns` too, and records the change in its event log and the audit log.
    func move(
        _ connection: PostgresConnection, _ deployment: Deployment, to status: Deployment.Status, actor: String,
        because reason: String? = nil, set columns: [String: (any PostgresDynamicTypeEncodable)?] = [:]
    ) async throws -> Deployment {
        try transition(from: deployment.status, to: status)
        var bindings = PostgresBindings()
        bindings.append(status.rawValue)
        bindings.append(now)
        var assignments = "status = $1, updated_at = $2"
        for column in columns.keys.sorted() {
            if let value = columns[column]! { bindings.append(value) } else { bindings.appendNull() }
            assignments += ", \(column) = $\(bindings.count)"
        }
        bindings.append(deployment.sequence)
        bindings.append(deployment.status.rawValue)
        let update = PostgresQuery(
            unsafeSQL: "UPDATE deployments SET \(assignments) WHERE seq = $\(bindings.count - 1) "
                + "AND status = $\(bindings.count) RETURNING *", binds: bindings)
        guard let moved = try await fetchDeployments(connection, update).first else {
            throw ConvergeError.deploymentChanged(deployment.id)
        }
        let event = deployment.statusEvent(to: status, actor: actor, because: reason)
        try await record(connection, deployment.id, kind: .status, message: event.message, data: event.data)
        try await audit(
            connection, actor: actor, action: Deployment.auditAction(movingTo: status), kind: "Deployment",
            id: deployment.id, before: deployment.auditValue, after: moved.auditValue)
        return moved
    }

    /// Ends a RUNNING deployment and moves its instance's status (and outputs) as `InstanceStatus.after` says.
    func finish(
        _ connection: PostgresConnection, _ deployment: Deployment, as status: Deployment.Status, actor: String,
        because reason: String? = nil, set columns: [String: (any PostgresDynamicTypeEncodable)?]
    ) async throws -> Deployment {
        var columns = columns
        columns["finished_at"] = now
        columns["lease_expires_at"] = .some(nil)
        let finished = try await move(connection, deployment, to: status, actor: actor, because: reason, set: columns)
        guard let instanceStatus = InstanceStatus.after(finished.action, endedWith: status) else { return finished }
        switch finished.instanceOutputs(endingAs: status) {
        case .keep:
            try await connection.query(
                """
                UPDATE instances SET status = \(instanceStatus.rawValue), updated_at = \(now)
                WHERE id = \(finished.instanceID)
                """, logger: logger)
        case .replace(let outputs):
            try await connection.query(
                """
                UPDATE instances SET status = \(instanceStatus.rawValue), outputs = \(outputs?.canonicalJSON),
                    updated_at = \(now)
                WHERE id = \(finished.instanceID)
                """, logger: logger)
        }
        return finished
    }

    /// The RUNNING deployment `id` whose current lease `owner` holds under `epoch`, or why not.
    func leased(_ connection: PostgresConnection, _ id: String, owner: String, epoch: Int64) async throws
        -> Deployment
    {
        let deployment = try await fetchDeployment(connection, id)
        try deployment.checkLease(owner: owner, epoch: epoch)
        return deployment
    }

    /// Copies a deployment's snapshot into its instance's current configuration; a plan never moves it.
    func advanceInstance(_ connection: PostgresConnection, to deployment: Deployment) async throws {
        guard deployment.action != .plan else { return }
        try await connection.query(
            """
            UPDATE instances SET params = \(deployment.snapshot.params.canonicalJSON),
                connection_params = \(deployment.snapshot.connectionParams.canonicalJSON),
                version = \(deployment.snapshot.version), updated_at = \(now)
            WHERE id = \(deployment.instanceID)
            """, logger: logger)
    }

    func record(
        _ connection: PostgresConnection, _ id: String, kind: DeploymentEventDraft.Kind, message: String,
        data: Value? = nil
    ) async throws {
        try await connection.query(
            """
            INSERT INTO deployment_events (deployment_id, at, kind, message, data)
            VALUES (\(id), \(now), \(kind.rawValue), \(message), \(data?.canonicalJSON))
            """, logger: logger)
    }

    /// Refuses an unknown deployment id with `not_found`.
    private func checkExists(_ connection: PostgresConnection, _ id: String) async throws {
        guard try await connection.count("SELECT 1 FROM deployments WHERE id = \(id)", logger: logger) == 1 else {
            throw ConvergeError.deploymentNotFound(id)
        }
    }

    func fetchDeployment(_ connection: PostgresConnection, _ id: String) async throws -> Deployment {
        guard
            let deployment = try await fetchDeployments(connection, "SELECT * FROM deployments WHERE id = \(id)").first
        else {
            throw ConvergeError.deploymentNotFound(id)
        }
        return deployment
    }

    /// The deployments of `query` (whole rows of `deployments`), with their approvals.
    func fetchDeployments(_ connection: PostgresConnection, _ query: PostgresQuery) async throws -> [Deployment] {
        try await deployments(connection, from: try await connection.rows(query, logger: logger))
    }

    /// Deployments from whole rows of `deployments`, with the proposals' recorded approvals and where the plan of a
    /// two-phase one stands: one indexed read each for all of them, only when there are proposals.
    func deployments(_ connection: PostgresConnection, from rows: [PostgresRandomAccessRow]) async throws
        -> [Deployment]
    {
        var deployments = try rows.map(Self.deployment(from:))
        let proposals = deployments.filter { $0.proposedBy != nil }.map(\.id)
        guard !proposals.isEmpty else { return deployments }
        var approvals: [String: [Deployment.Approval]] = [:]
        for row in try await connection.rows(
            """
            SELECT deployment_id, step, principal, at FROM deployment_approvals
            WHERE deployment_id = ANY(\(proposals)) ORDER BY seq
            """, logger: logger)
        {
            approvals[try row.value("deployment_id"), default: []].append(
                Deployment.Approval(
                    step: Deployment.ApprovalStep(rawValue: try row.value("step")) ?? .review,
                    by: try row.value("principal"), at: date(try row.value("at"))))
        }
        let plans = deployments.compactMap(\.planDeploymentID)
        var outcomes: [String: Deployment.PlanOutcome] = [:]
        if !plans.isEmpty {
            for row in try await connection.rows(
                "SELECT id, status, plan_result FROM deployments WHERE id = ANY(\(plans))", logger: logger)
            {
                outcomes[try row.value("id")] = Deployment.PlanOutcome(
                    status: Deployment.Status(rawValue: try row.value("status"))!,
                    result: try row.value("plan_result", as: String?.self).map(Value.init(json:)))
            }
        }
        for index in deployments.indices where deployments[index].proposedBy != nil {
            deployments[index].approvals = approvals[deployments[index].id] ?? []
            deployments[index].planOutcome = deployments[index].planDeploymentID.flatMap { outcomes[$0] }
        }
        return deployments
    }

    static func deployment(from row: PostgresRandomAccessRow) throws -> Deployment {
        let status = Deployment.Status(rawValue: try row.value("status"))!
        return Deployment(
            id: try row.value("id"), sequence: try row.value("seq"), instanceID: try row.value("instance_id"),
            snapshot: DeploymentSnapshot(
                action: Deployment.Action(rawValue: try row.value("action"))!,
                params: try Value(json: try row.value("params")),
                connectionParams: try Value(json: try row.value("connection_params")),
                version: try row.value("version"), metadata: try Value(json: try row.value("md_metadata"))),
            desiredHash: try row.value("desired_hash"), status: status, proposedBy: try row.value("proposed_by"),
            approvedBy: try row.value("approved_by"), createdBy: try row.value("created_by"),
            createdAt: date(try row.value("created_at")), updatedAt: date(try row.value("updated_at")),
            startedAt: try row.value("started_at", as: Int64?.self).map(date),
            finishedAt: try row.value("finished_at", as: Int64?.self).map(date), attempt: try row.value("attempt"),
            lease: Deployment.lease(
                status: status, owner: try row.value("lease_owner"), epoch: try row.value("lease_epoch"),
                expiresAt: try row.value("lease_expires_at")),
            error: try row.value("error"), outputs: try row.value("outputs", as: String?.self).map(Value.init(json:)),
            planResult: try row.value("plan_result", as: String?.self).map(Value.init(json:)),
            retryOf: try row.value("retry_of"), rollbackOf: try row.value("rollback_of"),
            approvalStep: try row.value("approval_step", as: String?.self).flatMap(
                Deployment.ApprovalStep.init(rawValue:)),
            planDeploymentID: try row.value("plan_id"))
    }

    /// An instance's newest deployments without their snapshots.
    func fetchRecent(_ connection: PostgresConnection, _ instanceID: String, limit: Int) async throws
        -> [DeploymentSummary]
    {
        try await connection.rows(
            """
            SELECT seq, id, action, status, desired_hash, created_by, error, finished_at, retry_of, rollback_of
            FROM deployments WHERE instance_id = \(instanceID) ORDER BY seq DESC LIMIT \(limit)
            """, logger: logger
        ).map { row in
            DeploymentSummary(
                id: try row.value("id"), sequence: try row.value("seq"),
                action: Deployment.Action(rawValue: try row.value("action"))!,
                status: Deployment.Status(rawValue: try row.value("status"))!,
                desiredHash: try row.value("desired_hash"), createdBy: try row.value("created_by"),
                error: try row.value("error"), finishedAt: try row.value("finished_at", as: Int64?.self).map(date),
                retryOf: try row.value("retry_of"), rollbackOf: try row.value("rollback_of"))
        }
    }
}
