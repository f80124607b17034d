import GRDB

extension SQLiteStore {
    /// The named, append-only migrations; each runs in its own transaction. Never edit one that has shipped:
    /// add another.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("2026-11-24-initial") { db in
            try db.execute(sql: initialSchema)
        }
        migrator.registerMigration("2026-11-24-reconciler") { db in
            try db.execute(sql: reconcilerSchema)
        }
        migrator.registerMigration("2026-11-25-lease-epochs-retries-counts") { db in
            try db.execute(sql: leaseEpochsRetriesCountsSchema)
        }
        migrator.registerMigration("2026-11-26-api") { db in
            try db.execute(sql: apiSchema)
        }
        migrator.registerMigration("2026-11-27-api-resources") { db in
            try db.execute(sql: apiResourcesSchema)
        }
        migrator.registerMigration("2026-11-27-instance-secrets") { db in
            try db.execute(sql: instanceSecretsSchema)
        }
        migrator.registerMigration("2026-11-27-approval-steps") { db in
            try db.execute(sql: approvalStepsSchema)
        }
        migrator.registerMigration("2026-11-28-orphans") { db in
            try db.execute(sql: orphansSchema)
        }
        migrator.registerMigration("2026-11-29-drift") { db in
            try db.execute(sql: driftSchema)
        }
        migrator.registerMigration("2026-11-29-rollouts") { db in
            try db.execute(sql: rolloutsSchema)
        }
        migrator.registerMigration("2026-12-05-daemons") { db in
            try db.execute(sql: daemonsSchema)
        }
        return migrator
    }

    /// Two-phase approval (DESIGN §3): the step a two-phase proposal awaits and the PLAN whose result it shows, and
    /// every approval recorded (which step, who, when), append-only. The step machine lives in triggers: a two-phase
    /// proposal enters at its plan step, moves to its apply step only with its plan approval recorded, and is
    /// approved only from its apply step with its apply approval recorded; an approval is of the awaited step, never
    /// by the proposer, never of a plan step whose plan has not completed, and one principal approves one step.
    private static let approvalStepsSchema = """
        ALTER TABLE deployments ADD COLUMN approval_step TEXT CHECK (approval_step IN ('plan', 'apply'));
        ALTER TABLE deployments ADD COLUMN plan_id TEXT REFERENCES deployments (id);

        CREATE TABLE deployment_approvals (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            deployment_id TEXT NOT NULL REFERENCES deployments (id),
            step TEXT NOT NULL CHECK (step IN ('review', 'plan', 'apply')),
            principal TEXT NOT NULL,
            at INTEGER NOT NULL,
            UNIQUE (deployment_id, step),
            UNIQUE (deployment_id, principal)
        );
        -- Approvals given before this migration, at the time the audit log recorded them.
        INSERT INTO deployment_approvals (deployment_id, step, principal, at)
            SELECT d.id, 'review', d.approved_by, COALESCE(
                (SELECT MIN(a.at) FROM audit_log AS a WHERE a.target_id = d.id AND a.action = 'deployment.approved'),
                d.updated_at)
            FROM deployments AS d WHERE d.approved_by IS NOT NULL ORDER BY d.seq;
        CREATE TRIGGER deployment_approvals_of_the_awaited_step BEFORE INSERT ON deployment_approvals
        WHEN NOT EXISTS (
            SELECT 1 FROM deployments AS d
            WHERE d.id = NEW.deployment_id AND d.status = 'PROPOSED' AND COALESCE(d.approval_step, 'review') = NEW.step
                AND d.proposed_by IS NOT NEW.principal
                AND (NEW.step <> 'plan'
                    OR EXISTS (SELECT 1 FROM deployments AS p WHERE p.id = d.plan_id AND p.status = 'COMPLETED')))
        BEGIN
            SELECT RAISE(ABORT, 'an approval is of the step a PROPOSED deployment awaits, by another than its proposer');
        END;
        CREATE TRIGGER deployment_approvals_append_only BEFORE UPDATE ON deployment_approvals
        BEGIN
            SELECT RAISE(ABORT, 'deployment approvals are append-only');
        END;
        CREATE TRIGGER deployment_approvals_never_deleted BEFORE DELETE ON deployment_approvals
        BEGIN
            SELECT RAISE(ABORT, 'deployment approvals are append-only');
        END;

        CREATE TRIGGER deployments_two_phase_enters_at_plan BEFORE INSERT ON deployments
        WHEN (NEW.approval_step IS NOT NULL OR NEW.plan_id IS NOT NULL) AND NOT (
            NEW.approval_step = 'plan' AND NEW.status = 'PROPOSED' AND NEW.action <> 'plan' AND EXISTS (
                SELECT 1 FROM deployments AS p
                WHERE p.id = NEW.plan_id AND p.instance_id = NEW.instance_id AND p.action = 'plan'))
        BEGIN
            SELECT RAISE(ABORT, 'a two-phase proposal enters PROPOSED at its plan step, with a plan of its instance');
        END;
        CREATE TRIGGER deployments_approval_step_moves BEFORE UPDATE OF approval_step ON deployments
        WHEN NEW.approval_step IS NOT OLD.approval_step AND NOT (
            OLD.approval_step = 'plan' AND NEW.approval_step = 'apply' AND OLD.status = 'PROPOSED'
            AND NEW.status = 'PROPOSED' AND EXISTS (
                SELECT 1 FROM deployment_approvals AS a WHERE a.deployment_id = NEW.id AND a.step = 'plan'))
        BEGIN
            SELECT RAISE(ABORT, 'an approval step moves only from plan to apply, after the plan approval');
        END;
        CREATE TRIGGER deployments_two_phase_approved_at_apply BEFORE UPDATE OF status ON deployments
        WHEN OLD.status = 'PROPOSED' AND NEW.status = 'APPROVED' AND OLD.approval_step IS NOT NULL AND NOT (
            NEW.approval_step = 'apply' AND EXISTS (
                SELECT 1 FROM deployment_approvals AS a WHERE a.deployment_id = NEW.id AND a.step = 'apply'))
        BEGIN
            SELECT RAISE(ABORT, 'a two-phase proposal is approved only at its apply step, with its apply approval');
        END;

        DROP TRIGGER deployments_snapshot_immutable;
        CREATE TRIGGER deployments_snapshot_immutable BEFORE UPDATE ON deployments
        WHEN NEW.seq IS NOT OLD.seq OR NEW.id IS NOT OLD.id OR NEW.instance_id IS NOT OLD.instance_id
            OR NEW.action IS NOT OLD.action OR NEW.params IS NOT OLD.params
            OR NEW.connection_params IS NOT OLD.connection_params OR NEW.version IS NOT OLD.version
            OR NEW.md_metadata IS NOT OLD.md_metadata OR NEW.desired_hash IS NOT OLD.desired_hash
            OR NEW.created_by IS NOT OLD.created_by OR NEW.created_at IS NOT OLD.created_at
            OR NEW.retry_of IS NOT OLD.retry_of OR NEW.environment IS NOT OLD.environment
            OR NEW.rollback_of IS NOT OLD.rollback_of OR NEW.plan_id IS NOT OLD.plan_id
        BEGIN
            SELECT RAISE(ABORT, 'deployment snapshot is immutable');
        END;
        """

    /// What the HTTP API reads: deployments listed by filter from indexes (the instance's environment copied onto
    /// each deployment so that an environment is an index range, not a join), a change feed written by triggers so
    /// that no code path can skip it, audit log filters, and the deployment a rollback returns to.
    private static let apiSchema = """
        -- A deployment's environment is its instance's, copied when it is created and never changed: instances never
        -- change environment, and the copy makes listing by environment an index range.
        ALTER TABLE deployments ADD COLUMN environment TEXT NOT NULL DEFAULT '';
        UPDATE deployments
            SET environment = COALESCE((SELECT i.environment FROM instances AS i WHERE i.id = instance_id), '');
        CREATE TRIGGER deployments_environment_is_instances BEFORE INSERT ON deployments
        WHEN NEW.environment IS NOT (SELECT i.environment FROM instances AS i WHERE i.id = NEW.instance_id)
        BEGIN
            SELECT RAISE(ABORT, 'a deployment''s environment must be its instance''s');
        END;

        -- The earlier deployment of the same instance whose snapshot a rollback re-applies.
        ALTER TABLE deployments ADD COLUMN rollback_of TEXT REFERENCES deployments (id);
        CREATE TRIGGER deployments_rollback_of_same_instance BEFORE INSERT ON deployments
        WHEN NEW.rollback_of IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM deployments AS d WHERE d.id = NEW.rollback_of AND d.instance_id = NEW.instance_id)
        BEGIN
            SELECT RAISE(ABORT, 'a rollback must return to an earlier deployment of the same instance');
        END;

        DROP TRIGGER deployments_snapshot_immutable;
        CREATE TRIGGER deployments_snapshot_immutable BEFORE UPDATE ON deployments
        WHEN NEW.seq IS NOT OLD.seq OR NEW.id IS NOT OLD.id OR NEW.instance_id IS NOT OLD.instance_id
            OR NEW.action IS NOT OLD.action OR NEW.params IS NOT OLD.params
            OR NEW.connection_params IS NOT OLD.connection_params OR NEW.version IS NOT OLD.version
            OR NEW.md_metadata IS NOT OLD.md_metadata OR NEW.desired_hash IS NOT OLD.desired_hash
            OR NEW.created_by IS NOT OLD.created_by OR NEW.created_at IS NOT OLD.created_at
            OR NEW.retry_of IS NOT OLD.retry_of OR NEW.environment IS NOT OLD.environment
            OR NEW.rollback_of IS NOT OLD.rollback_of
        BEGIN
            SELECT RAISE(ABORT, 'deployment snapshot is immutable');
        END;

        -- Listing, newest first, by the filters the API offers; an instance's uses deployments_history.
        CREATE INDEX deployments_by_environment ON deployments (environment, seq);
        CREATE INDEX deployments_by_status_seq ON deployments (status, seq);
        CREATE INDEX deployments_by_creator ON deployments (created_by, seq);
        CREATE INDEX deployments_by_action ON deployments (action, seq);

        -- The reconciler's read of an instance's newest deployments also tells a rollback (which holds the instance
        -- at its snapshot until the manifests change it), still from the index alone.
        DROP INDEX deployments_recent;
        CREATE INDEX deployments_recent ON deployments
            (instance_id, seq, action, status, desired_hash, created_by, error, finished_at, retry_of, rollback_of);

        -- Every creation and status change of a deployment, in commit order, for watchers. Writers are serialised, so
        -- a reader that has seen sequence n never later finds a new change at or below n. Existing deployments
        -- enter with their current status, so replaying the feed from 0 ends at every deployment's status.
        CREATE TABLE deployment_changes (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            deployment_id TEXT NOT NULL REFERENCES deployments (id),
            instance_id TEXT NOT NULL,
            status TEXT NOT NULL,
            at INTEGER NOT NULL
        );
        INSERT INTO deployment_changes (deployment_id, instance_id, status, at)
            SELECT id, instance_id, status, updated_at FROM deployments ORDER BY seq;
        CREATE TRIGGER deployment_changes_on_create AFTER INSERT ON deployments
        BEGIN
            INSERT INTO deployment_changes (deployment_id, instance_id, status, at)
                VALUES (NEW.id, NEW.instance_id, NEW.status, NEW.updated_at);
        END;
        CREATE TRIGGER deployment_changes_on_status AFTER UPDATE OF status ON deployments
        WHEN NEW.status IS NOT OLD.status
        BEGIN
            INSERT INTO deployment_changes (deployment_id, instance_id, status, at)
                VALUES (NEW.id, NEW.instance_id, NEW.status, NEW.updated_at);
        END;
        CREATE TRIGGER deployment_changes_append_only BEFORE UPDATE ON deployment_changes
        BEGIN
            SELECT RAISE(ABORT, 'deployment changes are append-only');
        END;
        CREATE TRIGGER deployment_changes_never_deleted BEFORE DELETE ON deployment_changes
        BEGIN
            SELECT RAISE(ABORT, 'deployment changes are append-only');
        END;

        -- The audit log by each filter the API offers, in order.
        CREATE INDEX audit_log_by_actor ON audit_log (actor, seq);
        CREATE INDEX audit_log_by_action ON audit_log (action, seq);
        CREATE INDEX audit_log_by_target_kind ON audit_log (target_kind, seq);
        CREATE INDEX audit_log_by_target ON audit_log (target_id, seq);
        """

    /// Lease epochs for fencing, automatic retries, and deployment counts by status kept by triggers so that the
    /// metrics read eight rows instead of counting the table.
    private static let leaseEpochsRetriesCountsSchema = """
        ALTER TABLE deployments ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE deployments ADD COLUMN retry_of TEXT REFERENCES deployments (id);

        DROP TRIGGER deployments_snapshot_immutable;
        CREATE TRIGGER deployments_snapshot_immutable BEFORE UPDATE ON deployments
        WHEN NEW.seq IS NOT OLD.seq OR NEW.id IS NOT OLD.id OR NEW.instance_id IS NOT OLD.instance_id
            OR NEW.action IS NOT OLD.action OR NEW.params IS NOT OLD.params
            OR NEW.connection_params IS NOT OLD.connection_params OR NEW.version IS NOT OLD.version
            OR NEW.md_metadata IS NOT OLD.md_metadata OR NEW.desired_hash IS NOT OLD.desired_hash
            OR NEW.created_by IS NOT OLD.created_by OR NEW.created_at IS NOT OLD.created_at
            OR NEW.retry_of IS NOT OLD.retry_of
        BEGIN
            SELECT RAISE(ABORT, 'deployment snapshot is immutable');
        END;

        -- A lease epoch only grows: a fenced-off holder can never be made current again.
        CREATE TRIGGER deployments_lease_epoch_grows BEFORE UPDATE OF lease_epoch ON deployments
        WHEN NEW.lease_epoch < OLD.lease_epoch
        BEGIN
            SELECT RAISE(ABORT, 'a lease epoch never goes back');
        END;

        CREATE TABLE deployment_counts (
            status TEXT PRIMARY KEY,
            count INTEGER NOT NULL
        ) WITHOUT ROWID;
        INSERT INTO deployment_counts (status, count) SELECT status, COUNT(*) FROM deployments GROUP BY status;
        CREATE TRIGGER deployment_counts_insert AFTER INSERT ON deployments
        BEGIN
            INSERT INTO deployment_counts (status, count) VALUES (NEW.status, 1)
                ON CONFLICT (status) DO UPDATE SET count = count + 1;
        END;
        CREATE TRIGGER deployment_counts_update AFTER UPDATE OF status ON deployments
        WHEN NEW.status IS NOT OLD.status
        BEGIN
            UPDATE deployment_counts SET count = count - 1 WHERE status = OLD.status;
            INSERT INTO deployment_counts (status, count) VALUES (NEW.status, 1)
                ON CONFLICT (status) DO UPDATE SET count = count + 1;
        END;
        DROP INDEX deployments_by_status;

        -- The reconciler's read of an instance's newest deployments, from index pages clustered by instance, so its
        -- cost does not grow with the table.
        CREATE INDEX deployments_recent ON deployments
            (instance_id, seq, action, status, desired_hash, created_by, error, finished_at, retry_of);

        -- Every queue's deployments in creation order, so a claim reads the oldest heads first instead of sorting
        -- everything queued.
        CREATE INDEX deployments_queue_order ON deployments (seq) WHERE status IN ('APPROVED', 'PENDING');
        """

    /// Instance status for the reconciler, and the daemon's persistent secrets (callback token key).
    private static let reconcilerSchema = """
        ALTER TABLE instances ADD COLUMN observed_generation INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE instances ADD COLUMN conditions TEXT NOT NULL DEFAULT '[]';
        -- Deployments by status, for the metrics, counted from the index alone.
        CREATE INDEX deployments_by_status ON deployments (status);
        CREATE TABLE secrets (
            name TEXT PRIMARY KEY,
            value BLOB NOT NULL,
            created_at INTEGER NOT NULL
        );
        """

    /// The allowed status changes, as the trigger spells them; a store test checks them against
    /// `transition(from:to:)` by trying every pair.
    private static let initialSchema = """
        CREATE TABLE counters (
            name TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        );
        INSERT INTO counters (name, value) VALUES ('desired_state_version', 0), ('resource_version', 0);

        CREATE TABLE resources (
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            spec TEXT NOT NULL,
            spec_hash TEXT NOT NULL,
            generation INTEGER NOT NULL,
            resource_version INTEGER NOT NULL,
            source TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (kind, id)
        );

        CREATE TABLE instances (
            id TEXT PRIMARY KEY,
            environment TEXT NOT NULL,
            bundle TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('INITIALIZED', 'PROVISIONED', 'FAILED', 'DECOMMISSIONED')),
            params TEXT,
            connection_params TEXT,
            version TEXT,
            outputs TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE INDEX instances_by_environment ON instances (environment, id);

        CREATE TABLE deployments (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            instance_id TEXT NOT NULL REFERENCES instances (id),
            action TEXT NOT NULL CHECK (action IN ('provision', 'plan', 'decommission')),
            params TEXT NOT NULL,
            connection_params TEXT NOT NULL,
            version TEXT NOT NULL,
            md_metadata TEXT NOT NULL,
            desired_hash TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN
                ('PROPOSED', 'REJECTED', 'APPROVED', 'PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'ABORTED')),
            created_by TEXT NOT NULL,
            proposed_by TEXT,
            approved_by TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            started_at INTEGER,
            finished_at INTEGER,
            attempt INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_expires_at INTEGER,
            error TEXT,
            outputs TEXT,
            plan_result TEXT
        );
        -- At most one RUNNING deployment per instance.
        CREATE UNIQUE INDEX deployments_one_running ON deployments (instance_id) WHERE status = 'RUNNING';
        -- At most one open deployment per instance and desired-state hash: enqueueing twice is a no-op.
        CREATE UNIQUE INDEX deployments_one_open_per_hash ON deployments (instance_id, desired_hash)
            WHERE status IN ('PROPOSED', 'APPROVED', 'PENDING', 'RUNNING');
        -- Each instance's queue, in creation order.
        CREATE INDEX deployments_queue ON deployments (instance_id, seq) WHERE status IN ('APPROVED', 'PENDING');
        -- An instance's history, newest first.
        CREATE INDEX deployments_history ON deployments (instance_id, seq);
        -- Leases to resolve.
        CREATE INDEX deployments_leases ON deployments (lease_expires_at) WHERE status = 'RUNNING';

        CREATE TRIGGER deployments_snapshot_immutable BEFORE UPDATE ON deployments
        WHEN NEW.seq IS NOT OLD.seq OR NEW.id IS NOT OLD.id OR NEW.instance_id IS NOT OLD.instance_id
            OR NEW.action IS NOT OLD.action OR NEW.params IS NOT OLD.params
            OR NEW.connection_params IS NOT OLD.connection_params OR NEW.version IS NOT OLD.version
            OR NEW.md_metadata IS NOT OLD.md_metadata OR NEW.desired_hash IS NOT OLD.desired_hash
            OR NEW.created_by IS NOT OLD.created_by OR NEW.created_at IS NOT OLD.created_at
        BEGIN
            SELECT RAISE(ABORT, 'deployment snapshot is immutable');
        END;

        CREATE TRIGGER deployments_status_transition BEFORE UPDATE OF status ON deployments
        WHEN NEW.status IS NOT OLD.status AND OLD.status || '>' || NEW.status NOT IN (
            'PROPOSED>APPROVED', 'PROPOSED>REJECTED', 'PROPOSED>ABORTED',
            'APPROVED>RUNNING', 'PENDING>RUNNING', 'APPROVED>ABORTED', 'PENDING>ABORTED',
            'RUNNING>COMPLETED', 'RUNNING>FAILED', 'RUNNING>ABORTED')
        BEGIN
            SELECT RAISE(ABORT, 'deployment status transition not allowed');
        END;

        CREATE TRIGGER deployments_never_deleted BEFORE DELETE ON deployments
        BEGIN
            SELECT RAISE(ABORT, 'deployments are never deleted');
        END;

        CREATE TABLE deployment_events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            deployment_id TEXT NOT NULL REFERENCES deployments (id),
            at INTEGER NOT NULL,
            kind TEXT NOT NULL,
            message TEXT NOT NULL,
            data TEXT
        );
        CREATE INDEX deployment_events_by_deployment ON deployment_events (deployment_id, seq);
        CREATE TRIGGER deployment_events_append_only BEFORE UPDATE ON deployment_events
        BEGIN
            SELECT RAISE(ABORT, 'deployment events are append-only');
        END;
        CREATE TRIGGER deployment_events_never_deleted BEFORE DELETE ON deployment_events
        BEGIN
            SELECT RAISE(ABORT, 'deployment events are append-only');
        END;

        CREATE TABLE audit_log (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            at INTEGER NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target_kind TEXT NOT NULL,
            target_id TEXT NOT NULL,
            before TEXT,
            after TEXT
        );
        CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
        BEGIN
            SELECT RAISE(ABORT, 'the audit log is append-only');
        END;
        CREATE TRIGGER audit_log_never_deleted BEFORE DELETE ON audit_log
        BEGIN
            SELECT RAISE(ABORT, 'the audit log is append-only');
        END;
        """
}
