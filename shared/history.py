"""Run history in the pipeline's own PostgreSQL metadata database (as Airflow keeps its own).

A *run* has an id, a trigger, parameters and a status; each stage records one
row per batch (status, attempts, timings, rows in/out, rejects, last error).
Celery's result backend expires results and is not history: this is.

The completion barrier that fires ``publish`` exactly once also lives here: it
is a conditional UPDATE on the run row, not a Celery chord (chords on Redis are
known to lose callbacks with many header tasks).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import NamedTuple

import psycopg2
import psycopg2.extensions
import psycopg2.extras
from psycopg2 import sql

from shared.settings import Settings
from shared.stages import Stage

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
-- Incremental runs (a database made before them gains the columns here).
ALTER TABLE run ADD COLUMN IF NOT EXISTS mode text CHECK (mode IN ('full', 'incremental'));
ALTER TABLE run ADD COLUMN IF NOT EXISTS mode_reason text;
ALTER TABLE run ADD COLUMN IF NOT EXISTS base_version text;      -- the curated version an incremental run merges into
ALTER TABLE run ADD COLUMN IF NOT EXISTS watermark_from timestamptz;  -- (updated_at, review_id) read after
ALTER TABLE run ADD COLUMN IF NOT EXISTS watermark_from_id bigint;
ALTER TABLE run ADD COLUMN IF NOT EXISTS watermark_to timestamptz;    -- where the next run reads after
ALTER TABLE run ADD COLUMN IF NOT EXISTS watermark_to_id bigint;
ALTER TABLE run ADD COLUMN IF NOT EXISTS watermark_cap timestamptz;   -- its snapshot less the lag: no later than this
ALTER TABLE run ADD COLUMN IF NOT EXISTS model_fingerprint text;      -- the classifier of the published version
ALTER TABLE run ADD COLUMN IF NOT EXISTS changes jsonb;               -- what publish kept, replaced, added, removed
ALTER TABLE batch ADD COLUMN IF NOT EXISTS cursor_ts timestamptz;     -- extract: with cursor, the resume point

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
"""


class RunAlreadyActive(Exception):
    def __init__(self, run_id: str, logical_date: date):
        super().__init__(f"run {run_id} for {logical_date} is already queued or running")
        self.run_id = run_id
        self.logical_date = logical_date


class BatchDead(Exception):
    """A batch exceeded its attempt limit: it is dead-lettered, not requeued again."""


class RunNotFound(LookupError):
    def __init__(self, run_id: str):
        super().__init__(f"no run {run_id!r}")


class Watermark(NamedTuple):
    """A position in the source's change order: rows are read by (updated_at, review_id)."""

    updated_at: datetime
    review_id: int


BEGINNING = Watermark(datetime(1, 1, 1, tzinfo=UTC), 0)


@dataclass(frozen=True)
class Plan:
    """How a run reads the source: everything, or what changed since its base version's watermark."""

    mode: str  # "full" or "incremental"
    reason: str
    base_version: str | None = None
    since: Watermark | None = None


@dataclass(frozen=True)
class RunDuration:
    """A run's time (so far, when it runs) against the successful runs of its mode before it."""

    run_id: str
    mode: str | None
    status: str
    seconds: float
    baseline_s: float | None  # their mean; None without any
    baseline_runs: int


@dataclass(frozen=True)
class BatchStart:
    """What ``begin_batch`` decided: go on, or skip a delivery whose work is already done."""

    attempts: int
    already_done: bool


def plan_of(run: dict) -> Plan | None:
    """The plan a run recorded, or None before its extraction started."""
    if run["mode"] is None:
        return None
    since = Watermark(run["watermark_from"], run["watermark_from_id"]) if run["watermark_from"] else None
    return Plan(run["mode"], run["mode_reason"], run["base_version"], since)


def watermark_of(run: dict) -> Watermark | None:
    """Where the run after this one reads from: set once its extraction completed."""
    return Watermark(run["watermark_to"], run["watermark_to_id"]) if run["watermark_to"] else None


