import ConvergeCore
import Foundation
import Logging
import PostgresNIO

extension PostgresStore {
    /// The named, append-only migrations, applied in order, each in its own transaction. Never edit one that has
    /// shipped: add another. The first holds everything the SQLite migrations of the same meaning built, in
    /// PostgreSQL's words.
    static let migrations: [(name: String, sql: String)] = [
        ("2026-12-05-initial", initialSchema)
    ]

    /// The key of the session-level advisory lock under which migrations run, so that daemons starting at once
    /// migrate once.
    static let migrationLock: Int64 = 0x636F_6E76_6D69_6772

    /// Applies pending migrations under the migration lock. A database with a migration this build does not know
    /// (a newer converge migrated it) is refused with `failed_precondition`, and nothing is written.
    public func migrate() async throws {
        do {
            try await client.withConnection { connection in
                _ = try await connection.query("SELECT pg_advisory_lock(\(Self.migrationLock))", logger: logger)
                do {
                    try await applyMigrations(connection)
                    _ = try await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger)
                } catch {
                    _ = try? await connection.query(
                        "SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger)
                    throw error
                }
            }
        } catch {
            throw Self.mapped(error).error
        }
        logger.info("store opened", metadata: ["store.database": "\(location)"])
    }

    private func applyMigrations(_ connection: PostgresConnection) async throws {
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)
            """, logger: logger)
        let applied = Set(
            try await connection.column("SELECT name FROM schema_migrations", String.self, logger: logger))
        let known = Set(Self.migrations.map(\.name))
        if let unknown = applied.subtracting(known).sorted().last {
            throw ConvergeError(
                .failedPrecondition,
                "the database \(location) has a newer schema than this converge knows (migration \(unknown)); "
                    + "run a converge at least as new as the one that migrated it")
        }
        for migration in Self.migrations where !applied.contains(migration.name) {
            try await connection.query("BEGIN", logger: logger)
            do {
                // One prepared statement holds one command: the migration's commands run as one dynamic command.
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: "DO $migration$ BEGIN EXECUTE $commands$\(migration.sql)$commands$; END $migration$"),
                    logger: logger)
                try await connection.query(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (\(migration.name), \(now))",
                    logger: logger)
                try await connection.query("COMMIT", logger: logger)
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
            logger.info("store migrated", metadata: ["store.migration": "\(migration.name)"])
        }
    }

    /// The whole schema. The allowed status changes are spelt as in `transition(from:to:)`; the store tests try every
    /// pair by raw SQL on both engines.
    private static let initialSchema = """
        CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
        INSERT INTO counters (name, value) VALUES ('desired_state_version', 0), ('resource_version', 0);

        CREATE TABLE resources (
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            spec TEXT NOT NULL,
            spec_hash TEXT NOT NULL,
            generation BIGINT NOT NULL,
            resource_version BIGINT NOT NULL,
            source TEXT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (kind, id)
        );

        CREATE TABLE api_resources (
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            document TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
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
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            observed_generation BIGINT NOT NULL DEFAULT 0,
            conditions TEXT NOT NULL DEFAULT '[]',
            drifted BOOLEAN NOT NULL DEFAULT FALSE,
            orphaned_by TEXT,
            orphaned_at BIGINT
        );
        CREATE INDEX instances_by_environment ON instances (environment, id);
        CREATE INDEX instances_drifted ON instances (id) WHERE drifted;

        CREATE TABLE deployments (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            instance_id TEXT NOT NULL REFERENCES instances (id),
            environment TEXT NOT NULL,
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
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            started_at BIGINT,
            finished_at BIGINT,
            attempt INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_expires_at BIGINT,
            lease_epoch BIGINT NOT NULL DEFAULT 0,
            error TEXT,
            outputs TEXT,
            plan_result TEXT,
            retry_of TEXT REFERENCES deployments (id),
            rollback_of TEXT REFERENCES deployments (id),
            approval_step TEXT CHECK (approval_step IN ('plan', 'apply')),
            plan_id TEXT REFERENCES deployments (id)
        );
        -- At most one RUNNING deployment per instance.
        CREATE UNIQUE INDEX deployments_one_running ON deployments (instance_id) WHERE status = 'RUNNING';
        -- At most one open deployment per instance and desired-state hash: enqueueing twice is a no-op.
        CREATE UNIQUE INDEX deployments_one_open_per_hash ON deployments (instance_id, desired_hash)
            WHERE status IN ('PROPOSED', 'APPROVED', 'PENDING', 'RUNNING');
        -- Each instance's queue in creation order, and every queue's heads oldest first for a claim.
        CREATE INDEX deployments_queue ON deployments (instance_id, seq) WHERE status IN ('APPROVED', 'PENDING');
        CREATE INDEX deployments_queue_order ON deployments (seq) WHERE status IN ('APPROVED', 'PENDING');
        -- An instance's history, newest first.
        CREATE INDEX deployments_history ON deployments (instance_id, seq);
        -- Leases to resolve.
        CREATE INDEX deployments_leases ON deployments (lease_expires_at) WHERE status = 'RUNNING';
        -- Listing, newest first, by the filters the API offers.
        CREATE INDEX deployments_by_environment ON deployments (environment, seq);
        CREATE INDEX deployments_by_status_seq ON deployments (status, seq);
        CREATE INDEX deployments_by_creator ON deployments (created_by, seq);
        CREATE INDEX deployments_by_action ON deployments (action, seq);

