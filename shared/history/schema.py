"""The metadata database's tables, the columns added to them since, and its creation."""

from __future__ import annotations

import psycopg2
from psycopg2 import sql

from shared.settings import Settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    run_id                text PRIMARY KEY,
    logical_date          date NOT NULL,
    trigger               text NOT NULL CHECK (trigger IN ('beat', 'api', 'cli')),
    params                jsonb NOT NULL DEFAULT '{}',
    status                text NOT NULL DEFAULT 'queued'
                          CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    created_at            timestamptz NOT NULL DEFAULT now(),
    started_at            timestamptz,
    finished_at           timestamptz,
    extracted_batches     integer,          -- known once extraction is complete
    source_rows           integer,
    publish_requested_at  timestamptz,      -- set once, by the completion barrier
    curated_key           text,
    curated_rows          integer,
    error                 text
);
-- Two triggers of the same logical run (same date) never run at once.
CREATE UNIQUE INDEX IF NOT EXISTS run_one_active_per_date ON run (logical_date)
    WHERE status IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS run_created_at ON run (created_at DESC);

CREATE TABLE IF NOT EXISTS batch (
    run_id       text NOT NULL REFERENCES run ON DELETE CASCADE,
    stage        text NOT NULL CHECK (stage IN ('extract', 'archive', 'transform', 'classify', 'publish')),
    batch_no     integer NOT NULL,          -- 0 for the run-level publish step
    status       text NOT NULL
                 CHECK (status IN ('running', 'succeeded', 'retrying', 'dead')),
    attempts     integer NOT NULL DEFAULT 0, -- deliveries that started work
    retries      integer NOT NULL DEFAULT 0, -- of which scheduled retries after a transient error
    started_at   timestamptz,
    finished_at  timestamptz,
    rows_in      integer,
    rows_out     integer,
    rejects      integer,
    input_key    text,
    output_key   text,
    cursor       bigint,                    -- extract: the last review id of the batch (resume point)
    worker       text,
    last_error   text,
    PRIMARY KEY (run_id, stage, batch_no)
);

-- Right-to-erasure requests, by pseudonym only: keeping the raw buyer id of someone
-- who asked to be forgotten would defeat the request.
CREATE TABLE IF NOT EXISTS erasure (
    buyer_pseudonym  text PRIMARY KEY,
    requested_at     timestamptz NOT NULL DEFAULT now()
);

-- An operator's retries of failed runs: each batch cleared for a re-run, as it was before.
CREATE TABLE IF NOT EXISTS batch_retry (
    run_id       text NOT NULL REFERENCES run ON DELETE CASCADE,
    stage        text NOT NULL,
    batch_no     integer NOT NULL,
    retried_at   timestamptz NOT NULL DEFAULT now(),
    trigger      text NOT NULL,             -- cli or api
    status       text NOT NULL,             -- dead; succeeded when re-run as the downstream of another
    attempts     integer NOT NULL,
    retries      integer NOT NULL,
    last_error   text
);
CREATE INDEX IF NOT EXISTS batch_retry_run ON batch_retry (run_id, retried_at);