def as_of(run: dict) -> datetime:
    """The moment a run scores as of (ages, recency): the start of its logical day, so that two runs
    of the same day over the same source publish the same content."""
    return datetime.combine(run["logical_date"], time.min, tzinfo=UTC)


def new_run_id(now: datetime | None = None) -> str:
    # Sortable by time: curated versions named after run ids sort oldest first.
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def init_metadata_db(settings: Settings) -> None:
    """Create the metadata database, its owner role and tables; idempotent."""
    admin = psycopg2.connect(settings.postgres_admin_dsn)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            user, password = settings.metadata_user, settings.metadata_password.get_secret_value()
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            cur.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(user)), (password,))
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (settings.metadata_db,))
            if cur.fetchone() is None:
                cur.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(settings.metadata_db), sql.Identifier(user)
                    )
                )
    finally:
        admin.close()
    conn = psycopg2.connect(settings.metadata_dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(SCHEMA)
    finally:
        conn.close()


class Connections:
    """Connections to one database, made on first use and kept for the next call.

    Nothing connects before the first use, so a process starts while PostgreSQL restarts (its first
    task retries instead of the worker crashing). Connecting costs ~16 times a query (4.8 against
    0.3 ms, password auth included), so up to ``keep`` idle connections are kept; one is checked with a
    round trip before it is handed out, so a connection the server dropped (a restart) is replaced
    unseen rather than failing the call.
    """

    def __init__(self, dsn: str, keep: int):
        self._dsn, self._keep = dsn, keep
        self._idle: list[psycopg2.extensions.connection] = []
        self._lock = threading.Lock()

    def get(self) -> psycopg2.extensions.connection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return psycopg2.connect(self._dsn)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                conn.rollback()
                return conn
            except psycopg2.Error:
                conn.close()

    def put(self, conn: psycopg2.extensions.connection) -> None:
        idle = not conn.closed and conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
        with self._lock:
            if idle and len(self._idle) < self._keep:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class History:
    """Reads and writes run history, through connections made once per process and kept (``Connections``)."""

    def __init__(self, dsn: str, keep_connections: int = 4):
        self._pool = Connections(dsn, keep_connections)

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _cursor(self) -> Iterator[psycopg2.extras.RealDictCursor]:
        """One transaction. Not ``with conn``: on a connection the server dropped, its rollback raises
        InterfaceError ("connection already closed") in place of the OperationalError that says why, and
        turns a transient error, which a task retries, into a permanent one."""
        conn = self._pool.get()
        try:
            cur = conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
            yield cur
            cur.close()
            conn.commit()
        except BaseException:
            if not conn.closed:
                conn.rollback()
            raise
        finally:
            self._pool.put(conn)

    # --- runs -------------------------------------------------------------------------------

    def create_run(self, trigger: str, params: dict | None = None, logical_date: date | None = None) -> str:
        logical_date = logical_date or datetime.now(UTC).date()
        run_id = new_run_id()
        try:
            with self._cursor() as cur:
                cur.execute(
                    "INSERT INTO run (run_id, logical_date, trigger, params) VALUES (%s, %s, %s, %s)",
                    (run_id, logical_date, trigger, psycopg2.extras.Json(params or {})),
                )
        except psycopg2.errors.UniqueViolation:
            raise self._already_active(logical_date) from None
        return run_id

    def _already_active(self, logical_date: date) -> RunAlreadyActive:
        with self._cursor() as cur:
            cur.execute(
                "SELECT run_id FROM run WHERE logical_date = %s AND status IN ('queued', 'running')", (logical_date,)
            )
            row = cur.fetchone()
        return RunAlreadyActive(row["run_id"] if row else "?", logical_date)

    def get_run(self, run_id: str) -> dict | None:
        with self._cursor() as cur:
            cur.execute("SELECT * FROM run WHERE run_id = %s", (run_id,))
            return cur.fetchone()

    def list_runs(self, limit: int = 20) -> list[dict]:
        with self._cursor() as cur:
            cur.execute("SELECT * FROM run ORDER BY created_at DESC LIMIT %s", (limit,))
            return cur.fetchall()

    def start_run(self, run_id: str) -> None:
        with self._cursor() as cur:
            cur.execute(
                "UPDATE run SET status = 'running', started_at = coalesce(started_at, now()) "
                "WHERE run_id = %s AND status IN ('queued', 'running')",
                (run_id,),
            )

    def set_plan(self, run_id: str, plan: Plan) -> Plan:
        """Record the run's plan once and return the recorded one: a retried extraction keeps its first."""
        since = plan.since or (None, None)
        with self._cursor() as cur:
            cur.execute(
                "UPDATE run SET mode = %s, mode_reason = %s, base_version = %s, watermark_from = %s, "
                "watermark_from_id = %s WHERE run_id = %s AND mode IS NULL",
                (plan.mode, plan.reason, plan.base_version, since[0], since[1], run_id),
            )
            cur.execute("SELECT * FROM run WHERE run_id = %s", (run_id,))
            return plan_of(cur.fetchone())

    def cap_watermark(self, run_id: str, cap: datetime) -> None:
        """The run's watermark may not pass ``cap`` (the earliest, when a retried extraction read again)."""
        with self._cursor() as cur:
            cur.execute(
                "UPDATE run SET watermark_cap = least(coalesce(watermark_cap, %(cap)s), %(cap)s) "
                "WHERE run_id = %(run)s",
                {"cap": cap, "run": run_id},
            )

    def set_extracted(self, run_id: str, batches: int, rows: int, watermark: Watermark | None = None) -> int:
        """Extraction is complete: the barrier may count, and the next run reads after ``watermark``.

        Returns how many times the extraction task was retried. Its retries were recorded as extract
        batch 0 (the task, not a page); that row goes, or the run would show the stage retrying forever.
        """
        to = watermark or (None, None)
        with self._cursor() as cur:
            cur.execute(
                "UPDATE run SET extracted_batches = %s, source_rows = %s, watermark_to = %s, watermark_to_id = %s "
                "WHERE run_id = %s",
                (batches, rows, to[0], to[1], run_id),
            )
            cur.execute(
                "DELETE FROM batch WHERE run_id = %s AND stage = 'extract' AND batch_no = 0 AND status = 'retrying' "
                "RETURNING retries",
                (run_id,),
            )
            return sum(row["retries"] for row in cur.fetchall())

    def claim_publish(self, run_id: str) -> bool:
        """The completion barrier: True for exactly one caller, once every batch is classified.

        Callers commit their own batch's status first and call this afterwards: the
        last batch to commit then sees every other one, so the barrier cannot be missed,
        and ``publish_requested_at IS NULL`` under the row lock makes it fire at most once.
        """
        with self._cursor() as cur:
            cur.execute(
                """
                UPDATE run SET publish_requested_at = now()
                WHERE run_id = %(run)s AND status = 'running' AND publish_requested_at IS NULL
                  AND extracted_batches IS NOT NULL
                  AND extracted_batches = (SELECT count(*) FROM batch WHERE run_id = %(run)s
                                           AND stage = 'classify' AND status = 'succeeded')
                RETURNING run_id
                """,
                {"run": run_id},
            )
            return cur.fetchone() is not None

    def finish_run(
        self,
        run_id: str,
        curated_key: str,
        curated_rows: int,
        model_fingerprint: str | None = None,
        changes: dict | None = None,
    ) -> None:
        with self._cursor() as cur:
            cur.execute(
                "UPDATE run SET status = 'succeeded', finished_at = now(), curated_key = %s, curated_rows = %s, "
                "model_fingerprint = %s, changes = %s, error = NULL WHERE run_id = %s",
                (
                    curated_key,
                    curated_rows,
                    model_fingerprint,
                    None if changes is None else psycopg2.extras.Json(changes),
                    run_id,
                ),
            )

    def fail_run(self, run_id: str, error: str) -> None:
        with self._cursor() as cur:
            cur.execute(
                "UPDATE run SET status = 'failed', finished_at = now(), error = %s "
                "WHERE run_id = %s AND status IN ('queued', 'running')",
                (error[:2000], run_id),
            )

    # --- batches ------------------------------------------------------------------------------

    def begin_batch(
        self,
        run_id: str,
        stage: Stage,
        batch_no: int,
        max_attempts: int,
        input_key: str | None = None,
        worker: str | None = None,
    ) -> BatchStart:
        """Record a delivery starting work; dead-letter a batch that keeps dying mid-work.

        Raises ``BatchDead`` once more deliveries started than ended, beyond the limit:
        a poisoned batch (one that kills its worker) must not be requeued forever.
        """
        with self._cursor() as cur:
            cur.execute(
                """
                INSERT INTO batch (run_id, stage, batch_no, status, attempts, started_at, input_key, worker)
                VALUES (%s, %s, %s, 'running', 0, now(), %s, %s)
                ON CONFLICT (run_id, stage, batch_no) DO NOTHING
                """,
                (run_id, stage.value, batch_no, input_key, worker),
            )
            cur.execute(
                "SELECT status, attempts, retries FROM batch WHERE run_id = %s AND stage = %s AND batch_no = %s "
                "FOR UPDATE",
                (run_id, stage.value, batch_no),
            )
            row = cur.fetchone()
            if row["status"] in ("succeeded", "dead"):
                return BatchStart(row["attempts"], already_done=True)
            attempts = row["attempts"] + 1
            if attempts - row["retries"] > max_attempts:
                cur.execute(
                    "UPDATE batch SET status = 'dead', finished_at = now(), last_error = coalesce(last_error, '') || "
                    "%s WHERE run_id = %s AND stage = %s AND batch_no = %s",
                    (f" [dead-lettered after {attempts - 1} attempts]", run_id, stage.value, batch_no),
                )
                dead = True
            else:
                dead = False
                cur.execute(
                    "UPDATE batch SET status = 'running', attempts = %s, started_at = now(), finished_at = NULL, "
                    "worker = coalesce(%s, worker), input_key = coalesce(%s, input_key) "
                    "WHERE run_id = %s AND stage = %s AND batch_no = %s",
                    (attempts, worker, input_key, run_id, stage.value, batch_no),
                )
        if dead:  # raised after the commit: the dead-letter mark must stick
            raise BatchDead(f"{stage.value} batch {batch_no} of run {run_id}: {attempts - 1} attempts died")
        return BatchStart(attempts, already_done=False)

    def finish_batch(
        self,
        run_id: str,
        stage: Stage,
        batch_no: int,
        *,
        rows_in: int,
        rows_out: int,
        rejects: int = 0,
        output_key: str | None = None,
        cursor: Watermark | None = None,
    ) -> None:
        with self._cursor() as cur:
            cur.execute(
                """
                INSERT INTO batch (run_id, stage, batch_no, status, attempts, started_at)
                VALUES (%(run)s, %(stage)s, %(n)s, 'running', 1, now())
                ON CONFLICT (run_id, stage, batch_no) DO NOTHING;
                UPDATE batch SET status = 'succeeded', finished_at = now(), rows_in = %(rin)s, rows_out = %(rout)s,
                       rejects = %(rej)s, output_key = %(key)s, cursor = %(cursor)s, cursor_ts = %(cursor_ts)s,
                       last_error = NULL
                WHERE run_id = %(run)s AND stage = %(stage)s AND batch_no = %(n)s
                """,
                {
                    "run": run_id,
                    "stage": stage.value,
                    "n": batch_no,
                    "rin": rows_in,
                    "rout": rows_out,
                    "rej": rejects,
                    "key": output_key,
                    "cursor": cursor and cursor.review_id,
                    "cursor_ts": cursor and cursor.updated_at,
                },
            )

    def retry_batch(self, run_id: str, stage: Stage, batch_no: int, error: str) -> None:
        with self._cursor() as cur:
            cur.execute(
                """
                INSERT INTO batch (run_id, stage, batch_no, status, attempts, retries, started_at, last_error)
                VALUES (%(run)s, %(stage)s, %(n)s, 'retrying', 1, 1, now(), %(err)s)
                ON CONFLICT (run_id, stage, batch_no) DO UPDATE
                SET status = 'retrying', retries = batch.retries + 1, last_error = %(err)s
                """,
                {"run": run_id, "stage": stage.value, "n": batch_no, "err": error[:2000]},
            )

    def kill_batch(self, run_id: str, stage: Stage, batch_no: int, error: str) -> None:
        """A permanent failure: recorded as dead, never retried."""
        with self._cursor() as cur:
            cur.execute(
                """
                INSERT INTO batch (run_id, stage, batch_no, status, attempts, started_at)
                VALUES (%(run)s, %(stage)s, %(n)s, 'dead', 1, now())
                ON CONFLICT (run_id, stage, batch_no) DO UPDATE
                SET status = 'dead', finished_at = now(), last_error = %(err)s
                """,
                {"run": run_id, "stage": stage.value, "n": batch_no, "err": error[:2000]},
            )

    def extracted_batches(self, run_id: str) -> list[dict]:
        """The run's extract batches that completed, in order (the resume point of a retry)."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT batch_no, output_key, cursor, cursor_ts, rows_out FROM batch "
                "WHERE run_id = %s AND stage = 'extract' AND status = 'succeeded' ORDER BY batch_no",
                (run_id,),
            )
            return cur.fetchall()

    def batches(self, run_id: str, stage: Stage | None = None) -> list[dict]:
        with self._cursor() as cur:
            cur.execute(
                "SELECT * FROM batch WHERE run_id = %s AND (%s::text IS NULL OR stage = %s) ORDER BY stage, batch_no",
                (run_id, stage and stage.value, stage and stage.value),
            )
            return cur.fetchall()

    def stage_summary(self, run_id: str) -> dict[str, dict]:
        """Per stage: batches by status, rows in/out, rejects, attempts and busy seconds."""
        with self._cursor() as cur:
            cur.execute(
                """
                SELECT stage,
                       count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                       count(*) FILTER (WHERE status = 'running') AS running,
                       count(*) FILTER (WHERE status = 'retrying') AS retrying,
                       count(*) FILTER (WHERE status = 'dead') AS dead,
                       coalesce(sum(rows_in), 0) AS rows_in, coalesce(sum(rows_out), 0) AS rows_out,
                       coalesce(sum(rejects), 0) AS rejects, coalesce(sum(attempts), 0) AS attempts,
                       coalesce(sum(extract(epoch FROM finished_at - started_at)), 0)::float AS busy_s,
                       min(started_at) AS first_started, max(finished_at) AS last_finished,
                       max(last_error) FILTER (WHERE status <> 'succeeded') AS last_error
                FROM batch WHERE run_id = %s GROUP BY stage
                """,
                (run_id,),
            )
            return {row.pop("stage"): row for row in cur.fetchall()}

    def last_finished_run(self) -> dict | None:
        """The run that ended last, succeeded or failed."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT * FROM run WHERE status IN ('succeeded', 'failed') ORDER BY finished_at DESC NULLS LAST LIMIT 1"
            )
            return cur.fetchone()

    def archive_backlog(self) -> int:
        """Extracted batches whose archive is still to do: not started, running or retrying."""
        with self._cursor() as cur:
            cur.execute(
                """
                SELECT count(*) AS n FROM batch e
                WHERE e.stage = 'extract' AND e.status = 'succeeded'
                  AND NOT EXISTS (SELECT 1 FROM batch a WHERE a.run_id = e.run_id AND a.stage = 'archive'
                                  AND a.batch_no = e.batch_no AND a.status IN ('succeeded', 'dead'))
                """
            )
            return cur.fetchone()["n"]

    def add_erasure(self, buyer_pseudonym: str) -> None:
        with self._cursor() as cur:
            cur.execute("INSERT INTO erasure (buyer_pseudonym) VALUES (%s) ON CONFLICT DO NOTHING", (buyer_pseudonym,))

    def erased_pseudonyms(self) -> frozenset[str]:
        with self._cursor() as cur:
            cur.execute("SELECT buyer_pseudonym FROM erasure")
            return frozenset(row["buyer_pseudonym"] for row in cur.fetchall())

    def stalled_runs(self, older_than_s: int) -> list[dict]:
        """Running runs with no batch activity for ``older_than_s``: what the sweep repairs."""
        with self._cursor() as cur:
            cur.execute(
                """
                SELECT r.* FROM run r
                WHERE r.status = 'running' AND r.started_at < now() - make_interval(secs => %(s)s)
                  AND NOT EXISTS (SELECT 1 FROM batch b WHERE b.run_id = r.run_id
                                  AND greatest(b.started_at, b.finished_at) > now() - make_interval(secs => %(s)s))
                  AND NOT EXISTS (SELECT 1 FROM batch_retry t WHERE t.run_id = r.run_id
                                  AND t.retried_at > now() - make_interval(secs => %(s)s))
                """,
                {"s": older_than_s},
            )
            return cur.fetchall()

    # --- an operator's retry of a failed run ------------------------------------------------------

    def reopen_run(
        self, run_id: str, trigger: str, choose: Callable[[dict, dict | None, list[dict]], list[tuple[Stage, int]]]
    ) -> list[dict]:
        """Put a failed run back to running with the batches ``choose`` picks cleared, in one transaction.

        ``choose(run, later_run, batches)`` sees the run and its batches locked (``later_run``: a run
        created after it that is active or succeeded, or None) and raises to refuse; ``RunAlreadyActive`` when
        another run of the same logical date is active.
        Each cleared batch is logged in ``batch_retry`` as it was, then deleted: its stage then does it
        afresh, with a fresh attempt budget. Returns the cleared rows.
        """
        try:
            with self._cursor() as cur:
                cur.execute("SELECT * FROM run WHERE run_id = %s FOR UPDATE", (run_id,))
                run = cur.fetchone()
                if run is None:
                    raise RunNotFound(run_id)
                cur.execute(
                    "SELECT run_id, status FROM run WHERE created_at > %s AND status IN ('queued', 'running', "
                    "'succeeded') ORDER BY created_at DESC LIMIT 1",
                    (run["created_at"],),
                )
                later = cur.fetchone()
                cur.execute("SELECT * FROM batch WHERE run_id = %s ORDER BY stage, batch_no FOR UPDATE", (run_id,))
                keys = tuple((stage.value, n) for stage, n in choose(run, later, cur.fetchall()))
                cur.execute(
                    "INSERT INTO batch_retry (run_id, stage, batch_no, trigger, status, attempts, retries, last_error) "
                    "SELECT run_id, stage, batch_no, %s, status, attempts, retries, last_error FROM batch "
                    "WHERE run_id = %s AND (stage, batch_no) IN %s",
                    (trigger, run_id, keys),
                )
                cur.execute(
                    "DELETE FROM batch WHERE run_id = %s AND (stage, batch_no) IN %s RETURNING *", (run_id, keys)
                )
                cleared = cur.fetchall()
                # The barrier claims publish anew; the run's time is counted again from here (batch_retry).
                cur.execute(
                    "UPDATE run SET status = 'running', finished_at = NULL, error = NULL, publish_requested_at = NULL "
                    "WHERE run_id = %s",
                    (run_id,),
                )
        except psycopg2.errors.UniqueViolation:  # run_one_active_per_date
            raise self._already_active(run["logical_date"]) from None
        return sorted(cleared, key=lambda b: (list(Stage).index(Stage(b["stage"])), b["batch_no"]))

    def retries(self, run_id: str) -> list[dict]:
        """What operators cleared for a re-run in this run, oldest first."""
        with self._cursor() as cur:
            cur.execute("SELECT * FROM batch_retry WHERE run_id = %s ORDER BY retried_at, stage, batch_no", (run_id,))
            return cur.fetchall()

    # --- what the alert rules and the dashboards read -----------------------------------------------

    # A run's time, counted from its last retry when an operator retried it: the wait before is not the pipeline's.
    _TIMED = """
        SELECT r.run_id, r.mode, r.status, r.created_at, r.finished_at,
               extract(epoch FROM coalesce(r.finished_at, now()) - greatest(
                   r.started_at, (SELECT max(t.retried_at) FROM batch_retry t WHERE t.run_id = r.run_id)))::float
                   AS seconds,
               EXISTS (SELECT 1 FROM batch_retry t WHERE t.run_id = r.run_id) AS retried
        FROM run r WHERE r.status IN ('running', 'succeeded') AND r.started_at IS NOT NULL
    """

    def run_duration(self, runs: int) -> RunDuration | None:
        """The running run (the longest running) or else the last successful one, with the mean duration of
        the ``runs`` successful runs of the same mode before it (retried ones left out of the mean)."""
        with self._cursor() as cur:
            cur.execute(
                f"WITH timed AS ({self._TIMED}) SELECT * FROM timed "
                "ORDER BY status = 'running' DESC, CASE WHEN status = 'running' THEN seconds END DESC NULLS LAST, "
                "finished_at DESC LIMIT 1"
            )
            judged = cur.fetchone()
            if judged is None:
                return None
            cur.execute(
                f"WITH timed AS ({self._TIMED}) SELECT avg(seconds) AS mean, count(*) AS n FROM ("
                "SELECT seconds FROM timed WHERE status = 'succeeded' AND NOT retried AND run_id <> %(run)s "
                "AND created_at < %(created)s AND mode IS NOT DISTINCT FROM %(mode)s "
                "ORDER BY finished_at DESC LIMIT %(runs)s) recent",
                {"run": judged["run_id"], "created": judged["created_at"], "mode": judged["mode"], "runs": runs},
            )
            baseline = cur.fetchone()
        return RunDuration(
            judged["run_id"],
            judged["mode"],
            judged["status"],
            judged["seconds"],
            baseline["mean"] and float(baseline["mean"]),
            baseline["n"],
        )

    def exhausted_batches(self, within_h: float) -> list[dict]:
        """Batches of the runs created in the last ``within_h`` hours that gave up after their automatic
        retries: a transient error that outlasted them, or deliveries that kept dying (dead-lettered).
        A permanent error on the first try is not among them: nothing was retried."""
        with self._cursor() as cur:
            cur.execute(
                """
                SELECT b.run_id, b.stage, b.batch_no, b.attempts, b.retries, b.last_error, r.status AS run_status
                FROM batch b JOIN run r USING (run_id)
                WHERE b.status = 'dead' AND (b.retries > 0 OR b.attempts > 1)
                  AND r.created_at > now() - make_interval(secs => %s)
                ORDER BY r.created_at DESC, b.stage, b.batch_no
                """,
                (within_h * 3600,),
            )
            return cur.fetchall()

    def run_counts(self) -> dict[str, int]:
        """Runs in the history by status (every status, zero included)."""
        with self._cursor() as cur:
            cur.execute("SELECT status, count(*) AS n FROM run GROUP BY status")
            counts = {row["status"]: row["n"] for row in cur.fetchall()}
        return {status: counts.get(status, 0) for status in ("queued", "running", "succeeded", "failed")}