        -- What a deployment may never do: change its snapshot, move other than `transition(from:to:)` allows, take a
        -- lease epoch back, or skip a two-phase step.
        CREATE FUNCTION deployments_before_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.seq IS DISTINCT FROM OLD.seq OR NEW.id IS DISTINCT FROM OLD.id
                OR NEW.instance_id IS DISTINCT FROM OLD.instance_id OR NEW.action IS DISTINCT FROM OLD.action
                OR NEW.params IS DISTINCT FROM OLD.params
                OR NEW.connection_params IS DISTINCT FROM OLD.connection_params
                OR NEW.version IS DISTINCT FROM OLD.version OR NEW.md_metadata IS DISTINCT FROM OLD.md_metadata
                OR NEW.desired_hash IS DISTINCT FROM OLD.desired_hash
                OR NEW.created_by IS DISTINCT FROM OLD.created_by OR NEW.created_at IS DISTINCT FROM OLD.created_at
                OR NEW.retry_of IS DISTINCT FROM OLD.retry_of OR NEW.environment IS DISTINCT FROM OLD.environment
                OR NEW.rollback_of IS DISTINCT FROM OLD.rollback_of OR NEW.plan_id IS DISTINCT FROM OLD.plan_id THEN
                RAISE EXCEPTION 'deployment snapshot is immutable';
            END IF;
            IF NEW.status IS DISTINCT FROM OLD.status AND OLD.status || '>' || NEW.status NOT IN (
                'PROPOSED>APPROVED', 'PROPOSED>REJECTED', 'PROPOSED>ABORTED',
                'APPROVED>RUNNING', 'PENDING>RUNNING', 'APPROVED>ABORTED', 'PENDING>ABORTED',
                'RUNNING>COMPLETED', 'RUNNING>FAILED', 'RUNNING>ABORTED') THEN
                RAISE EXCEPTION 'deployment status transition not allowed';
            END IF;
            IF NEW.lease_epoch < OLD.lease_epoch THEN
                RAISE EXCEPTION 'a lease epoch never goes back';
            END IF;
            IF NEW.approval_step IS DISTINCT FROM OLD.approval_step AND NOT (
                OLD.approval_step = 'plan' AND NEW.approval_step = 'apply' AND OLD.status = 'PROPOSED'
                AND NEW.status = 'PROPOSED' AND EXISTS (
                    SELECT 1 FROM deployment_approvals AS a WHERE a.deployment_id = NEW.id AND a.step = 'plan')) THEN
                RAISE EXCEPTION 'an approval step moves only from plan to apply, after the plan approval';
            END IF;
            IF OLD.status = 'PROPOSED' AND NEW.status = 'APPROVED' AND OLD.approval_step IS NOT NULL AND NOT (
                NEW.approval_step = 'apply' AND EXISTS (
                    SELECT 1 FROM deployment_approvals AS a WHERE a.deployment_id = NEW.id AND a.step = 'apply')) THEN
                RAISE EXCEPTION 'a two-phase proposal is approved only at its apply step, with its apply approval';
            END IF;
            RETURN NEW;
        END $$;