-- Deliveries whose worker died mid-batch (its lease ran out, shared/leases.py): who held the batch, when the
-- pipeline noticed, and which worker took the batch over.
CREATE TABLE IF NOT EXISTS batch_lost (
    run_id          text NOT NULL REFERENCES run ON DELETE CASCADE,
    stage           text NOT NULL,
    batch_no        integer NOT NULL,
    attempt         integer NOT NULL,       -- the delivery that died (batch.attempts when it began)
    worker          text,
    worker_pid      integer,
    started_at      timestamptz,
    lease_until     timestamptz,            -- its last renewal ran out then: the worker was gone
    noticed_at      timestamptz NOT NULL DEFAULT now(),  -- the lease check re-announced it, or a delivery took it
    taken_over_at   timestamptz,
    taken_over_by   text,
    taken_over_pid  integer,
    PRIMARY KEY (run_id, stage, batch_no, attempt)
);
"""

# Columns added after SCHEMA's tables first shipped, oldest first. CREATE TABLE IF NOT EXISTS leaves a table
# of an existing database as it was: these give it the columns. Each runs on every init, so only append.
MIGRATIONS = (
    # Incremental runs.
    "ALTER TABLE run ADD COLUMN IF NOT EXISTS mode text CHECK (mode IN ('full', 'incremental'))",
    "ALTER TABLE run ADD COLUMN IF NOT EXISTS mode_reason text",
    # The curated version an incremental run merges into.
    "ALTER TABLE run ADD COLUMN IF NOT EXISTS base_version text",
    # (updated_at, review_id) the run reads after.
    "ALTER TABLE run ADD COLUMN IF NOT EXISTS watermark_from timestamptz",
    "ALTER TABLE run ADD COLUMN IF NOT EXISTS watermark_from_id bigint",
    # Where the next run reads after.
    "ALTER TABLE run ADD COLUMN IF NOT EXISTS watermark_to timestamptz",
    "ALTER TABLE run ADD COLUMN IF NOT EXISTS watermark_to_id bigint",
    # Its snapshot less the lag: the watermark is no later than this.
    "ALTER TABLE run ADD COLUMN IF NOT EXISTS watermark_cap timestamptz",
    # The classifier of the published version.
    "ALTER TABLE run ADD COLUMN IF NOT EXISTS model_fingerprint text",
    # What publish kept, replaced, added, removed.
    "ALTER TABLE run ADD COLUMN IF NOT EXISTS changes jsonb",
    # Extract: with cursor, the resume point.
    "ALTER TABLE batch ADD COLUMN IF NOT EXISTS cursor_ts timestamptz",
    # What the API asked for: it has no broker and may not write the lake. Written only by request_run,
    # request_retry and request_rollback (FUNCTIONS), naming the run they create, reopen or restore the version of;
    # the worker that can do it claims each once (shared/run_requests.py). A retry's cleared batches are its
    # batch_retry rows of requested_at; actor: who asked, for the audit record of a rollback the worker does.
    """CREATE TABLE IF NOT EXISTS run_request (
        request_id    bigserial PRIMARY KEY,
        run_id        text NOT NULL REFERENCES run ON DELETE CASCADE,
        kind          text NOT NULL CHECK (kind IN ('start', 'retry', 'rollback')),
        actor         text,
        requested_at  timestamptz NOT NULL DEFAULT now(),
        claimed_at    timestamptz
    )""",
    "CREATE INDEX IF NOT EXISTS run_request_unclaimed ON run_request (request_id) WHERE claimed_at IS NULL",
    # The audit trail (shared/history/audit.py): every operator action once, who by name, never a secret.
    """
    CREATE TABLE IF NOT EXISTS audit (
        id       bigserial PRIMARY KEY,
        at       timestamptz NOT NULL DEFAULT now(),
        actor    text NOT NULL,             -- the credential's name (API) or the OS user (CLI)
        via      text NOT NULL CHECK (via IN ('api', 'cli')),
        action   text NOT NULL CHECK (action IN ('trigger', 'retry', 'rollback', 'erasure')),
        target   text,                      -- a run id, a curated version, an erased buyer's pseudonym
        outcome  text NOT NULL,
        detail   jsonb NOT NULL DEFAULT '{}'
    )
    """,
    # Leases (shared/leases.py): the holder's process, and until when its last renewal holds the batch.
    "ALTER TABLE batch ADD COLUMN IF NOT EXISTS worker_pid integer",
    "ALTER TABLE batch ADD COLUMN IF NOT EXISTS lease_until timestamptz",
    # lost: the holder died mid-batch; re-announced, waiting for a worker.
    "ALTER TABLE batch DROP CONSTRAINT IF EXISTS batch_status_check, ADD CONSTRAINT batch_status_check "
    "CHECK (status IN ('running', 'succeeded', 'retrying', 'dead', 'lost'))",
    # The lease check, every LEASE_CHECK_EVERY_S, reads only the batches being worked on.
    "CREATE INDEX IF NOT EXISTS batch_leased ON batch (lease_until) WHERE status = 'running'",
    # The curated version's size: the bytes of every curated object its publish wrote (the Parquet, its known
    # keys, its serving files), which the API may not read itself (the console's health, GET /jobs/{id}).
    "ALTER TABLE run ADD COLUMN IF NOT EXISTS curated_bytes bigint",
    # Each worker's heartbeat (shared/heartbeats.py), so the API knows which stages have a live worker without
    # a broker; beat is seen through the lease check it sends (host and pid unknown).
    """CREATE TABLE IF NOT EXISTS worker_heartbeat (
        worker      text PRIMARY KEY,         -- Celery's node name (publish@host), or beat
        stage       text NOT NULL,            -- its queue, or beat
        host        text,
        pid         integer,
        started_at  timestamptz,
        last_seen   timestamptz NOT NULL
    )""",
)


# The writes an operator's retry, the completion barrier and the API's requests make, as functions that run as the
# owner: a role allowed to call them (the API's) can add only a queued run with its request, reopen only a failed
# run that no later run superseded, never write those rows itself. Replaced at each init, after the migrations.
FUNCTIONS = """
-- Row locks belong to the caller's transaction: the run and its batches stay as read until it ends.
CREATE OR REPLACE FUNCTION lock_run_for_retry(p_run text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    PERFORM 1 FROM run WHERE run_id = p_run FOR UPDATE;
    PERFORM 1 FROM batch WHERE run_id = p_run FOR UPDATE;
END $$;

-- Each cleared batch is logged in batch_retry as it was, then deleted; the run is running again.
CREATE OR REPLACE FUNCTION reopen_failed_run(p_run text, p_trigger text, p_stages text[], p_batches integer[])
RETURNS SETOF batch LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    r run;
BEGIN
    SELECT * INTO r FROM run WHERE run_id = p_run FOR UPDATE;
    IF r.status IS DISTINCT FROM 'failed' THEN
        RAISE EXCEPTION 'run % is not failed', p_run;
    END IF;
    IF EXISTS (SELECT 1 FROM run WHERE created_at > r.created_at AND status IN ('queued', 'running', 'succeeded')) THEN
        RAISE EXCEPTION 'run % was superseded by a later run', p_run;
    END IF;
    RETURN QUERY
    WITH cleared AS (
        DELETE FROM batch b USING unnest(p_stages, p_batches) AS k(stage, batch_no)
        WHERE b.run_id = p_run AND b.stage = k.stage AND b.batch_no = k.batch_no
        RETURNING b.*
    ), logged AS (
        INSERT INTO batch_retry (run_id, stage, batch_no, trigger, status, attempts, retries, last_error)
        SELECT c.run_id, c.stage, c.batch_no, p_trigger, c.status, c.attempts, c.retries, c.last_error FROM cleared c
    )
    SELECT * FROM cleared;
    -- The barrier claims publish anew; the run's time is counted again from here (batch_retry).
    UPDATE run SET status = 'running', finished_at = NULL, error = NULL, publish_requested_at = NULL
    WHERE run_id = p_run;
    -- Only the publish step had failed (every batch is classified): the retry announces it (shared/recovery.py).
    PERFORM claim_publish(p_run);
END $$;

CREATE OR REPLACE FUNCTION claim_publish(p_run text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    UPDATE run SET publish_requested_at = now()
    WHERE run_id = p_run AND status = 'running' AND publish_requested_at IS NULL
      AND extracted_batches IS NOT NULL
      AND extracted_batches = (SELECT count(*) FROM batch WHERE run_id = p_run
                               AND stage = 'classify' AND status = 'succeeded');
    RETURN FOUND;
END $$;

-- The API's requests (run_request): a queued run with its start request (POST /jobs), a failed run reopened with
-- its retry request (POST /jobs/{id}/retry). NOTIFY wakes the extract worker's claimer when they commit.
CREATE OR REPLACE FUNCTION request_run(p_run text, p_date date, p_params jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    INSERT INTO run (run_id, logical_date, trigger, params) VALUES (p_run, p_date, 'api', p_params);
    INSERT INTO run_request (run_id, kind) VALUES (p_run, 'start');
    PERFORM pg_notify('run_request', p_run);
END $$;

CREATE OR REPLACE FUNCTION request_retry(p_run text, p_stages text[], p_batches integer[])
RETURNS SETOF batch LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY SELECT * FROM reopen_failed_run(p_run, 'api', p_stages, p_batches);
    INSERT INTO run_request (run_id, kind) VALUES (p_run, 'retry');
    PERFORM pg_notify('run_request', p_run);
END $$;

-- POST /curated/rollback: the version a successful run published, served again by the publish worker.
CREATE OR REPLACE FUNCTION request_rollback(p_run text, p_actor text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM run WHERE run_id = p_run AND status = 'succeeded' AND curated_key IS NOT NULL) THEN
        RAISE EXCEPTION 'no curated version %', p_run USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO run_request (run_id, kind, actor) VALUES (p_run, 'rollback', p_actor);
    PERFORM pg_notify('run_request', p_run);
END $$;
"""

# What the API's role may do, granted afresh at each init (REVOKE ALL drops its column grants too). It reads the
# history but never the erasure requests (deleting one would bring an erased buyer back at the next publish).
# A function may be called by anyone unless revoked from PUBLIC.
API_GRANTS = """
REVOKE ALL ON run, batch, batch_retry, batch_lost, erasure, run_request, audit, worker_heartbeat FROM {api};
-- worker_heartbeat: which stages have a live worker (GET /console/workers).
GRANT SELECT ON run, batch, batch_retry, batch_lost, worker_heartbeat TO {api};
-- The audit trail: the API records its operators' actions and shows them, and can change none.
GRANT SELECT, INSERT ON audit TO {api};
GRANT USAGE ON SEQUENCE audit_id_seq TO {api};
-- POST /jobs (History.request_run), POST /jobs/{{id}}/retry (History.reopen_run) and POST /curated/rollback
-- (History.request_rollback): through the functions only, so that every request it makes names a run it has just
-- created or reopened, or one that published a version.
REVOKE ALL ON FUNCTION lock_run_for_retry, reopen_failed_run, claim_publish, request_run, request_retry,
    request_rollback FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lock_run_for_retry, request_run, request_retry, request_rollback TO {api};
"""

# What the workers' role may do, granted afresh at each init: the rows each stage writes, never the schema, never a
# change to an erasure request (deleting one would bring an erased buyer back at the next publish; adding one is the
# operator's `gdpr erase`, as the owner). The completion barrier goes through claim_publish, as the API's retry does.
WORKER_GRANTS = """
REVOKE ALL ON run, batch, batch_retry, batch_lost, erasure, run_request, audit, worker_heartbeat FROM {worker};
-- extract, archive and transform leave erased buyers out; the sweep and the run gauges read retries.
GRANT SELECT ON run, batch, batch_retry, erasure TO {worker};
-- leases: the lease check and a delivery taking over a dead holder's batch log it (shared/leases.py).
GRANT SELECT, INSERT, UPDATE (taken_over_at, taken_over_by, taken_over_pid) ON batch_lost TO {worker};
-- beat's daily trigger (extract.start): a queued run.
GRANT INSERT (run_id, logical_date, trigger, params) ON run TO {worker};
-- a run's start, plan, extraction and end; not publish_requested_at (claim_publish) nor what the trigger set.
GRANT UPDATE (status, started_at, finished_at, mode, mode_reason, base_version, watermark_from, watermark_from_id,
              watermark_cap, extracted_batches, source_rows, watermark_to, watermark_to_id, curated_key,
              curated_rows, curated_bytes, model_fingerprint, changes, error) ON run TO {worker};
-- each stage's batch rows; DELETE: extraction drops its retry placeholder (History.set_extracted).
GRANT INSERT, UPDATE, DELETE ON batch TO {worker};
GRANT EXECUTE ON FUNCTION claim_publish TO {worker};
-- the extract worker claims the API's run requests (shared/run_requests.py): FOR UPDATE needs the column's UPDATE.
GRANT SELECT, UPDATE (claimed_at) ON run_request TO {worker};
-- the publish worker records the outcome of a rollback the API requested, in the operator's name.
GRANT INSERT ON audit TO {worker};
GRANT USAGE ON SEQUENCE audit_id_seq TO {worker};
-- each worker's heartbeat: its row updated by name (which the WHERE reads: SELECT of that column alone), or added.
GRANT INSERT, UPDATE, SELECT (worker) ON worker_heartbeat TO {worker};
"""


def init_metadata_db(settings: Settings) -> None:
    """Create the metadata database, its owner's, the API's and the workers' roles and its tables, migrate them and
    grant the API and the workers their parts; idempotent."""
    admin = psycopg2.connect(settings.postgres_admin_dsn)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            for user, password in (
                (settings.metadata_user, settings.metadata_password),
                (settings.api_metadata_user, settings.api_metadata_password),
                (settings.worker_metadata_user, settings.worker_metadata_password),
            ):
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
                verb = "ALTER" if cur.fetchone() else "CREATE"
                cur.execute(
                    sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(user)),
                    (password.get_secret_value(),),
                )
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (settings.metadata_db,))
            if cur.fetchone() is None:
                cur.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(settings.metadata_db), sql.Identifier(settings.metadata_user)
                    )
                )
    finally:
        admin.close()
    conn = psycopg2.connect(settings.metadata_dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(SCHEMA)
            for migration in MIGRATIONS:
                cur.execute(migration)
            cur.execute(FUNCTIONS)
            cur.execute(sql.SQL(API_GRANTS).format(api=sql.Identifier(settings.api_metadata_user)))
            cur.execute(sql.SQL(WORKER_GRANTS).format(worker=sql.Identifier(settings.worker_metadata_user)))
    finally:
        conn.close()