        -- What a new deployment must be: of its instance's environment, a rollback to the same instance, a two-phase
        -- proposal at its plan step with a plan of its instance, a drift check of what a managed instance applied.
        CREATE FUNCTION deployments_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.environment IS DISTINCT FROM (SELECT i.environment FROM instances AS i WHERE i.id = NEW.instance_id)
            THEN
                RAISE EXCEPTION 'a deployment''s environment must be its instance''s';
            END IF;
            IF NEW.rollback_of IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM deployments AS d WHERE d.id = NEW.rollback_of AND d.instance_id = NEW.instance_id) THEN
                RAISE EXCEPTION 'a rollback must return to an earlier deployment of the same instance';
            END IF;
            IF (NEW.approval_step IS NOT NULL OR NEW.plan_id IS NOT NULL) AND NOT (
                NEW.approval_step = 'plan' AND NEW.status = 'PROPOSED' AND NEW.action <> 'plan' AND EXISTS (
                    SELECT 1 FROM deployments AS p
                    WHERE p.id = NEW.plan_id AND p.instance_id = NEW.instance_id AND p.action = 'plan')) THEN
                RAISE EXCEPTION 'a two-phase proposal enters PROPOSED at its plan step, with a plan of its instance';
            END IF;
            IF NEW.action = 'plan' AND (NEW.md_metadata::jsonb -> 'driftCheck') = 'true'::jsonb AND (
                NOT EXISTS (
                    SELECT 1 FROM instances AS i
                    WHERE i.id = NEW.instance_id AND i.status = 'PROVISIONED' AND i.orphaned_by IS NULL
                        AND i.params IS NOT DISTINCT FROM NEW.params
                        AND i.connection_params IS NOT DISTINCT FROM NEW.connection_params
                        AND i.version IS NOT DISTINCT FROM NEW.version)
                OR EXISTS (
                    SELECT 1 FROM deployments AS d
                    WHERE d.instance_id = NEW.instance_id
                        AND d.status IN ('PROPOSED', 'APPROVED', 'PENDING', 'RUNNING'))) THEN
                RAISE EXCEPTION
                    'a drift check plans what a provisioned, managed instance without open deployments applied';
            END IF;
            RETURN NEW;
        END $$;

        CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '%', TG_ARGV[0];
        END $$;

        CREATE TRIGGER deployments_before_update BEFORE UPDATE ON deployments
            FOR EACH ROW EXECUTE FUNCTION deployments_before_update();
        CREATE TRIGGER deployments_before_insert BEFORE INSERT ON deployments
            FOR EACH ROW EXECUTE FUNCTION deployments_before_insert();
        CREATE TRIGGER deployments_never_deleted BEFORE DELETE OR TRUNCATE ON deployments
            FOR EACH STATEMENT EXECUTE FUNCTION refuse_change('deployments are never deleted');

        -- Every creation and status change of a deployment, in commit order, for watchers: the trigger takes a
        -- transaction-level lock before it numbers the change, held to the commit, so a reader that has seen
        -- sequence n never later finds a new change at or below n. It also wakes the daemons listening.
        CREATE TABLE deployment_changes (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            deployment_id TEXT NOT NULL REFERENCES deployments (id),
            instance_id TEXT NOT NULL,
            status TEXT NOT NULL,
            at BIGINT NOT NULL
        );
        CREATE TRIGGER deployment_changes_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON deployment_changes
            FOR EACH STATEMENT EXECUTE FUNCTION refuse_change('deployment changes are append-only');

        -- Deployment counts by status, for the metrics: each change appends its deltas (no two writers contend for
        -- one row), and a count folds them in.
        CREATE TABLE deployment_count_deltas (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            status TEXT NOT NULL,
            delta INTEGER NOT NULL
        );
        CREATE TABLE deployment_counts (status TEXT PRIMARY KEY, count BIGINT NOT NULL);

        CREATE FUNCTION deployments_after_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'UPDATE' AND NEW.status IS NOT DISTINCT FROM OLD.status THEN
                RETURN NULL;
            END IF;
            PERFORM pg_advisory_xact_lock(7171);
            INSERT INTO deployment_changes (deployment_id, instance_id, status, at)
                VALUES (NEW.id, NEW.instance_id, NEW.status, NEW.updated_at);
            INSERT INTO deployment_count_deltas (status, delta) VALUES (NEW.status, 1);
            IF TG_OP = 'UPDATE' THEN
                INSERT INTO deployment_count_deltas (status, delta) VALUES (OLD.status, -1);
            END IF;
            PERFORM pg_notify('converge_deployments', NEW.status || ' ' || NEW.id);
            RETURN NULL;
        END $$;
        CREATE TRIGGER deployments_after_change AFTER INSERT OR UPDATE OF status ON deployments
            FOR EACH ROW EXECUTE FUNCTION deployments_after_change();

        CREATE TABLE deployment_events (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            deployment_id TEXT NOT NULL REFERENCES deployments (id),
            at BIGINT NOT NULL,
            kind TEXT NOT NULL,
            message TEXT NOT NULL,
            data TEXT
        );
        CREATE INDEX deployment_events_by_deployment ON deployment_events (deployment_id, seq);
        CREATE TRIGGER deployment_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON deployment_events
            FOR EACH STATEMENT EXECUTE FUNCTION refuse_change('deployment events are append-only');

        -- Every approval recorded (which step, who, when), append-only: of the awaited step, never by the proposer,
        -- never of a plan step whose plan has not completed, one step per principal.
        CREATE TABLE deployment_approvals (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            deployment_id TEXT NOT NULL REFERENCES deployments (id),
            step TEXT NOT NULL CHECK (step IN ('review', 'plan', 'apply')),
            principal TEXT NOT NULL,
            at BIGINT NOT NULL,
            UNIQUE (deployment_id, step),
            UNIQUE (deployment_id, principal)
        );
        CREATE FUNCTION deployment_approvals_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NOT EXISTS (
                SELECT 1 FROM deployments AS d
                WHERE d.id = NEW.deployment_id AND d.status = 'PROPOSED'
                    AND COALESCE(d.approval_step, 'review') = NEW.step
                    AND d.proposed_by IS DISTINCT FROM NEW.principal
                    AND (NEW.step <> 'plan' OR EXISTS (
                        SELECT 1 FROM deployments AS p WHERE p.id = d.plan_id AND p.status = 'COMPLETED'))) THEN
                RAISE EXCEPTION
                    'an approval is of the step a PROPOSED deployment awaits, by another than its proposer';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER deployment_approvals_before_insert BEFORE INSERT ON deployment_approvals
            FOR EACH ROW EXECUTE FUNCTION deployment_approvals_before_insert();
        CREATE TRIGGER deployment_approvals_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON deployment_approvals
            FOR EACH STATEMENT EXECUTE FUNCTION refuse_change('deployment approvals are append-only');

        CREATE TABLE audit_log (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at BIGINT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target_kind TEXT NOT NULL,
            target_id TEXT NOT NULL,
            before TEXT,
            after TEXT
        );
        CREATE INDEX audit_log_by_actor ON audit_log (actor, seq);
        CREATE INDEX audit_log_by_action ON audit_log (action, seq);
        CREATE INDEX audit_log_by_target_kind ON audit_log (target_kind, seq);
        CREATE INDEX audit_log_by_target ON audit_log (target_id, seq);
        CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION refuse_change('the audit log is append-only');

        -- The daemon's own secrets (the callback token key), shared by every daemon of the database.
        CREATE TABLE secrets (name TEXT PRIMARY KEY, value BYTEA NOT NULL, created_at BIGINT NOT NULL);

        CREATE TABLE instance_secrets (
            instance_id TEXT NOT NULL REFERENCES instances (id),
            name TEXT NOT NULL CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,63}$'),
            sealed BYTEA NOT NULL CHECK (octet_length(sealed) BETWEEN 1 AND 65600),
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (instance_id, name)
        );

        CREATE TABLE rollouts (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            environment TEXT NOT NULL,
            action TEXT NOT NULL CHECK (action IN ('deploy', 'decommission')),
            status TEXT NOT NULL CHECK (status IN ('RUNNING', 'COMPLETED', 'FAILED', 'REPLACED')),
            wave INTEGER NOT NULL,
            items TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            finished_at BIGINT,
            error TEXT,
            replaced_by TEXT,
            delete_environment BOOLEAN NOT NULL DEFAULT FALSE
        );
        CREATE UNIQUE INDEX rollouts_one_running ON rollouts (environment) WHERE status = 'RUNNING';
        CREATE INDEX rollouts_by_environment ON rollouts (environment, seq);
        CREATE FUNCTION rollouts_before_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.status <> 'RUNNING' THEN
                RAISE EXCEPTION 'the rollout has ended; it no longer changes';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER rollouts_ended_stay_ended BEFORE UPDATE ON rollouts
            FOR EACH ROW EXECUTE FUNCTION rollouts_before_update();

        CREATE TABLE preview_expiries (environment TEXT PRIMARY KEY, expires_at BIGINT NOT NULL);
        CREATE INDEX preview_expiries_by_time ON preview_expiries (expires_at);

        -- The daemons of the database, as each last announced itself, and the leases each holds.
        CREATE TABLE daemons (
            id TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            version TEXT NOT NULL,
            started_at BIGINT NOT NULL,
            heartbeat_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL
        );
        CREATE INDEX daemons_by_expiry ON daemons (expires_at);
        CREATE INDEX deployments_lease_owners ON deployments (lease_owner, lease_expires_at) WHERE status = 'RUNNING';
        """
}
